/**
 * Go encoding/json (v1) Unmarshal semantics for the record values the format
 * owner decodes into Go structs: strict syntax (trailing data, control
 * characters, bad escapes and nesting deeper than 10000 are errors, and the
 * whole document is checked before anything is assigned), strings unquoted
 * with U+FFFD for invalid UTF-8 and lone surrogates, struct fields matched
 * exactly then case-insensitively (duplicate keys: the last one wins), literal
 * null leaving a scalar field untouched, integers parsed as strconv does
 * (int64/uint64 kept exact as bigint), []byte as standard base64 or an array of
 * numbers 0..255.
 *
 * Zero-copy: the document is walked as byte spans, so a json.RawMessage keeps
 * its exact bytes and a string without escapes or invalid UTF-8 is a view of
 * the input. Use: `topObject(doc)` for the struct's members, `matchField` to
 * pick the field each member sets, then the `field*` readers on that member.
 * Spans always come from `topObject`, which validated the whole document, so
 * the readers only check types.
 */
import { isUtf8 } from 'node:buffer';
import { utf8RuneLen } from './gojson.js';

export class JsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonError';
  }
}

const MAX_DEPTH = 10000;

export type Kind = 'string' | 'number' | 'true' | 'false' | 'null' | 'object' | 'array';

/** One JSON value of a validated document: its kind and byte span [start, end). */
export interface JsonSpan {
  kind: Kind;
  start: number;
  end: number;
}

/** An object member: the unquoted key bytes and the value's span. */
export interface Member extends JsonSpan {
  key: Buffer;
}

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function skipWs(b: Buffer, i: number): number {
  while (i < b.length && isWs(b[i])) i++;
  return i;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

/** End (exclusive) of the string literal starting at b[i] === '"'. */
function stringEnd(b: Buffer, i: number): number {
  i++;
  for (;;) {
    if (i >= b.length) throw new JsonError('unexpected end of JSON input');
    const c = b[i]!;
    if (c === 0x22) return i + 1;
    if (c < 0x20) throw new JsonError('invalid character in string literal');
    if (c === 0x5c) {
      const e = b[i + 1];
      if (e === 0x75) {
        if (!(isHex(b[i + 2]) && isHex(b[i + 3]) && isHex(b[i + 4]) && isHex(b[i + 5]))) throw new JsonError('invalid \\u escape');
        i += 6;
        continue;
      }
      if (e === undefined || !'"\\/bfnrt'.includes(String.fromCharCode(e))) throw new JsonError('invalid escape in string literal');
      i += 2;
      continue;
    }
    i++;
  }
}

function numberEnd(b: Buffer, i: number): number {
  const digit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (digit(b[i])) while (digit(b[i])) i++;
  else throw new JsonError('invalid number literal');
  if (b[i] === 0x2e) {
    i++;
    if (!digit(b[i])) throw new JsonError('invalid number literal');
    while (digit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!digit(b[i])) throw new JsonError('invalid number literal');
    while (digit(b[i])) i++;
  }
  return i;
}

function literalEnd(b: Buffer, i: number, word: string): number {
  if (b.toString('latin1', i, i + word.length) !== word) throw new JsonError('invalid literal');
  return i + word.length;
}

function kindAt(b: Buffer, i: number): Kind {
  const c = b[i];
  if (c === 0x22) return 'string';
  if (c === 0x7b) return 'object';
  if (c === 0x5b) return 'array';
  if (c === 0x74) return 'true';
  if (c === 0x66) return 'false';
  if (c === 0x6e) return 'null';
  if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) return 'number';
  throw new JsonError(c === undefined ? 'unexpected end of JSON input' : 'invalid character looking for beginning of value');
}

/**
 * Validate one value starting at b[i] (no leading whitespace) whose enclosing
 * containers number `depth`; returns its end. Iterative, so deep nesting cannot
 * overflow the stack before Go's limit is hit.
 */
function skipValue(b: Buffer, i: number, depth: number): number {
  // Stack of open containers: true = object, false = array.
  const stack: boolean[] = [];
  for (;;) {
    // Expect a value at i.
    const k = kindAt(b, i);
    if (k === 'object' || k === 'array') {
      if (depth + stack.length + 1 > MAX_DEPTH) throw new JsonError('exceeded max depth');
      const obj = k === 'object';
      i = skipWs(b, i + 1);
      if (b[i] === (obj ? 0x7d : 0x5d)) {
        i++;
      } else {
        stack.push(obj);
        if (obj) i = objectKey(b, i);
        continue;
      }
    } else if (k === 'string') i = stringEnd(b, i);
    else if (k === 'number') i = numberEnd(b, i);
    else i = literalEnd(b, i, k);
    // After a value: close containers or move to the next element.
    for (;;) {
      if (stack.length === 0) return i;
      const obj = stack[stack.length - 1]!;
      i = skipWs(b, i);
      if (b[i] === 0x2c) {
        i = skipWs(b, i + 1);
        if (obj) i = objectKey(b, i);
        break;
      }
      if (b[i] === (obj ? 0x7d : 0x5d)) {
        stack.pop();
        i++;
        continue;
      }
      throw new JsonError(b[i] === undefined ? 'unexpected end of JSON input' : 'invalid character after element');
    }
  }
}

/** At a key: validate `"key" :` and return the index of the value (whitespace skipped). */
function objectKey(b: Buffer, i: number): number {
  if (b[i] !== 0x22) throw new JsonError('invalid character looking for beginning of object key string');
  i = skipWs(b, stringEnd(b, i));
  if (b[i] !== 0x3a) throw new JsonError('invalid character after object key');
  return skipWs(b, i + 1);
}

/** utf8.Valid (Node's native validator agrees: no surrogates, overlongs or code points past U+10FFFF). */
export function validUtf8(b: Buffer): boolean {
  return isUtf8(b);
}

const FFFD = Buffer.from([0xef, 0xbf, 0xbd]);
const ESCAPED: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };

/** Go's unquote of an already validated string literal span [start, end); a view of b when nothing changes. */
function unquote(b: Buffer, start: number, end: number): Buffer {
  const inner = b.subarray(start + 1, end - 1);
  if (end - start <= SHORT_STRING ? plainAscii(b, start + 1, end - 1) : inner.indexOf(0x5c) < 0 && isUtf8(inner)) return inner;
  const out: Buffer[] = [];
  let i = start + 1;
  const stop = end - 1;
  let run = i;
  const flush = (to: number): void => {
    if (run < to) out.push(b.subarray(run, to));
  };
  const hex4 = (j: number): number => parseInt(b.toString('latin1', j, j + 4), 16);
  while (i < stop) {
    const c = b[i]!;
    if (c === 0x5c) {
      flush(i);
      const e = b[i + 1]!;
      if (e === 0x75) {
        let r = hex4(i + 2);
        i += 6;
        if (r >= 0xd800 && r < 0xe000) {
          // A high surrogate pairs only with an immediately following \u low surrogate;
          // otherwise it alone becomes U+FFFD and the next escape is read on its own.
          if (r < 0xdc00 && b[i] === 0x5c && b[i + 1] === 0x75 && i + 6 <= stop) {
            const r2 = hex4(i + 2);
            if (r2 >= 0xdc00 && r2 < 0xe000) {
              r = 0x10000 + ((r - 0xd800) << 10) + (r2 - 0xdc00);
              i += 6;
            } else r = 0xfffd;
          } else r = 0xfffd;
        }
        out.push(Buffer.from(String.fromCodePoint(r), 'utf8'));
      } else {
        out.push(Buffer.of(ESCAPED[e]!));
        i += 2;
      }
      run = i;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = utf8RuneLen(b, i);
    if (n === 0) {
      // Each byte of an invalid sequence becomes its own U+FFFD.
      flush(i);
      out.push(FFFD);
      i++;
      run = i;
      continue;
    }
    i += n;
  }
  flush(stop);
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

/** Up to this many bytes (quotes included), a string is checked for escapes and non-ASCII bytes in JS: two native calls cost more. */
const SHORT_STRING = 64;

/** Whether b[start, end) is ASCII with no backslash (control characters were refused by stringEnd). */
function plainAscii(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c >= 0x80 || c === 0x5c) return false;
  }
  return true;
}

/** Members of the object whose `{` is at b[i]; `depth` is its nesting depth (top level = 1). */
function objectMembers(b: Buffer, i: number, depth: number): { members: Member[]; end: number } {
  if (depth > MAX_DEPTH) throw new JsonError('exceeded max depth');
  const members: Member[] = [];
  i = skipWs(b, i + 1);
  if (b[i] === 0x7d) return { members, end: i + 1 };
  for (;;) {
    if (b[i] !== 0x22) throw new JsonError('invalid character looking for beginning of object key string');
    const ke = stringEnd(b, i);
    const key = unquote(b, i, ke);
    i = skipWs(b, ke);
    if (b[i] !== 0x3a) throw new JsonError('invalid character after object key');
    i = skipWs(b, i + 1);
    const kind = kindAt(b, i);
    const end = skipValue(b, i, depth);
    members.push({ key, kind, start: i, end });
    i = skipWs(b, end);
    if (b[i] === 0x2c) {
      i = skipWs(b, i + 1);
      continue;
    }
    if (b[i] === 0x7d) return { members, end: i + 1 };
    throw new JsonError(b[i] === undefined ? 'unexpected end of JSON input' : 'invalid character after object key:value pair');
  }
}

/** Elements of the array whose `[` is at b[i] (a span of a validated document). */
function arrayElements(b: Buffer, i: number): JsonSpan[] {
  const out: JsonSpan[] = [];
  i = skipWs(b, i + 1);
  if (b[i] === 0x5d) return out;
  for (;;) {
    const kind = kindAt(b, i);
    const end = skipValue(b, i, 0);
    out.push({ kind, start: i, end });
    i = skipWs(b, end);
    if (b[i] === 0x2c) {
      i = skipWs(b, i + 1);
      continue;
    }
    if (b[i] === 0x5d) return out;
    throw new JsonError(b[i] === undefined ? 'unexpected end of JSON input' : 'invalid character after array element');
  }
}

/**
 * The whole input as a Go struct target, validated first as Unmarshal does:
 * null when the document is the literal null (Unmarshal leaves the struct
 * zero), the top-level members in input order otherwise.
 */
export function topObject(b: Buffer): Member[] | null {
  let i = skipWs(b, 0);
  const kind = kindAt(b, i);
  let members: Member[] | null = null;
  let end: number;
  if (kind === 'object') ({ members, end } = objectMembers(b, i, 1));
  else end = skipValue(b, i, 0);
  i = skipWs(b, end);
  if (i !== b.length) throw new JsonError('invalid character after top-level value');
  if (kind === 'null') return null;
  if (kind !== 'object') throw new JsonError(`cannot unmarshal ${kind} into Go value of type struct`);
  return members;
}

/** Go's field-name folding for ASCII field names (KELVIN SIGN and LONG S are the only runes folding onto ASCII). */
function fold(key: Buffer): string | null {
  let s = '';
  for (const ch of key.toString('utf8')) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) s += ch.toUpperCase();
    else if (cp === 0x212a) s += 'K';
    else if (cp === 0x17f) s += 'S';
    else return null;
  }
  return s;
}

/** The struct field (json name) a key selects: the exact name first, then case-insensitively; null for none. */
export function matchField<F extends string>(key: Buffer, fields: readonly F[]): F | null {
  const k = key.toString('latin1');
  if ((fields as readonly string[]).includes(k) && Buffer.from(k, 'latin1').equals(key)) return k as F;
  const f = fold(key);
  if (f === null) return null;
  for (const name of fields) if (name.toUpperCase() === f) return name;
  return null;
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function typeErr(v: JsonSpan, want: string): JsonError {
  return new JsonError(`cannot unmarshal ${v.kind} into Go struct field of type ${want}`);
}

/** A string field: undefined = null (leave the field unchanged). */
export function fieldString(b: Buffer, v: JsonSpan): Buffer | undefined {
  if (v.kind === 'null') return undefined;
  if (v.kind !== 'string') throw typeErr(v, 'string');
  return unquote(b, v.start, v.end);
}

/** A bool field: undefined = null (leave the field unchanged). */
export function fieldBool(v: JsonSpan): boolean | undefined {
  if (v.kind === 'null') return undefined;
  if (v.kind === 'true') return true;
  if (v.kind === 'false') return false;
  throw typeErr(v, 'bool');
}

/**
 * The value of an integer literal b[start, end) of at most 15 digits (exact as a double), with
 * an optional "-" (not "-0"); null for anything else, which fieldInt reads the long way.
 */
function smallInteger(b: Buffer, start: number, end: number): number | null {
  const neg = b[start] === 0x2d;
  const from = neg ? start + 1 : start;
  if (end - from < 1 || end - from > 15) return null;
  let n = 0;
  for (let i = from; i < end; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return neg ? (n === 0 ? null : -n) : n;
}

/** An int64 or uintN field, as strconv.ParseInt/ParseUint read the literal; undefined = null (unchanged). */
export function fieldInt(b: Buffer, v: JsonSpan, kind: 'i64' | 'u64' | 'u32'): bigint | undefined {
  if (v.kind === 'null') return undefined;
  if (v.kind !== 'number') throw typeErr(v, kind);
  const small = smallInteger(b, v.start, v.end);
  if (small !== null && (kind === 'i64' || small >= 0) && (kind !== 'u32' || small < 2 ** 32)) return BigInt(small);
  const s = b.toString('latin1', v.start, v.end);
  if (kind === 'i64') {
    if (!/^-?[0-9]+$/.test(s)) throw new JsonError(`cannot unmarshal number ${s} into int64`);
    const n = BigInt(s);
    if (n < I64_MIN || n > I64_MAX) throw new JsonError(`number ${s} overflows int64`);
    return n;
  }
  if (!/^[0-9]+$/.test(s)) throw new JsonError(`cannot unmarshal number ${s} into ${kind}`);
  const n = BigInt(s);
  if (n >= 1n << (kind === 'u64' ? 64n : 32n)) throw new JsonError(`number ${s} overflows ${kind}`);
  return n;
}

/** A map or struct field: its members, or null for null (a map becomes nil, a struct stays unchanged). */
export function fieldObject(b: Buffer, v: JsonSpan, want: string): Member[] | null {
  if (v.kind === 'null') return null;
  if (v.kind !== 'object') throw typeErr(v, want);
  return objectMembers(b, v.start, 0).members;
}

/** A slice field: its elements, or null for null (the slice becomes nil). */
export function fieldArray(b: Buffer, v: JsonSpan, want: string): JsonSpan[] | null {
  if (v.kind === 'null') return null;
  if (v.kind !== 'array') throw typeErr(v, want);
  return arrayElements(b, v.start);
}

const STD_B64_RE = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Go's base64.StdEncoding.Decode (padded, non-strict, CR/LF skipped); throws on error. */
function decodeStdBase64(s: Buffer): Buffer {
  const clean = s.includes(0x0a) || s.includes(0x0d) ? Buffer.from(s.filter((c) => c !== 0x0a && c !== 0x0d)) : s;
  const text = clean.toString('latin1');
  if (clean.length % 4 !== 0 || !STD_B64_RE.test(text)) throw new JsonError('illegal base64 data');
  return Buffer.from(text, 'base64');
}

/** A []byte field: a base64 string or an array of numbers 0..255 (null elements are 0); null sets nil (returned as null). */
export function fieldBytes(b: Buffer, v: JsonSpan): Buffer | null {
  if (v.kind === 'null') return null;
  if (v.kind === 'array') {
    const els = arrayElements(b, v.start);
    const out = Buffer.alloc(els.length);
    els.forEach((el, i) => {
      if (el.kind === 'null') return;
      if (el.kind !== 'number') throw new JsonError(`cannot unmarshal ${el.kind} into Go value of type uint8`);
      const s = b.toString('latin1', el.start, el.end);
      if (!/^[0-9]+$/.test(s) || Number(s) > 255) throw new JsonError(`cannot unmarshal number ${s} into Go value of type uint8`);
      out[i] = Number(s);
    });
    return out;
  }
  if (v.kind !== 'string') throw typeErr(v, '[]uint8');
  return decodeStdBase64(unquote(b, v.start, v.end));
}

/** A json.RawMessage's bytes: the span with insignificant whitespace removed (json.Compact without HTML escaping). */
export function compact(b: Buffer, start: number, end: number): Buffer {
  const out: Buffer[] = [];
  let run = start;
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c === 0x22) {
      i = stringEnd(b, i);
      continue;
    }
    if (isWs(c)) {
      if (run < i) out.push(b.subarray(run, i));
      while (i < end && isWs(b[i])) i++;
      run = i;
      continue;
    }
    i++;
  }
  if (run < end) out.push(b.subarray(run, end));
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
