/**
 * Redis value envelopes as the live adapter stores them, and the decode rules
 * the format owner applies (clamps, accepted lengths, fail-closed cases).
 * Decoders throw DecodeError; callers wrap it into a RecordError naming the key.
 */

import { eachField, ProtoError, type WireReader } from '../../format/protowire.js';

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const EMPTY: Buffer = Buffer.alloc(0);
const MAX_INT64 = (1n << 63n) - 1n;

/** A simple value (`!redis|str|` 0xFF 0x01, `!redis|hll|` 0xFF 0x02) with its optional inline TTL. */
export interface SimpleValue {
  /** Bytes the owner writes to the .bin file. */
  body: Buffer;
  /** Inline expiry in ms; 0n = none. */
  expireAtMs: bigint;
  /** True when the magic header was present (the inline header owns the key's TTL). */
  newFormat: boolean;
}

const MAGIC = 0xff;
export const STR_VERSION = 0x01;
export const HLL_VERSION = 0x02;

export function isNewFormat(raw: Buffer, version: number): boolean {
  return raw.length >= 2 && raw[0] === MAGIC && raw[1] === version;
}

export function decodeSimpleValue(raw: Buffer, version: number): SimpleValue {
  if (!isNewFormat(raw, version)) return { body: raw, expireAtMs: 0n, newFormat: false };
  if (raw.length < 3) throw new DecodeError('header truncated');
  const flags = raw[2]!;
  const rest = raw.subarray(3);
  if ((flags & 0x01) === 0) return { body: rest, expireAtMs: 0n, newFormat: true };
  if (rest.length < 8) throw new DecodeError('ttl section truncated');
  let ms = rest.readBigUInt64BE(0);
  if (ms > MAX_INT64) ms = MAX_INT64;
  return { body: rest.subarray(8), expireAtMs: ms, newFormat: true };
}

/** `!redis|ttl|` value: 8-byte BE ms, clamped to MaxInt64. */
export function decodeTtlValue(raw: Buffer): bigint {
  if (raw.length !== 8) throw new DecodeError(`ttl value length ${raw.length} != 8`);
  const v = raw.readBigUInt64BE(0);
  return v > MAX_INT64 ? MAX_INT64 : v;
}

/** Inline TTL carried by a collection meta value: null = legacy shape (no inline TTL). */
export type InlineTtl = bigint | null;

/** Hash/set/zset meta: Len(8) [ExpireAtMs(8)]. */
export function decodeCountMeta(raw: Buffer): InlineTtl {
  if (raw.length !== 8 && raw.length !== 16) throw new DecodeError(`meta length ${raw.length} not in {8,16}`);
  if (raw.readBigUInt64BE(0) > MAX_INT64) throw new DecodeError('declared len overflows int64');
  return raw.length === 16 ? raw.readBigUInt64BE(8) : null;
}

/** List meta: Head(8) Tail(8) Len(8) [ExpireAtMs(8)]. */
export function decodeListMeta(raw: Buffer): InlineTtl {
  if (raw.length !== 24 && raw.length !== 32) throw new DecodeError(`list meta length ${raw.length} not in {24,32}`);
  if (raw.readBigUInt64BE(16) > MAX_INT64) throw new DecodeError('declared len overflows int64');
  return raw.length === 32 ? raw.readBigUInt64BE(24) : null;
}

export interface StreamMeta {
  length: bigint;
  lastMs: bigint;
  lastSeq: bigint;
  inline: InlineTtl;
}

/** Stream meta: Length(8) LastMs(8) LastSeq(8) [ExpireAtMs(8) [TrimmedMs(8) TrimmedSeq(8)]]. */
export function decodeStreamMeta(raw: Buffer): StreamMeta {
  if (raw.length !== 24 && raw.length !== 32 && raw.length !== 48) throw new DecodeError(`stream meta length ${raw.length} not in {24,32,48}`);
  const length = raw.readBigUInt64BE(0);
  if (length > MAX_INT64) throw new DecodeError('declared length overflows int64');
  return {
    length,
    lastMs: raw.readBigUInt64BE(8),
    lastSeq: raw.readBigUInt64BE(16),
    inline: raw.length >= 32 ? raw.readBigUInt64BE(24) : null,
  };
}

// ---------------------------------------------------------------- protobuf

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Go's utf8.Valid (protobuf-go validates proto3 `string` fields the same way). */
export function validUtf8(b: Buffer): boolean {
  try {
    utf8Strict.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** eachField with the reader's errors as this module's DecodeError. */
function fields(buf: Buffer, on: (field: number, wire: number, r: WireReader) => boolean): void {
  try {
    eachField(buf, 0, on);
  } catch (e) {
    if (e instanceof ProtoError) throw new DecodeError(e.message);
    throw e;
  }
}

function protoString(s: Buffer): Buffer {
  if (!validUtf8(s)) throw new DecodeError('protobuf: string field contains invalid UTF-8');
  return s;
}

export interface ZSetEntry {
  member: Buffer;
  score: number;
}

const ZSET_BLOB_MAGIC = Buffer.from([0x00, 0x52, 0x5a, 0x01]); // 0x00 'R' 'Z' 0x01
const STREAM_ENTRY_MAGIC = Buffer.from([0x00, 0x52, 0x58, 0x45, 0x01]); // 0x00 'R' 'X' 'E' 0x01

/** `!redis|zset|` value: magic + RedisZSetValue{repeated RedisZSetEntry{string member=1; double score=2} entries=1}. */
export function decodeZSetBlob(raw: Buffer): ZSetEntry[] {
  if (raw.length < 4 || !raw.subarray(0, 4).equals(ZSET_BLOB_MAGIC)) throw new DecodeError('missing or corrupt zset blob magic prefix');
  const out: ZSetEntry[] = [];
  fields(raw.subarray(4), (f, w, r) => {
    if (f !== 1 || w !== 2) return false;
    let member: Buffer = EMPTY;
    let score = 0;
    fields(r.bytes(), (g, gw, gr) => {
      if (g === 1 && gw === 2) member = protoString(gr.bytes());
      else if (g === 2 && gw === 1) score = gr.double();
      else return false;
      return true;
    });
    if (Number.isNaN(score)) throw new DecodeError('NaN score in zset blob');
    out.push({ member, score });
    return true;
  });
  return out;
}

/** `!stream|entry|` value: magic + RedisStreamEntry{string id=1; repeated string fields=2}; interleaved name/value. */
export function decodeStreamEntry(raw: Buffer): Buffer[] {
  if (raw.length < 5 || !raw.subarray(0, 5).equals(STREAM_ENTRY_MAGIC)) throw new DecodeError('missing or corrupt stream entry magic prefix');
  const out: Buffer[] = [];
  fields(raw.subarray(5), (f, w, r) => {
    if (w !== 2 || (f !== 1 && f !== 2)) return false;
    const v = protoString(r.bytes());
    if (f === 2) out.push(v);
    return true;
  });
  if (out.length % 2 !== 0) throw new DecodeError(`odd stream field count ${out.length}`);
  return out;
}

/** The score as a 64-bit float from an 8-byte `!zs|mem|` value (NaN refused). */
export function decodeZSetScore(raw: Buffer): number {
  if (raw.length !== 8) throw new DecodeError(`zset score length ${raw.length} != 8`);
  const s = raw.readDoubleBE(0);
  if (Number.isNaN(s)) throw new DecodeError('NaN zset score');
  return s;
}
