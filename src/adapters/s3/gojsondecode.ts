/**
 * A strict JSON reader with the decoding rules of Go's encoding/json that the
 * S3 records need: integers kept exact (uint64 HLCs and part versions exceed
 * 2^53), strings as UTF-8 bytes with invalid input bytes replaced one-for-one by
 * U+FFFD, struct fields matched exactly or else case-insensitively, null leaving
 * a field untouched, and a type mismatch failing the whole record.
 */

export type JVal =
  | { t: 'null' }
  | { t: 'bool'; v: boolean }
  | { t: 'num'; raw: string }
  | { t: 'str'; v: Buffer }
  | { t: 'arr'; v: JVal[] }
  | { t: 'obj'; v: [Buffer, JVal][] };

export class JsonDecodeError extends Error {}

const FFFD = Buffer.from([0xef, 0xbf, 0xbd]);

export function parseJson(src: Buffer): JVal {
  let i = 0;
  const fail = (m: string): never => {
    throw new JsonDecodeError(`invalid JSON at offset ${i}: ${m}`);
  };
  const ws = (): void => {
    while (i < src.length) {
      const c = src[i]!;
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const lit = (s: string): void => {
    for (let k = 0; k < s.length; k++) if (src[i + k] !== s.charCodeAt(k)) fail(`expected ${s}`);
    i += s.length;
  };
  const hex4 = (): number => {
    if (i + 4 > src.length) fail('short \\u escape');
    const s = src.toString('latin1', i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(s)) fail('bad \\u escape');
    i += 4;
    return parseInt(s, 16);
  };
  const str = (): Buffer => {
    i++; // opening quote
    const out: Buffer[] = [];
    let start = i;
    const push = (b: Buffer): void => void out.push(b);
    for (;;) {
      if (i >= src.length) fail('unterminated string');
      const c = src[i]!;
      if (c === 0x22) {
        push(src.subarray(start, i));
        i++;
        return Buffer.concat(out);
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        push(src.subarray(start, i));
        i++;
        const e = src[i];
        i++;
        switch (e) {
          case 0x22: push(Buffer.from('"')); break;
          case 0x5c: push(Buffer.from('\\')); break;
          case 0x2f: push(Buffer.from('/')); break;
          case 0x62: push(Buffer.from('\b')); break;
          case 0x66: push(Buffer.from('\f')); break;
          case 0x6e: push(Buffer.from('\n')); break;
          case 0x72: push(Buffer.from('\r')); break;
          case 0x74: push(Buffer.from('\t')); break;
          case 0x75: {
            let cp = hex4();
            if (cp >= 0xd800 && cp < 0xdc00) {
              // A high surrogate pairs only with a following \u low surrogate.
              if (src[i] === 0x5c && src[i + 1] === 0x75) {
                const save = i;
                i += 2;
                const lo = hex4();
                if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else {
                  i = save;
                  cp = 0xfffd;
                }
              } else cp = 0xfffd;
            } else if (cp >= 0xdc00 && cp < 0xe000) cp = 0xfffd;
            push(Buffer.from(String.fromCodePoint(cp), 'utf8'));
            break;
          }
          default:
            fail('bad escape');
        }
        start = i;
        continue;
      }
      if (c < 0x80) {
        i++;
        continue;
      }
      const n = runeLen(src, i);
      if (n === 0) {
        push(src.subarray(start, i));
        push(FFFD);
        i++;
        start = i;
      } else i += n;
    }
  };
  const num = (): string => {
    const s = i;
    if (src[i] === 0x2d) i++;
    if (src[i] === 0x30) i++;
    else if (src[i]! >= 0x31 && src[i]! <= 0x39) while (src[i]! >= 0x30 && src[i]! <= 0x39) i++;
    else fail('bad number');
    if (src[i] === 0x2e) {
      i++;
      if (!(src[i]! >= 0x30 && src[i]! <= 0x39)) fail('bad fraction');
      while (src[i]! >= 0x30 && src[i]! <= 0x39) i++;
    }
    if (src[i] === 0x65 || src[i] === 0x45) {
      i++;
      if (src[i] === 0x2b || src[i] === 0x2d) i++;
      if (!(src[i]! >= 0x30 && src[i]! <= 0x39)) fail('bad exponent');
      while (src[i]! >= 0x30 && src[i]! <= 0x39) i++;
    }
    return src.toString('latin1', s, i);
  };
  const value = (depth: number): JVal => {
    if (depth > 10000) fail('nesting too deep');
    ws();
    const c = src[i];
    if (c === undefined) return fail('unexpected end');
    if (c === 0x7b) {
      i++;
      const v: [Buffer, JVal][] = [];
      ws();
      if (src[i] === 0x7d) {
        i++;
        return { t: 'obj', v };
      }
      for (;;) {
        ws();
        if (src[i] !== 0x22) fail('expected object key');
        const k = str();
        ws();
        if (src[i] !== 0x3a) fail('expected colon');
        i++;
        v.push([k, value(depth + 1)]);
        ws();
        if (src[i] === 0x2c) {
          i++;
          continue;
        }
        if (src[i] === 0x7d) {
          i++;
          return { t: 'obj', v };
        }
        fail('expected , or }');
      }
    }
    if (c === 0x5b) {
      i++;
      const v: JVal[] = [];
      ws();
      if (src[i] === 0x5d) {
        i++;
        return { t: 'arr', v };
      }
      for (;;) {
        v.push(value(depth + 1));
        ws();
        if (src[i] === 0x2c) {
          i++;
          continue;
        }
        if (src[i] === 0x5d) {
          i++;
          return { t: 'arr', v };
        }
        fail('expected , or ]');
      }
    }
    if (c === 0x22) return { t: 'str', v: str() };
    if (c === 0x74) {
      lit('true');
      return { t: 'bool', v: true };
    }
    if (c === 0x66) {
      lit('false');
      return { t: 'bool', v: false };
    }
    if (c === 0x6e) {
      lit('null');
      return { t: 'null' };
    }
    return { t: 'num', raw: num() };
  };
  const v = value(0);
  ws();
  if (i !== src.length) fail('trailing data after top-level value');
  return v;
}

function runeLen(b: Buffer, i: number): number {
  const c0 = b[i]!;
  const cont = (j: number): boolean => j < b.length && (b[j]! & 0xc0) === 0x80;
  if (c0 >= 0xc2 && c0 <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = b[i + 1];
    if (c1 === undefined) return 0;
    if (c0 === 0xe0 && c1 < 0xa0) return 0;
    if (c0 === 0xed && c1 > 0x9f) return 0;
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

/** Go's bytes.EqualFold for the ASCII field names we match against. */
function foldKey(k: Buffer): string {
  return k
    .toString('utf8')
    .replace(/\u017f/g, 's')
    .replace(/\u212a/g, 'k')
    .toLowerCase();
}

/**
 * Visit the object's members as Go assigns them to a struct: each member goes
 * to the field with that exact name, else to a case-insensitive match; unknown
 * members are skipped. `fields` are the struct's json names.
 */
export function forEachField(v: JVal, fields: readonly string[], what: string, assign: (field: string, val: JVal) => void): void {
  if (v.t === 'null') return;
  if (v.t !== 'obj') throw new JsonDecodeError(`cannot unmarshal ${v.t} into ${what}`);
  const folded = new Map(fields.map((f) => [f.toLowerCase(), f]));
  for (const [k, val] of v.v) {
    const ks = k.toString('utf8');
    const f = fields.includes(ks) ? ks : folded.get(foldKey(k));
    if (f !== undefined) assign(f, val);
  }
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

export function asUint64(v: JVal, prev: bigint, what: string): bigint {
  if (v.t === 'null') return prev;
  if (v.t !== 'num' || !/^(0|[1-9][0-9]*)$/.test(v.raw)) throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into uint64 ${what}`);
  const n = BigInt(v.raw);
  if (n > U64_MAX) throw new JsonDecodeError(`number overflows uint64 ${what}`);
  return n;
}

export function asInt64(v: JVal, prev: bigint, what: string): bigint {
  if (v.t === 'null') return prev;
  if (v.t !== 'num' || !/^-?(0|[1-9][0-9]*)$/.test(v.raw)) throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into int64 ${what}`);
  const n = BigInt(v.raw);
  if (n < I64_MIN || n > I64_MAX) throw new JsonDecodeError(`number overflows int64 ${what}`);
  return n;
}

export function asString(v: JVal, prev: Buffer, what: string): Buffer {
  if (v.t === 'null') return prev;
  if (v.t !== 'str') throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into string ${what}`);
  return v.v;
}

export function asBool(v: JVal, prev: boolean, what: string): boolean {
  if (v.t === 'null') return prev;
  if (v.t !== 'bool') throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into bool ${what}`);
  return v.v;
}

/** map[string]string: null -> nil; members merge into an existing map; null member -> "". */
export function asStringMap(v: JVal, prev: Map<string, Buffer> | null, what: string): Map<string, Buffer> | null {
  if (v.t === 'null') return null;
  if (v.t !== 'obj') throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into map ${what}`);
  const m = prev ?? new Map<string, Buffer>();
  for (const [k, val] of v.v) {
    if (val.t === 'null') m.set(k.toString('latin1'), Buffer.alloc(0));
    else if (val.t === 'str') m.set(k.toString('latin1'), val.v);
    else throw new JsonDecodeError(`cannot unmarshal ${describe(val)} into string value of ${what}`);
  }
  return m;
}

export function asArray(v: JVal, what: string): JVal[] | null {
  if (v.t === 'null') return null;
  if (v.t !== 'arr') throw new JsonDecodeError(`cannot unmarshal ${describe(v)} into slice ${what}`);
  return v.v;
}

function describe(v: JVal): string {
  switch (v.t) {
    case 'num':
      return 'number';
    case 'str':
      return 'string';
    case 'arr':
      return 'array';
    case 'obj':
      return 'object';
    default:
      return v.t;
  }
}
