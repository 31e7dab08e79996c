/**
 * DynamoDB key layouts in elastickv's KV space (adapter/dynamodb_keys.go,
 * adapter/dynamodb_attrvalue.go) and the number canonicalisation the format
 * owner applies to numeric key attributes when naming files.
 *
 *   !ddb|meta|table|<b64url(table)>              schema (magic 00 'D' 'S' 01 + proto)
 *   !ddb|meta|gen|<b64url(table)>                generation counter (decimal text)
 *   !ddb|item|<b64url(table)>|<gen>|<hash><range>
 *       ordered encoding (key_encoding_version >= 2): each key attribute is its
 *       raw bytes with 0x00 escaped as 00 FF, terminated by 00 01; numbers use
 *       an order-preserving decimal encoding.
 *   !ddb|item|<b64url(table)>|<gen>|<b64url(hash)>|<b64url(range)>
 *       legacy encoding (older tables and migration sources).
 *   !ddb|gsi|...                                 index rows (never dumped)
 */

export const TABLE_META_PREFIX = '!ddb|meta|table|';
export const TABLE_GEN_PREFIX = '!ddb|meta|gen|';
export const ITEM_PREFIX = '!ddb|item|';

export const SCHEMA_MAGIC = Buffer.from([0x00, 0x44, 0x53, 0x01]);
export const ITEM_MAGIC = Buffer.from([0x00, 0x44, 0x49, 0x01]);

export const ORDERED_KEY_ENCODING = 2n;

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

export function tableMetaKey(encodedTable: string): Buffer {
  return latin1(TABLE_META_PREFIX + encodedTable);
}

export function tableGenKey(encodedTable: string): Buffer {
  return latin1(TABLE_GEN_PREFIX + encodedTable);
}

/** `!ddb|item|<enc>|<gen>|` */
export function itemGenPrefix(encodedTable: string, gen: bigint): Buffer {
  return latin1(`${ITEM_PREFIX}${encodedTable}|${gen.toString(10)}|`);
}

export const b64url = (b: Buffer): string => b.toString('base64url');

/** Go's base64.RawURLEncoding.DecodeString acceptance (non-strict: stray trailing bits allowed). */
export function decodeRawB64Url(s: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  return Buffer.from(s, 'base64url');
}

// ------------------------------------------------------------ ordered key segments

// elastickv's ordered segment codec (00 -> 00 FF, end 00 01), under this room's names.
export { encodeSegmentBytes as orderedSegment, segmentPrefix as orderedSegmentPrefix, readSegment as readOrderedSegment } from '../../format/segment.js';

// ------------------------------------------------------------ numbers

/** Go's unicode.IsSpace set (strings.TrimSpace). */
function isGoSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    c === 0x20 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

export function goTrimSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isGoSpace(s.charCodeAt(a))) a++;
  while (b > a && isGoSpace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

interface Rat {
  num: bigint;
  den: bigint;
}

function ratString(r: Rat): string {
  let { num, den } = r;
  if (num === 0n) return '0';
  const g = gcd(num, den);
  num /= g;
  den /= g;
  return den === 1n ? num.toString() : `${num}/${den}`;
}

const MAX_EXP5 = 1_000_000;
const MAX_EXP2 = 10_000_000;
const EOF = -1;

/** A byte reader with one byte of push-back (io.ByteScanner). */
class ByteScan {
  i = 0;
  constructor(private readonly b: Buffer) {}
  read(): number {
    return this.i < this.b.length ? this.b[this.i++]! : (this.i++, EOF);
  }
  unread(): void {
    this.i--;
  }
  atEnd(): boolean {
    return this.read() === EOF;
  }
}

const C = (ch: string): number => ch.charCodeAt(0);

/** math/big nat.scan with base 0: value, actual base, digit count (or -fraction digits), ok. */
function natScan(r: ByteScan, fracOk: boolean): { z: bigint; b: number; count: number; ok: boolean } {
  let prev = C('.');
  let invalSep = false;
  let ch = r.read();
  let b = 10;
  let prefix = 0;
  let count = 0;
  if (ch === C('0')) {
    prev = C('0');
    count = 1;
    ch = r.read();
    if (ch !== EOF) {
      if (ch === C('b') || ch === C('B')) [b, prefix] = [2, C('b')];
      else if (ch === C('o') || ch === C('O')) [b, prefix] = [8, C('o')];
      else if (ch === C('x') || ch === C('X')) [b, prefix] = [16, C('x')];
      else if (!fracOk) [b, prefix] = [8, C('0')];
      if (prefix !== 0) {
        count = 0;
        if (prefix !== C('0')) ch = r.read();
      }
    }
  }
  let z = 0n;
  let dp = -1;
  const bb = BigInt(b);
  while (ch !== EOF) {
    if (ch === C('.') && fracOk) {
      fracOk = false;
      if (prev === C('_')) invalSep = true;
      prev = C('.');
      dp = count;
    } else if (ch === C('_')) {
      if (prev !== C('0')) invalSep = true;
      prev = C('_');
    } else {
      let d = 99;
      if (ch >= C('0') && ch <= C('9')) d = ch - C('0');
      else if (ch >= C('a') && ch <= C('z')) d = ch - C('a') + 10;
      else if (ch >= C('A') && ch <= C('Z')) d = ch - C('A') + 10;
      if (d >= b) {
        r.unread();
        break;
      }
      prev = C('0');
      count++;
      z = z * bb + BigInt(d);
    }
    ch = r.read();
  }
  let ok = !(invalSep || prev === C('_'));
  if (count === 0) {
    if (prefix === C('0')) return { z: 0n, b: 10, count: 1, ok };
    ok = false;
  }
  if (dp >= 0) count = dp - count;
  return { z, b, count, ok };
}

const INT64_LIMIT = 1n << 63n;

/** math/big scanExponent(r, base2ok=true, sepOk=true). */
function scanExponent(r: ByteScan): { exp: bigint; base: number; ok: boolean } {
  let ch = r.read();
  if (ch === EOF) return { exp: 0n, base: 10, ok: true };
  let base: number;
  if (ch === C('e') || ch === C('E')) base = 10;
  else if (ch === C('p') || ch === C('P')) base = 2;
  else {
    r.unread();
    return { exp: 0n, base: 10, ok: true };
  }
  let digits = '';
  ch = r.read();
  if (ch === C('+') || ch === C('-')) {
    if (ch === C('-')) digits = '-';
    ch = r.read();
  }
  let prev = C('.');
  let invalSep = false;
  let has = false;
  while (ch !== EOF) {
    if (ch >= C('0') && ch <= C('9')) {
      digits += String.fromCharCode(ch);
      prev = C('0');
      has = true;
    } else if (ch === C('_')) {
      if (prev !== C('0')) invalSep = true;
      prev = C('_');
    } else {
      r.unread();
      break;
    }
    ch = r.read();
  }
  if (!has) return { exp: 0n, base, ok: false };
  const exp = BigInt(digits);
  if (exp >= INT64_LIMIT || exp < -INT64_LIMIT) return { exp: 0n, base, ok: false };
  return { exp, base, ok: !(invalSep || prev === C('_')) };
}

/** big.Int.SetString(s, 0) magnitude and sign, or null. */
function intSetString(s: Buffer): bigint | null {
  const r = new ByteScan(s);
  const c = r.read();
  if (c === EOF) return null;
  const neg = c === C('-');
  if (c !== C('-') && c !== C('+')) r.unread();
  const n = natScan(r, false);
  if (!n.ok || !r.atEnd()) return null;
  return neg ? -n.z : n.z;
}

/** big.Rat.SetString (fractions "a/b" and floating-point forms, all base prefixes and separators). */
function parseRat(text: string): Rat | null {
  const s = Buffer.from(text, 'utf8');
  if (s.length === 0) return null;
  const slash = s.indexOf(0x2f);
  if (slash >= 0) {
    const a = intSetString(s.subarray(0, slash));
    if (a === null) return null;
    const r = new ByteScan(s.subarray(slash + 1));
    const d = natScan(r, false);
    if (!d.ok || !r.atEnd() || d.z === 0n) return null;
    return { num: a, den: d.z };
  }
  const r = new ByteScan(s);
  const c = r.read();
  const neg = c === C('-');
  if (c !== C('-') && c !== C('+')) r.unread();
  const m = natScan(r, true);
  if (!m.ok) return null;
  const e = scanExponent(r);
  if (!e.ok || !r.atEnd()) return null;
  if (m.z === 0n) return { num: 0n, den: 1n };
  let exp2 = 0n;
  let exp5 = 0n;
  if (m.count < 0) {
    const d = BigInt(m.count);
    if (m.b === 10) [exp5, exp2] = [d, d];
    else if (m.b === 2) exp2 = d;
    else if (m.b === 8) exp2 = d * 3n;
    else exp2 = d * 4n;
  }
  if (e.base === 10) exp5 += e.exp;
  exp2 += e.exp;
  let num = m.z;
  let den = 1n;
  if (exp5 !== 0n) {
    const n = exp5 < 0n ? -exp5 : exp5;
    if (n > BigInt(MAX_EXP5)) return null;
    if (exp5 > 0n) num *= 5n ** n;
    else den = 5n ** n;
  }
  if (exp2 < -BigInt(MAX_EXP2) || exp2 > BigInt(MAX_EXP2)) return null;
  if (exp2 > 0n) num <<= exp2;
  else if (exp2 < 0n) den <<= -exp2;
  return { num: neg ? -num : num, den };
}

/** A plain decimal integer small enough for a double to hold exactly. */
const SMALL_INT = /^[+-]?[0-9]{1,15}$/;

/** The owner's canonicalDDBNumber: big.Rat round-trip, or the trimmed text when it does not parse. */
export function canonicalNumber(v: string): string {
  const t = goTrimSpace(v);
  // Most numbers are small integers: their big.Rat string is the integer's ("+07" -> "7", "-0" -> "0").
  if (SMALL_INT.test(t)) return String(Number(t) + 0);
  return ratCanonical(t);
}

/** canonicalNumber() through big.Rat's parser (any form); exported for the fast path's test. */
export function ratCanonical(t: string): string {
  const r = parseRat(t);
  return r ? ratString(r) : t;
}

function encodeOrderedUint64(v: bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(v);
  let start = 0;
  while (start < 7 && buf[start] === 0) start++;
  return Buffer.concat([Buffer.of(8 - start), buf.subarray(start)]);
}

const invert = (b: Buffer): Buffer => Buffer.from(b.map((x) => ~x & 0xff));

function encodeOrderedInt64(v: bigint): Buffer {
  if (v < 0n) return Buffer.concat([Buffer.of(0x00), invert(encodeOrderedUint64(-v))]);
  if (v === 0n) return Buffer.of(0x01);
  return Buffer.concat([Buffer.of(0x02), encodeOrderedUint64(v)]);
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** Order-preserving numeric key bytes from sign, significant digits and decimal exponent (value = 0.d1d2… × 10^exp). */
function encodeNumericParts(negative: boolean, digits: string, exponent: bigint): Buffer {
  if (digits.length === 0) return Buffer.of(0x01);
  const body = Buffer.concat([encodeOrderedInt64(exponent), Buffer.of(0x00), Buffer.from(digits, 'latin1')]);
  return negative ? Buffer.concat([Buffer.of(0x00), invert(body)]) : Buffer.concat([Buffer.of(0x02), body]);
}

/** The adapter's encodeNumericKeyBytes for a decimal literal; null when it rejects the text. */
export function numericKeyBytes(text: string): Buffer | null {
  let t = goTrimSpace(text);
  if (t === '') return null;
  let negative = false;
  if (t[0] === '+') t = t.slice(1);
  else if (t[0] === '-') {
    negative = true;
    t = t.slice(1);
  }
  if (t === '') return null;
  let exp10 = 0n;
  const ei = t.search(/[eE]/);
  if (ei >= 0) {
    const ep = goTrimSpace(t.slice(ei + 1));
    t = t.slice(0, ei);
    if (!/^[+-]?[0-9]+$/.test(ep)) return null;
    exp10 = BigInt(ep);
    if (exp10 < INT64_MIN || exp10 > INT64_MAX) return null;
  }
  if ((t.match(/\./g) ?? []).length > 1) return null;
  const [intPart = '', fracPart = ''] = t.split('.');
  if (intPart === '' && fracPart === '') return null;
  if (!/^[0-9]*$/.test(intPart) || !/^[0-9]*$/.test(fracPart)) return null;
  const combined = intPart + fracPart;
  const lead = combined.length - combined.replace(/^0+/, '').length;
  if (lead === combined.length) return Buffer.of(0x01);
  const digits = combined.slice(lead).replace(/0+$/, '');
  if (digits.length === 0) return Buffer.of(0x01);
  const exponent = BigInt(intPart.length) + exp10 - BigInt(lead);
  return encodeNumericParts(negative, digits, BigInt.asIntN(64, exponent));
}

function readOrderedInt64(b: Buffer, pos: number): { v: bigint; next: number } | null {
  const tag = b[pos];
  if (tag === 0x01) return { v: 0n, next: pos + 1 };
  if (tag !== 0x00 && tag !== 0x02) return null;
  const lenByte = b[pos + 1];
  if (lenByte === undefined) return null;
  const width = tag === 0x00 ? ~lenByte & 0xff : lenByte;
  if (width < 1 || width > 8 || pos + 2 + width > b.length) return null;
  let mag = 0n;
  for (let i = 0; i < width; i++) {
    const x = b[pos + 2 + i]!;
    mag = (mag << 8n) | BigInt(tag === 0x00 ? ~x & 0xff : x);
  }
  return { v: tag === 0x00 ? -mag : mag, next: pos + 2 + width };
}

/** Numeric key bytes -> the owner's canonical (big.Rat) string, or null when malformed. */
export function numericKeyToCanonical(raw: Buffer): string | null {
  if (raw.length === 1 && raw[0] === 0x01) return '0';
  if (raw.length < 2) return null;
  const negative = raw[0] === 0x00;
  if (!negative && raw[0] !== 0x02) return null;
  const body = negative ? invert(raw.subarray(1)) : raw.subarray(1);
  const e = readOrderedInt64(body, 0);
  if (!e || body[e.next] !== 0x00) return null;
  const digits = body.subarray(e.next + 1).toString('latin1');
  if (!/^[0-9]+$/.test(digits) || digits[0] === '0' || digits.endsWith('0')) return null;
  // An integer of at most 15 digits (most keys): its digits, then exp - n zeros.
  if (e.v >= BigInt(digits.length) && e.v <= 15n) return (negative ? '-' : '') + digits + '0'.repeat(Number(e.v) - digits.length);
  // value = 0.digits × 10^exp = digits × 10^(exp - n)
  const shift = e.v - BigInt(digits.length);
  if (shift > BigInt(MAX_EXP5) || shift < -BigInt(MAX_EXP5)) return null;
  let num = BigInt(digits);
  let den = 1n;
  if (shift >= 0n) num *= 10n ** shift;
  else den = 10n ** -shift;
  return ratString({ num: negative ? -num : num, den });
}

/** A canonical number filename ("12", "-1/2") -> numeric key bytes; null when not a finite decimal. */
export function canonicalToNumericKey(canon: string): Buffer | null {
  const m = /^(-?)([0-9]+)(?:\/([0-9]+))?$/.exec(canon);
  if (!m) return null;
  const num = BigInt(m[2]!);
  const den = m[3] !== undefined ? BigInt(m[3]) : 1n;
  if (den === 0n) return null;
  if (num === 0n) return Buffer.of(0x01);
  // den must be 2^a 5^b for a finite decimal expansion: scale to 10^k.
  let d = den;
  let twos = 0;
  let fives = 0;
  while (d % 2n === 0n) {
    d /= 2n;
    twos++;
  }
  while (d % 5n === 0n) {
    d /= 5n;
    fives++;
  }
  if (d !== 1n) return null;
  const k = Math.max(twos, fives);
  const scaled = (num * 10n ** BigInt(k)) / den; // exact
  const s = scaled.toString();
  const digits = s.replace(/0+$/, '');
  const exponent = BigInt(s.length - k);
  return encodeNumericParts(m[1] === '-', digits, exponent);
}
