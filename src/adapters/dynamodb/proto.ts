/**
 * A small protobuf wire codec for the DynamoDB adapter's stored messages
 * (elastickv proto/dynamodb_internal.proto): DynamoTableSchema behind the
 * schema magic, DynamoItem behind the item magic.
 *
 * Decoding follows the Go protobuf runtime the format owner uses: proto3
 * string fields must be valid UTF-8, a known field seen with the wrong wire
 * type is skipped as unknown, a repeated occurrence of a message field merges
 * into the earlier one, the last occurrence of a scalar (or of a oneof case)
 * wins, map entries with a missing key/value take the zero value and a later
 * duplicate key replaces an earlier one, groups of unknown fields are skipped
 * (the wire rules themselves are format/protowire.ts's).
 */

import { eachField as fields, ProtoError } from '../../format/protowire.js';

export { ProtoError };

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function str(b: Buffer): string {
  try {
    return utf8Decoder.decode(b);
  } catch {
    throw new ProtoError('string field contains invalid UTF-8');
  }
}

/** One map entry (key = field 1, value = field 2); missing parts are the zero value. */
function mapEntry<V>(buf: Buffer, depth: number, zero: () => V, value: (b: Buffer, prev: V) => V): [string, V] {
  let key = '';
  let v = zero();
  fields(buf, depth, (f, w, r) => {
    if (f === 1 && w === 2) {
      key = str(r.bytes());
      return true;
    }
    if (f === 2 && w === 2) {
      v = value(r.bytes(), v);
      return true;
    }
    return false;
  });
  return [key, v];
}

// ---------------------------------------------------------------- messages

export interface KeySchema {
  hashKey: string;
  rangeKey: string;
}
export interface GsiProjection {
  projectionType: string;
  nonKeyAttributes: string[];
}
export interface Gsi {
  keySchema: KeySchema | null;
  projection: GsiProjection | null;
}
export interface TableSchema {
  tableName: string;
  attributeDefinitions: Map<string, string>;
  primaryKey: KeySchema | null;
  globalSecondaryIndexes: Map<string, Gsi>;
  keyEncodingVersion: bigint;
  migratingFromGeneration: bigint;
  generation: bigint;
}

/** DynamoAttributeValue: the oneof case, or `none` when no case is set. */
export type AttrValue =
  | { t: 'none' }
  | { t: 'S'; v: string }
  | { t: 'N'; v: string }
  | { t: 'B'; v: Buffer }
  | { t: 'BOOL'; v: boolean }
  | { t: 'NULL'; v: boolean }
  | { t: 'SS'; v: string[] }
  | { t: 'NS'; v: string[] }
  | { t: 'BS'; v: Buffer[] }
  | { t: 'L'; v: AttrValue[] }
  | { t: 'M'; v: Map<string, AttrValue> };

export type Item = Map<string, AttrValue>;

function decodeKeySchema(buf: Buffer, prev: KeySchema | null, depth: number): KeySchema {
  const ks: KeySchema = prev ?? { hashKey: '', rangeKey: '' };
  fields(buf, depth, (f, w, r) => {
    if (w !== 2 || (f !== 1 && f !== 2)) return false;
    const s = str(r.bytes());
    if (f === 1) ks.hashKey = s;
    else ks.rangeKey = s;
    return true;
  });
  return ks;
}

function decodeProjection(buf: Buffer, prev: GsiProjection | null, depth: number): GsiProjection {
  const p: GsiProjection = prev ?? { projectionType: '', nonKeyAttributes: [] };
  fields(buf, depth, (f, w, r) => {
    if (w !== 2 || (f !== 1 && f !== 2)) return false;
    const s = str(r.bytes());
    if (f === 1) p.projectionType = s;
    else p.nonKeyAttributes.push(s);
    return true;
  });
  return p;
}

function decodeGsi(buf: Buffer, prev: Gsi, depth: number): Gsi {
  fields(buf, depth, (f, w, r) => {
    if (w !== 2) return false;
    if (f === 1) prev.keySchema = decodeKeySchema(r.bytes(), prev.keySchema, depth + 1);
    else if (f === 2) prev.projection = decodeProjection(r.bytes(), prev.projection, depth + 1);
    else return false;
    return true;
  });
  return prev;
}

export function decodeTableSchema(buf: Buffer): TableSchema {
  const s: TableSchema = {
    tableName: '',
    attributeDefinitions: new Map(),
    primaryKey: null,
    globalSecondaryIndexes: new Map(),
    keyEncodingVersion: 0n,
    migratingFromGeneration: 0n,
    generation: 0n,
  };
  fields(buf, 0, (f, w, r) => {
    switch (f) {
      case 1:
        if (w !== 2) return false;
        s.tableName = str(r.bytes());
        return true;
      case 2: {
        if (w !== 2) return false;
        const [k, v] = mapEntry(r.bytes(), 1, () => '', (b) => str(b));
        s.attributeDefinitions.set(k, v);
        return true;
      }
      case 3:
        if (w !== 2) return false;
        s.primaryKey = decodeKeySchema(r.bytes(), s.primaryKey, 1);
        return true;
      case 4: {
        if (w !== 2) return false;
        const [k, v] = mapEntry<Gsi>(r.bytes(), 1, () => ({ keySchema: null, projection: null }), (b, prev) => decodeGsi(b, prev, 2));
        s.globalSecondaryIndexes.set(k, v);
        return true;
      }
      case 5:
      case 6:
      case 7: {
        if (w !== 0) return false;
        const v = r.varint();
        if (f === 5) s.keyEncodingVersion = v;
        else if (f === 6) s.migratingFromGeneration = v;
        else s.generation = v;
        return true;
      }
    }
    return false;
  });
  return s;
}

function decodeStrings(buf: Buffer, into: string[], depth: number): string[] {
  fields(buf, depth, (f, w, r) => {
    if (f !== 1 || w !== 2) return false;
    into.push(str(r.bytes()));
    return true;
  });
  return into;
}

function decodeAttrValue(buf: Buffer, prev: AttrValue, depth: number): AttrValue {
  let av = prev;
  fields(buf, depth, (f, w, r) => {
    if (f === 4 || f === 5) {
      if (w !== 0) return false;
      const v = r.bool();
      av = f === 4 ? { t: 'BOOL', v } : { t: 'NULL', v };
      return true;
    }
    if (w !== 2 || f < 1 || f > 10) return false;
    const b = r.bytes();
    switch (f) {
      case 1:
        av = { t: 'S', v: str(b) };
        break;
      case 2:
        av = { t: 'N', v: str(b) };
        break;
      case 3:
        av = { t: 'B', v: Buffer.from(b) };
        break;
      case 6:
        av = { t: 'SS', v: decodeStrings(b, av.t === 'SS' ? av.v : [], depth + 1) };
        break;
      case 7:
        av = { t: 'NS', v: decodeStrings(b, av.t === 'NS' ? av.v : [], depth + 1) };
        break;
      case 8: {
        const into = av.t === 'BS' ? av.v : [];
        fields(b, depth + 1, (f2, w2, r2) => {
          if (f2 !== 1 || w2 !== 2) return false;
          into.push(Buffer.from(r2.bytes()));
          return true;
        });
        av = { t: 'BS', v: into };
        break;
      }
      case 9: {
        const into = av.t === 'L' ? av.v : [];
        fields(b, depth + 1, (f2, w2, r2) => {
          if (f2 !== 1 || w2 !== 2) return false;
          into.push(decodeAttrValue(r2.bytes(), { t: 'none' }, depth + 2));
          return true;
        });
        av = { t: 'L', v: into };
        break;
      }
      case 10: {
        const into = av.t === 'M' ? av.v : new Map<string, AttrValue>();
        fields(b, depth + 1, (f2, w2, r2) => {
          if (f2 !== 1 || w2 !== 2) return false;
          const [k, v] = mapEntry<AttrValue>(r2.bytes(), depth + 2, () => ({ t: 'none' }), (eb, p) => decodeAttrValue(eb, p, depth + 3));
          into.set(k, v);
          return true;
        });
        av = { t: 'M', v: into };
        break;
      }
    }
    return true;
  });
  return av;
}

/**
 * DynamoItem: the flat shape nearly every stored item has, read straight off the bytes
 * (decodeFlatItem), else the general decoder. They agree on every input the flat reader
 * takes, and it takes none it is unsure of (see its test).
 */
export function decodeItem(buf: Buffer): Item {
  return decodeFlatItem(buf) ?? decodeItemFields(buf);
}

/** A length or tag varint of at most two bytes at `pos` (below 16384), or -1. */
function short(buf: Buffer, pos: number): number {
  const a = buf[pos];
  if (a === undefined) return -1;
  if (a < 0x80) return a;
  const b = buf[pos + 1];
  return b === undefined || b >= 0x80 ? -1 : (a & 0x7f) | (b << 7);
}

/** Bytes of a varint below 16384. */
const shortLen = (n: number): number => (n < 0x80 ? 1 : 2);

/** UTF-8 text of buf[s, e): plain ASCII as latin1, else strictly decoded; null when invalid. */
function text(buf: Buffer, s: number, e: number): string | null {
  for (let i = s; i < e; i++) {
    if (buf[i]! >= 0x80) {
      try {
        return utf8Decoder.decode(buf.subarray(s, e));
      } catch {
        return null;
      }
    }
  }
  return buf.toString('latin1', s, e);
}

/**
 * A DynamoItem whose every map entry is its key (field 1) then its value (field 2), once
 * each, with lengths below 16384, and whose every value sets one scalar case once (S, N, B,
 * BOOL, NULL) and nothing else; null for anything else (empty values, sets, lists, maps,
 * unknown or repeated fields, invalid UTF-8, malformed input), which the general decoder
 * reads (and rejects) by the Go runtime's rules. No closures, readers or views per field:
 * ~4x faster on the bench's items.
 */
function decodeFlatItem(buf: Buffer): Item | null {
  const item: Item = new Map();
  const end = buf.length;
  let pos = 0;
  while (pos < end) {
    if (buf[pos] !== 0x0a) return null;
    const len = short(buf, pos + 1);
    if (len < 0) return null;
    pos += 1 + shortLen(len);
    const entryEnd = pos + len;
    if (entryEnd > end || buf[pos] !== 0x0a) return null;
    const klen = short(buf, pos + 1);
    if (klen < 0) return null;
    pos += 1 + shortLen(klen);
    const kEnd = pos + klen;
    if (kEnd > entryEnd) return null;
    const key = text(buf, pos, kEnd);
    if (key === null || buf[kEnd] !== 0x12) return null;
    const vlen = short(buf, kEnd + 1);
    if (vlen < 0) return null;
    pos = kEnd + 1 + shortLen(vlen);
    if (pos + vlen !== entryEnd || vlen === 0) return null;
    const tag = buf[pos]!;
    let av: AttrValue;
    if (tag === 0x0a || tag === 0x12 || tag === 0x1a) {
      const n = short(buf, pos + 1);
      if (n < 0) return null;
      const s = pos + 1 + shortLen(n);
      if (s + n !== entryEnd) return null;
      if (tag === 0x1a) av = { t: 'B', v: Buffer.from(buf.subarray(s, s + n)) };
      else {
        const v = text(buf, s, s + n);
        if (v === null) return null;
        av = tag === 0x0a ? { t: 'S', v } : { t: 'N', v };
      }
    } else if (tag === 0x20 || tag === 0x28) {
      const b = buf[pos + 1];
      if (b === undefined || b >= 0x80 || pos + 2 !== entryEnd) return null;
      av = tag === 0x20 ? { t: 'BOOL', v: b !== 0 } : { t: 'NULL', v: b !== 0 };
    } else return null;
    item.set(key, av);
    pos = entryEnd;
  }
  return item;
}

/** DynamoItem by the general rules (any field order, repeats, unknown fields, nesting). */
export function decodeItemFields(buf: Buffer): Item {
  const item: Item = new Map();
  fields(buf, 0, (f, w, r) => {
    if (f !== 1 || w !== 2) return false;
    const [k, v] = mapEntry<AttrValue>(r.bytes(), 1, () => ({ t: 'none' }), (b, prev) => decodeAttrValue(b, prev, 2));
    item.set(k, v);
    return true;
  });
  return item;
}

// ---------------------------------------------------------------- writer (fixtures)

class Writer {
  private readonly parts: Buffer[] = [];
  varintField(field: number, v: bigint | number | boolean): this {
    this.parts.push(varint(BigInt(field) << 3n), varint(typeof v === 'boolean' ? (v ? 1n : 0n) : BigInt(v)));
    return this;
  }
  bytesField(field: number, b: Buffer | string): this {
    const body = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
    this.parts.push(varint((BigInt(field) << 3n) | 2n), varint(BigInt(body.length)), body);
    return this;
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Buffer.from(out);
}

const cmpStr = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

function encodeKeySchema(ks: KeySchema): Buffer {
  const w = new Writer();
  if (ks.hashKey) w.bytesField(1, ks.hashKey);
  if (ks.rangeKey) w.bytesField(2, ks.rangeKey);
  return w.finish();
}

/** Deterministic proto3 marshaling (map keys sorted), as the server stores it. */
export function encodeTableSchema(s: TableSchema): Buffer {
  const w = new Writer();
  if (s.tableName) w.bytesField(1, s.tableName);
  for (const [k, v] of [...s.attributeDefinitions].sort((a, b) => cmpStr(a[0], b[0]))) {
    w.bytesField(2, new Writer().bytesField(1, k).bytesField(2, v).finish());
  }
  if (s.primaryKey) w.bytesField(3, encodeKeySchema(s.primaryKey));
  for (const [k, g] of [...s.globalSecondaryIndexes].sort((a, b) => cmpStr(a[0], b[0]))) {
    const gw = new Writer();
    if (g.keySchema) gw.bytesField(1, encodeKeySchema(g.keySchema));
    if (g.projection) {
      const pw = new Writer();
      if (g.projection.projectionType) pw.bytesField(1, g.projection.projectionType);
      for (const a of g.projection.nonKeyAttributes) pw.bytesField(2, a);
      gw.bytesField(2, pw.finish());
    }
    w.bytesField(4, new Writer().bytesField(1, k).bytesField(2, gw.finish()).finish());
  }
  if (s.keyEncodingVersion) w.varintField(5, s.keyEncodingVersion);
  if (s.migratingFromGeneration) w.varintField(6, s.migratingFromGeneration);
  if (s.generation) w.varintField(7, s.generation);
  return w.finish();
}

export function encodeAttrValue(av: AttrValue): Buffer {
  const w = new Writer();
  switch (av.t) {
    case 'none':
      break;
    case 'S':
      w.bytesField(1, av.v);
      break;
    case 'N':
      w.bytesField(2, av.v);
      break;
    case 'B':
      w.bytesField(3, av.v);
      break;
    case 'BOOL':
      w.varintField(4, av.v);
      break;
    case 'NULL':
      w.varintField(5, av.v);
      break;
    case 'SS':
    case 'NS': {
      const sw = new Writer();
      for (const s of av.v) sw.bytesField(1, s);
      w.bytesField(av.t === 'SS' ? 6 : 7, sw.finish());
      break;
    }
    case 'BS': {
      const sw = new Writer();
      for (const b of av.v) sw.bytesField(1, b);
      w.bytesField(8, sw.finish());
      break;
    }
    case 'L': {
      const lw = new Writer();
      for (const e of av.v) lw.bytesField(1, encodeAttrValue(e));
      w.bytesField(9, lw.finish());
      break;
    }
    case 'M':
      w.bytesField(10, encodeAttrMap(av.v));
      break;
  }
  return w.finish();
}

function encodeAttrMap(m: Map<string, AttrValue>): Buffer {
  const w = new Writer();
  for (const [k, v] of [...m].sort((a, b) => cmpStr(a[0], b[0]))) {
    w.bytesField(1, new Writer().bytesField(1, k).bytesField(2, encodeAttrValue(v)).finish());
  }
  return w.finish();
}

export function encodeItem(item: Item): Buffer {
  return encodeAttrMap(item);
}
