/**
 * Go encoding/json-compatible marshaling. The format owner writes every JSON
 * file with Go's encoder; byte-identical output needs its exact rules:
 * struct fields in declaration order, map keys sorted bytewise, float64 in
 * shortest form with Go's exponent thresholds, Go's string escaping (optional
 * HTML escaping, U+2028/U+2029 escaped, invalid UTF-8 as \ufffd), []byte as
 * standard base64, RawMessage compacted then re-indented.
 */

/** A Go string built from raw bytes (may be invalid UTF-8). */
export class GoStr {
  constructor(readonly bytes: Buffer) {}
}
/** A Go []byte: marshals as standard base64 with padding. */
export class GoB64 {
  constructor(readonly bytes: Buffer) {}
}
/** A Go map[string]T: keys emitted sorted bytewise. */
export class GoMap {
  readonly entries: [string | Buffer, GoValue][];
  constructor(entries: Iterable<[string | Buffer, GoValue]>) {
    this.entries = [...entries];
  }
}
/** A json.RawMessage: emitted compacted (and re-indented under MarshalIndent). */
export class GoRaw {
  constructor(readonly json: string | Buffer) {}
}

export type GoValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | GoStr
  | GoB64
  | GoMap
  | GoRaw
  | GoValue[]
  | { [field: string]: GoValue | undefined };

export const goStr = (b: Buffer | string): GoStr => new GoStr(typeof b === 'string' ? Buffer.from(b, 'utf8') : b);
export const goB64 = (b: Buffer): GoB64 => new GoB64(b);

export interface MarshalOptions {
  /** MarshalIndent's indent (prefix is always ""). Omit for compact output. */
  indent?: string;
  /** json.Marshal escapes <, >, & by default; json.Encoder.SetEscapeHTML(false) does not. */
  escapeHTML?: boolean;
}

const HEX = '0123456789abcdef';

/** Printable ASCII other than '"' and '\\' (and, for escapeHTML, '&', '<', '>'): emitted as they are. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const PLAIN_HTML = /^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*$/;

/** Append Go's JSON encoding of a JS string (its UTF-8 bytes) to out. */
function writeString(out: string[], s: string, escapeHTML: boolean): void {
  if ((escapeHTML ? PLAIN_HTML : PLAIN).test(s)) out.push('"' + s + '"');
  else writeStringBytes(out, Buffer.from(s, 'utf8'), escapeHTML);
}

/** Go's JSON encoding of a JS string (its UTF-8 bytes), quotes included. */
export function goJsonString(s: string, escapeHTML = true): string {
  const out: string[] = [];
  writeString(out, s, escapeHTML);
  return out[0]!;
}

/** Append Go's JSON encoding of a byte string to out. */
function writeStringBytes(out: string[], b: Buffer, escapeHTML: boolean): void {
  let s = '"';
  let start = 0;
  const flush = (i: number): void => {
    if (start < i) s += b.toString('utf8', start, i);
  };
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      let esc: string | null = null;
      if (c === 0x22) esc = '\\"';
      else if (c === 0x5c) esc = '\\\\';
      else if (c < 0x20) {
        esc =
          c === 0x08 ? '\\b' : c === 0x0c ? '\\f' : c === 0x0a ? '\\n' : c === 0x0d ? '\\r' : c === 0x09 ? '\\t' : '\\u00' + HEX[c >> 4] + HEX[c & 0xf];
      } else if (escapeHTML && (c === 0x3c || c === 0x3e || c === 0x26)) esc = '\\u00' + HEX[c >> 4] + HEX[c & 0xf];
      if (esc !== null) {
        flush(i);
        s += esc;
        start = i + 1;
      }
      i++;
      continue;
    }
    const n = utf8RuneLen(b, i);
    if (n === 0) {
      flush(i);
      s += '\\ufffd';
      i++;
      start = i;
      continue;
    }
    if (n === 3 && b[i] === 0xe2 && b[i + 1] === 0x80 && (b[i + 2] === 0xa8 || b[i + 2] === 0xa9)) {
      flush(i);
      s += b[i + 2] === 0xa8 ? '\\u2028' : '\\u2029';
      i += 3;
      start = i;
      continue;
    }
    i += n;
  }
  flush(b.length);
  s += '"';
  out.push(s);
}

/**
 * Length of the valid UTF-8 sequence at b[i], or 0 when invalid (Go's RuneError width 1).
 * For non-ASCII lead bytes only (b[i] >= 0x80): callers handle ASCII themselves.
 */
export function utf8RuneLen(b: Buffer, i: number): number {
  const c0 = b[i]!;
  const cont = (j: number): boolean => j < b.length && (b[j]! & 0xc0) === 0x80;
  if (c0 >= 0xc2 && c0 <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = b[i + 1];
    if (c1 === undefined) return 0;
    if (c0 === 0xe0 && c1 < 0xa0) return 0;
    if (c0 === 0xed && c1 > 0x9f) return 0; // surrogates
    return cont(i + 1) && cont(i + 2) ? 3 : 0;
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = b[i + 1];
    if (c1 === undefined) return 0;
    if (c0 === 0xf0 && c1 < 0x90) return 0;
    if (c0 === 0xf4 && c1 > 0x8f) return 0;
    return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

/** Go's float64 formatting (strconv 'f'/'e' shortest with json's exponent cleanup). */
export function formatFloat(f: number): string {
  if (!Number.isFinite(f)) throw new Error(`json: unsupported value: ${f}`);
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const abs = Math.abs(f);
  if (abs < 1e-6 || abs >= 1e21) {
    // JS toExponential() without digits is shortest round-trip, like Go's -1 precision.
    let s = f.toExponential();
    // JS writes e+21 / e-7; Go writes e+21 / e-07 then json trims "e-07" -> "e-7". Same result.
    s = s.replace(/e([+-])(\d)$/, 'e$1$2');
    return s;
  }
  // Fixed notation, shortest round-trip digits.
  const s = String(f);
  if (!s.includes('e')) return s;
  // abs in [1e-6, 1e-7) cannot reach here; abs < 1e21 prints fixed in JS too.
  return s;
}

function writeValue(out: string[], v: GoValue | undefined, opts: Required<MarshalOptions>, depth: number): void {
  if (v === null || v === undefined) {
    out.push('null');
    return;
  }
  switch (typeof v) {
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      out.push(formatFloat(v));
      return;
    case 'bigint':
      out.push(v.toString());
      return;
    case 'string':
      writeString(out, v, opts.escapeHTML);
      return;
  }
  if (v instanceof GoStr) return writeStringBytes(out, v.bytes, opts.escapeHTML);
  if (v instanceof GoB64) {
    out.push('"' + v.bytes.toString('base64') + '"');
    return;
  }
  if (v instanceof GoRaw) {
    out.push(reformatRaw(typeof v.json === 'string' ? v.json : v.json.toString('utf8'), opts.indent, depth));
    return;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push('[]');
      return;
    }
    out.push('[');
    v.forEach((e, i) => {
      if (i > 0) out.push(',');
      newline(out, opts.indent, depth + 1);
      writeValue(out, e, opts, depth + 1);
    });
    newline(out, opts.indent, depth);
    out.push(']');
    return;
  }
  let fields: [Buffer | string, GoValue | undefined][];
  if (v instanceof GoMap) fields = sortedEntries(v.entries);
  else fields = Object.entries(v).filter(([, x]) => x !== undefined);
  if (fields.length === 0) {
    out.push('{}');
    return;
  }
  out.push('{');
  fields.forEach(([k, x], i) => {
    if (i > 0) out.push(',');
    newline(out, opts.indent, depth + 1);
    if (typeof k === 'string') writeString(out, k, opts.escapeHTML);
    else writeStringBytes(out, k, opts.escapeHTML);
    out.push(opts.indent ? ': ' : ':');
    writeValue(out, x, opts, depth + 1);
  });
  newline(out, opts.indent, depth);
  out.push('}');
}

/** Below the surrogates, UTF-16 code-unit order is UTF-8 byte order. */
const BELOW_SURROGATES = /^[\x00-\ud7ff]*$/;

/** A map's entries sorted bytewise by key (Go's map order). */
function sortedEntries(entries: [string | Buffer, GoValue][]): [string | Buffer, GoValue][] {
  if (entries.length <= 1) return entries;
  if (entries.every(([k]) => typeof k === 'string')) return sortBytewise([...entries], (e) => e[0] as string);
  return entries
    .map(([k, x]) => [typeof k === 'string' ? Buffer.from(k, 'utf8') : k, x] as [Buffer, GoValue])
    .sort((a, b) => Buffer.compare(a[0], b[0]));
}

/**
 * Items sorted in place by a string key in Go's map order (bytewise by UTF-8): comparing the
 * strings themselves gives that order while no key reaches the surrogates.
 */
export function sortBytewise<T>(items: T[], key: (t: T) => string): T[] {
  if (items.length <= 1) return items;
  if (items.every((t) => BELOW_SURROGATES.test(key(t)))) {
    return items.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }
  const bytes = new Map(items.map((t) => [t, Buffer.from(key(t), 'utf8')]));
  return items.sort((a, b) => Buffer.compare(bytes.get(a)!, bytes.get(b)!));
}

/** "\n" + indent × depth, made once per indent and depth. */
const newlines = new Map<string, string[]>();

export function indentLine(indent: string, depth: number): string {
  let byDepth = newlines.get(indent);
  if (!byDepth) newlines.set(indent, (byDepth = []));
  return (byDepth[depth] ??= '\n' + indent.repeat(depth));
}

function newline(out: string[], indent: string, depth: number): void {
  if (indent) out.push(indentLine(indent, depth));
}

/** Compact a JSON text, then (when indenting) re-indent it the way Go's encoder does for RawMessage. */
function reformatRaw(text: string, indent: string, depth: number): string {
  let out = '';
  let inStr = false;
  let level = depth;
  let i = 0;
  const nl = (): void => {
    if (indent) out += '\n' + indent.repeat(level);
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (inStr) {
      out += ch;
      if (ch === '\\') {
        out += text[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (ch === '"') inStr = false;
      i++;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i++;
      continue;
    }
    if (ch === '"') {
      inStr = true;
      out += ch;
    } else if (ch === '{' || ch === '[') {
      // Empty containers stay compact.
      let j = i + 1;
      while (j < text.length && ' \t\n\r'.includes(text[j]!)) j++;
      const close = ch === '{' ? '}' : ']';
      if (text[j] === close) {
        out += ch + close;
        i = j + 1;
        continue;
      }
      out += ch;
      level++;
      nl();
    } else if (ch === '}' || ch === ']') {
      level--;
      nl();
      out += ch;
    } else if (ch === ',') {
      out += ch;
      nl();
    } else if (ch === ':') {
      out += indent ? ': ' : ':';
    } else out += ch;
    i++;
  }
  return out;
}

/** json.Marshal / json.MarshalIndent(v, "", indent). */
export function marshal(v: GoValue, opts: MarshalOptions = {}): string {
  const out: string[] = [];
  writeValue(out, v, { indent: opts.indent ?? '', escapeHTML: opts.escapeHTML ?? true }, 0);
  return out.join('');
}

/** json.NewEncoder(w) with SetEscapeHTML(false) (and optional SetIndent("", indent)): value + "\n". */
export function encodeLine(v: GoValue, opts: MarshalOptions = {}): string {
  return marshal(v, { indent: opts.indent, escapeHTML: opts.escapeHTML ?? false }) + '\n';
}
