/**
 * Go encoding/json (v1) Unmarshal quirks of src/format/gojson-decode.ts. Every
 * expectation in the struct table was produced by Go 1.26's json.Unmarshal
 * into the struct written out in its comment.
 */
import { describe, expect, it } from 'vitest';
import { compact, fieldArray, fieldBool, fieldBytes, fieldInt, fieldObject, fieldString, JsonError, matchField, topObject, validUtf8 } from '../src/format/gojson-decode.js';

/** Raw bytes (each char one byte), for input that is not valid UTF-8. */
const raw = (s: string): Buffer => Buffer.from(s, 'latin1');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/**
 * type Q struct {
 *   S string `json:"s"`; I int64 `json:"i"`; U uint64 `json:"u"`; U32 uint32 `json:"u32"`
 *   B bool `json:"b"`; Y []byte `json:"y"`; Kind string `json:"kind"`
 * }
 * Strings and bytes as hex; y null = nil slice.
 */
interface Q {
  s: string;
  i: bigint;
  u: bigint;
  u32: bigint;
  b: boolean;
  y: string | null;
  kind: string;
}
const Q_FIELDS = ['s', 'i', 'u', 'u32', 'b', 'y', 'kind'] as const;
const ZERO: Q = { s: '', i: 0n, u: 0n, u32: 0n, b: false, y: null, kind: '' };

/** json.Unmarshal(doc, &q) as the adapter rooms do it: members in order, so the last duplicate wins. */
function unmarshalQ(doc: Buffer): Q | 'error' {
  const q = { ...ZERO };
  try {
    for (const m of topObject(doc) ?? []) {
      switch (matchField(m.key, Q_FIELDS)) {
        case 's':
          q.s = fieldString(doc, m)?.toString('hex') ?? q.s;
          break;
        case 'i':
          q.i = fieldInt(doc, m, 'i64') ?? q.i;
          break;
        case 'u':
          q.u = fieldInt(doc, m, 'u64') ?? q.u;
          break;
        case 'u32':
          q.u32 = fieldInt(doc, m, 'u32') ?? q.u32;
          break;
        case 'b':
          q.b = fieldBool(m) ?? q.b;
          break;
        case 'y':
          q.y = fieldBytes(doc, m)?.toString('hex') ?? null;
          break;
        case 'kind':
          q.kind = fieldString(doc, m)?.toString('utf8') ?? q.kind;
          break;
      }
    }
  } catch (e) {
    if (e instanceof JsonError) return 'error';
    throw e;
  }
  return q;
}

const hex = (s: string): string => utf8(s).toString('hex');

// [input, Go's result ('error' when Unmarshal fails, else the non-zero fields)]
const TABLE: [string, Buffer, Partial<Q> | 'error'][] = [
  // strings: escapes, surrogates, invalid UTF-8 (each bad byte its own U+FFFD)
  ['plain string', utf8('{"s":"plain"}'), { s: hex('plain') }],
  ['short escapes', utf8('{"s":"a\\"\\\\\\/\\b\\f\\n\\r\\t"}'), { s: '61225c2f080c0a0d09' }],
  ['\\u escapes and a surrogate pair', utf8('{"s":"\\u00e9\\ud83d\\ude00"}'), { s: 'c3a9f09f9880' }],
  ['lone high surrogate', utf8('{"s":"\\ud800"}'), { s: 'efbfbd' }],
  ['lone low surrogate', utf8('{"s":"\\udc00x"}'), { s: 'efbfbd78' }],
  ['high surrogate then a non-surrogate escape', utf8('{"s":"\\ud800\\u0041"}'), { s: 'efbfbd41' }],
  ['high, high, low', utf8('{"s":"\\ud800\\ud800\\udc00"}'), { s: 'efbfbdf0908080' }],
  ['invalid byte', raw('{"s":"a\xffb"}'), { s: '61efbfbd62' }],
  ['truncated 4-byte sequence', raw('{"s":"\xf0\x9f\x98"}'), { s: 'efbfbd'.repeat(3) }],
  ['overlong encoding', raw('{"s":"\xc0\xaf"}'), { s: 'efbfbd'.repeat(2) }],
  ['UTF-8-encoded surrogate', raw('{"s":"\xed\xa0\x80"}'), { s: 'efbfbd'.repeat(3) }],
  ['code point past U+10FFFF', raw('{"s":"\xf4\x90\x80\x80"}'), { s: 'efbfbd'.repeat(4) }],
  // integers as strconv reads them
  ['int64 -0', utf8('{"i":-0}'), {}],
  ['int64 max', utf8('{"i":9223372036854775807}'), { i: 9223372036854775807n }],
  ['int64 max + 1', utf8('{"i":9223372036854775808}'), 'error'],
  ['int64 min', utf8('{"i":-9223372036854775808}'), { i: -9223372036854775808n }],
  ['int64 min - 1', utf8('{"i":-9223372036854775809}'), 'error'],
  ['int64 from 1.0', utf8('{"i":1.0}'), 'error'],
  ['int64 from 1e3', utf8('{"i":1e3}'), 'error'],
  ['int64 from a string', utf8('{"i":"1"}'), 'error'],
  ['uint64 max', utf8('{"u":18446744073709551615}'), { u: 18446744073709551615n }],
  ['uint64 max + 1', utf8('{"u":18446744073709551616}'), 'error'],
  ['uint64 -0', utf8('{"u":-0}'), 'error'],
  ['uint64 -1', utf8('{"u":-1}'), 'error'],
  ['uint32 max', utf8('{"u32":4294967295}'), { u32: 4294967295n }],
  // 15 digits are read as a double (exact); 16 and more as BigInt
  ['int64 of 15 digits', utf8('{"i":-999999999999999}'), { i: -999999999999999n }],
  ['int64 of 16 digits past 2^53', utf8('{"i":9007199254740993}'), { i: 9007199254740993n }],
  ['uint64 of 17 digits', utf8('{"u":12345678901234567}'), { u: 12345678901234567n }],
  ['uint32 -5', utf8('{"u32":-5}'), 'error'],
  ['uint32 max + 1', utf8('{"u32":4294967296}'), 'error'],
  // null, types, duplicates, field matching
  ['null leaves a set field', utf8('{"b":true,"b":null}'), { b: true }],
  ['bool from a number', utf8('{"b":1}'), 'error'],
  ['string from a number', utf8('{"s":1}'), 'error'],
  ['duplicates: the last (case-insensitive) wins', utf8('{"s":"x","S":"y"}'), { s: hex('y') }],
  ['duplicate null keeps the earlier value', utf8('{"s":"x","s":null}'), { s: hex('x') }],
  ['LONG S folds onto s', utf8('{"\u017f":"long s"}'), { s: hex('long s') }],
  ['KELVIN SIGN folds onto k', utf8('{"\u212aind":"kelvin"}'), { kind: 'kelvin' }],
  ['dotless i does not fold onto i', utf8('{"\u0131":"dotless"}'), {}],
  ['keys are unquoted before matching', utf8('{"\\u0073":"escaped key"}'), { s: hex('escaped key') }],
  ['upper-case key', utf8('{"KIND":"upper"}'), { kind: 'upper' }],
  // []byte: standard base64 (padded, CR/LF ignored, non-zero trailing bits allowed) or numbers 0..255
  ['base64', utf8('{"y":"QUJD"}'), { y: '414243' }],
  ['base64 padded', utf8('{"y":"QQ=="}'), { y: '41' }],
  ['base64 non-zero trailing bits', utf8('{"y":"QR=="}'), { y: '41' }],
  ['base64 unpadded', utf8('{"y":"QQ"}'), 'error'],
  ['base64 with CR LF', utf8('{"y":"QU\\r\\nJD"}'), { y: '414243' }],
  ['base64 URL alphabet', utf8('{"y":"_-8="}'), 'error'],
  ['base64 written with \\u escapes', utf8('{"y":"\\u0051\\u0051=="}'), { y: '41' }],
  ['base64 too much padding', utf8('{"y":"QQ==="}'), 'error'],
  ['base64 one char then padding', utf8('{"y":"Q==="}'), 'error'],
  ['byte array', utf8('{"y":[104,105]}'), { y: '6869' }],
  ['byte array null element is 0', utf8('{"y":[1,null,2]}'), { y: '010002' }],
  ['empty byte array is empty, not nil', utf8('{"y":[]}'), { y: '' }],
  ['byte array 256', utf8('{"y":[256]}'), 'error'],
  ['byte array -1', utf8('{"y":[-1]}'), 'error'],
  ['byte array 1.0', utf8('{"y":[1.0]}'), 'error'],
  ['byte array string element', utf8('{"y":["a"]}'), 'error'],
  ['null []byte is nil', utf8('{"y":null}'), { y: null }],
  // documents and syntax
  ['top-level null', utf8('null'), {}],
  ['empty object with whitespace', utf8(' {} '), {}],
  ['top-level array', utf8('[]'), 'error'],
  ['top-level string', utf8('"x"'), 'error'],
  ['trailing data', utf8('{"s":"x"} x'), 'error'],
  ['trailing comma', utf8('{"s":"x",}'), 'error'],
  ['leading zero', utf8('{"s":01}'), 'error'],
  ['control character in a string', utf8('{"s":"a\t"}'), 'error'],
  ['unknown escape', utf8('{"s":"\\x"}'), 'error'],
  ['short \\u escape', utf8('{"s":"\\u12"}'), 'error'],
  ['single quotes', utf8("{'s':1}"), 'error'],
  ['empty input', utf8(''), 'error'],
  ['whitespace only', utf8(' '), 'error'],
  ['bare minus', utf8('{"i":-}'), 'error'],
  ['no fraction digits', utf8('{"i":1.}'), 'error'],
  ['no integer digits', utf8('{"i":.5}'), 'error'],
  ['plus sign', utf8('{"i":+1}'), 'error'],
  ['no exponent digits', utf8('{"i":1e}'), 'error'],
  ['trailing comma in an array', utf8('{"y":[1,]}'), 'error'],
  ['truncated true', utf8('{"x":tru}'), 'error'],
  ['truncated null', utf8('{"x":nul}'), 'error'],
];

describe('gojson-decode: json.Unmarshal into a struct (expectations from Go)', () => {
  it.each(TABLE)('%s', (_name, doc, want) => {
    expect(unmarshalQ(doc)).toEqual(want === 'error' ? 'error' : { ...ZERO, ...want });
  });

  it('syntax errors anywhere fail the document, even in members no field takes', () => {
    expect(unmarshalQ(utf8('{"other":[1,{"a":tru}],"s":"x"}'))).toBe('error');
    expect(unmarshalQ(utf8('{"other":"\\q","s":"x"}'))).toBe('error');
    expect(unmarshalQ(utf8('{"other":[1,{"a":true}],"s":"x"}'))).toEqual({ ...ZERO, s: hex('x') });
  });

  it('nesting: 10000 containers decode, 10001 fail ("exceeded max depth"), without recursion', () => {
    const doc = (containers: number, inner: string): Buffer => utf8(`{"x":${'['.repeat(containers - 1)}${inner}${']'.repeat(containers - 1)}}`);
    expect(unmarshalQ(doc(10000, ''))).toEqual(ZERO);
    expect(unmarshalQ(doc(10000, '1'))).toEqual(ZERO);
    expect(unmarshalQ(doc(10001, ''))).toBe('error');
    expect(unmarshalQ(doc(10001, '1'))).toBe('error');
    expect(() => topObject(doc(10001, ''))).toThrow('exceeded max depth');
  });
});

describe('gojson-decode: spans and readers', () => {
  it('topObject: members in input order with kinds and exact value spans; duplicates kept', () => {
    const doc = utf8(' { "a" : 1 , "A":"x", "a":null,"o":{"k":[]},"t":true,"f":false } ');
    const members = topObject(doc)!;
    expect(members.map((m) => [m.key.toString(), m.kind, doc.toString('utf8', m.start, m.end)])).toEqual([
      ['a', 'number', '1'],
      ['A', 'string', '"x"'],
      ['a', 'null', 'null'],
      ['o', 'object', '{"k":[]}'],
      ['t', 'true', 'true'],
      ['f', 'false', 'false'],
    ]);
    expect(topObject(utf8(' null '))).toBeNull();
  });

  it('errors are JsonError with Go-like messages', () => {
    expect(() => topObject(utf8('[1]'))).toThrow(new JsonError('cannot unmarshal array into Go value of type struct'));
    expect(() => topObject(utf8('{} {}'))).toThrow(new JsonError('invalid character after top-level value'));
    expect(() => topObject(utf8('{"a":1'))).toThrow(new JsonError('unexpected end of JSON input'));
    const [m] = topObject(utf8('{"a":"1"}'))!;
    expect(() => fieldInt(utf8('{"a":"1"}'), m!, 'u64')).toThrow(new JsonError('cannot unmarshal string into Go struct field of type u64'));
  });

  it('strings without escapes or bad bytes are views of the input (zero-copy); others are new buffers', () => {
    const doc = utf8('{"a":"plain é","b":"esc\\n"}');
    const [a, b] = topObject(doc)!;
    const sa = fieldString(doc, a!)!;
    expect(sa.toString()).toBe('plain é');
    expect(sa.buffer).toBe(doc.buffer);
    expect(sa.byteOffset).toBe(doc.byteOffset + a!.start + 1);
    expect(fieldString(doc, b!)!.toString()).toBe('esc\n');
    expect(a!.key.buffer).toBe(doc.buffer);
  });

  it('matchField: exact name first, then the first case-insensitive match; non-ASCII keys only via K and LONG S', () => {
    const fields = ['ab', 'AB', 'kind'] as const;
    expect(matchField(utf8('AB'), fields)).toBe('AB');
    expect(matchField(utf8('ab'), fields)).toBe('ab');
    expect(matchField(utf8('Ab'), fields)).toBe('ab');
    expect(matchField(utf8('\u212aIND'), fields)).toBe('kind');
    expect(matchField(utf8('k\u0131nd'), fields)).toBeNull();
    expect(matchField(utf8('kind\u00e9'), fields)).toBeNull();
    expect(matchField(raw('kin\xe4'), fields)).toBeNull();
    expect(matchField(utf8('other'), fields)).toBeNull();
  });

  it('fieldObject / fieldArray: null -> null, wrong kind -> error, else members / elements', () => {
    const doc = utf8('{"m":{"a":1,"a":{"x":[2]}},"l":[1, null ,"x",[]],"n":null,"s":"x"}');
    const [m, l, n, s] = topObject(doc)!;
    expect(fieldObject(doc, m!, 'map')!.map((e) => [e.key.toString(), e.kind, doc.toString('utf8', e.start, e.end)])).toEqual([
      ['a', 'number', '1'],
      ['a', 'object', '{"x":[2]}'],
    ]);
    expect(fieldArray(doc, l!, '[]T')!.map((e) => [e.kind, doc.toString('utf8', e.start, e.end)])).toEqual([
      ['number', '1'],
      ['null', 'null'],
      ['string', '"x"'],
      ['array', '[]'],
    ]);
    expect(fieldObject(doc, n!, 'map')).toBeNull();
    expect(fieldArray(doc, n!, '[]T')).toBeNull();
    expect(() => fieldObject(doc, s!, 'map')).toThrow(new JsonError('cannot unmarshal string into Go struct field of type map'));
    expect(() => fieldArray(doc, s!, '[]T')).toThrow(new JsonError('cannot unmarshal string into Go struct field of type []T'));
  });

  it('null readers return undefined so the field keeps its value; []byte null is nil', () => {
    const doc = utf8('{"n":null}');
    const [n] = topObject(doc)!;
    expect(fieldString(doc, n!)).toBeUndefined();
    expect(fieldBool(n!)).toBeUndefined();
    expect(fieldInt(doc, n!, 'i64')).toBeUndefined();
    expect(fieldBytes(doc, n!)).toBeNull();
  });

  it('compact (json.RawMessage): whitespace outside strings removed, string bytes (even invalid UTF-8) kept', () => {
    const doc = Buffer.concat([utf8('{"a": { "k" : [1, 2] ,\n\t"s":"x  y\\" z", "r":"'), raw('\xff'), utf8('" } }')]);
    const [a] = topObject(doc)!;
    expect(compact(doc, a!.start, a!.end)).toEqual(Buffer.concat([utf8('{"k":[1,2],"s":"x  y\\" z","r":"'), raw('\xff'), utf8('"}')]));
    const plain = utf8('{"a":[1,2]}');
    const [p] = topObject(plain)!;
    expect(compact(plain, p!.start, p!.end).buffer).toBe(plain.buffer);
  });

  it('validUtf8 is utf8.Valid', () => {
    expect(validUtf8(utf8('é\u{1f600}'))).toBe(true);
    expect(validUtf8(raw('\xed\xa0\x80'))).toBe(false);
    expect(validUtf8(raw('\xc0\xaf'))).toBe(false);
    expect(validUtf8(raw('\xf4\x90\x80\x80'))).toBe(false);
    expect(validUtf8(raw('\xf0\x9f\x98'))).toBe(false);
  });
});
