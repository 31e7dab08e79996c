/**
 * elastickv's S3 internal key layout (facts from elastickv's internal/s3keys):
 *
 *   !s3|bucket|meta|<seg bucket>
 *   !s3|obj|head|<seg bucket><u64 gen><seg object>
 *   !s3|blob|<seg bucket><u64 gen><seg object><seg uploadID><u64 partNo><u64 chunkNo>[<u64 partVersion>]
 *   !s3|chunkref|… same shape as blob (value: content digest + size)
 *   !s3|chunkblob|<64 hex digest>
 *   !s3|upload|meta|<seg bucket><u64 gen><seg object><seg uploadID>
 *   !s3|upload|part|<seg bucket><u64 gen><seg object><seg uploadID><u64 partNo>
 *
 * A segment escapes 0x00 as 0x00 0xFF and ends with 0x00 0x01; u64 is big-endian.
 */
import { encodeSegmentBytes, readSegment, SEGMENT_TERMINATOR, segmentPrefix } from '../../format/segment.js';

export const P_BUCKET_META = Buffer.from('!s3|bucket|meta|', 'latin1');
export const P_BUCKET_GEN = Buffer.from('!s3|bucket|gen|', 'latin1');
export const P_OBJ_HEAD = Buffer.from('!s3|obj|head|', 'latin1');
export const P_BLOB = Buffer.from('!s3|blob|', 'latin1');
export const P_CHUNKREF = Buffer.from('!s3|chunkref|', 'latin1');
export const P_CHUNKBLOB = Buffer.from('!s3|chunkblob|', 'latin1');
export const P_UPLOAD_META = Buffer.from('!s3|upload|meta|', 'latin1');
export const P_UPLOAD_PART = Buffer.from('!s3|upload|part|', 'latin1');

export const TERMINATOR = SEGMENT_TERMINATOR;
/** Segment body without terminator (0x00 -> 0x00 0xFF). */
export const segPrefix = segmentPrefix;
/** Full segment: escaped body + 0x00 0x01. */
export const seg = encodeSegmentBytes;

export function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
}

/** Decode a segment at `off`: [raw, next offset] or null when malformed/unterminated. */
export function readSeg(src: Buffer, off: number): [Buffer, number] | null {
  const r = readSegment(src, off);
  return r ? [r.raw, r.next] : null;
}

export function readU64(src: Buffer, off: number): [bigint, number] | null {
  if (off < 0 || src.length - off < 8) return null;
  return [src.readBigUInt64BE(off), off + 8];
}

/** Bucket name of a `!s3|bucket|meta|` key (the whole rest must be one segment). */
export function parseBucketMetaKey(key: Buffer): Buffer | null {
  if (!startsWith(key, P_BUCKET_META)) return null;
  const s = readSeg(key, P_BUCKET_META.length);
  if (!s || s[1] !== key.length) return null;
  return s[0];
}

export interface ObjKey {
  bucket: Buffer;
  gen: bigint;
  object: Buffer;
}

export function parseManifestKey(key: Buffer): ObjKey | null {
  if (!startsWith(key, P_OBJ_HEAD)) return null;
  const head = parseObjHead(key, P_OBJ_HEAD.length);
  if (!head || head.next !== key.length) return null;
  return head;
}

/** bucket, gen, object at the start of any object-scoped key body. */
export function parseObjHead(key: Buffer, off: number): (ObjKey & { next: number }) | null {
  const b = readSeg(key, off);
  if (!b) return null;
  const g = readU64(key, b[1]);
  if (!g) return null;
  const o = readSeg(key, g[1]);
  if (!o) return null;
  return { bucket: b[0], gen: g[0], object: o[0], next: o[1] };
}

export interface ChunkKey extends ObjKey {
  uploadId: Buffer;
  partNo: bigint;
  chunkNo: bigint;
  partVersion: bigint;
}

/** A `!s3|blob|` or `!s3|chunkref|` key (6 or 7 components, like ParseBlobKey). */
export function parseChunkKey(key: Buffer, prefix: Buffer): ChunkKey | null {
  if (!startsWith(key, prefix)) return null;
  const h = parseObjHead(key, prefix.length);
  if (!h) return null;
  const u = readSeg(key, h.next);
  if (!u) return null;
  const p = readU64(key, u[1]);
  if (!p) return null;
  const c = readU64(key, p[1]);
  if (!c) return null;
  let partVersion = 0n;
  if (c[1] !== key.length) {
    if (key.length - c[1] !== 8) return null;
    partVersion = key.readBigUInt64BE(c[1]);
  }
  return { bucket: h.bucket, gen: h.gen, object: h.object, uploadId: u[0], partNo: p[0], chunkNo: c[0], partVersion };
}

/** `!s3|upload|part|` keys must parse completely (ParseUploadPartKey). */
export function parseUploadPartKey(key: Buffer): Buffer | null {
  if (!startsWith(key, P_UPLOAD_PART)) return null;
  const h = parseObjHead(key, P_UPLOAD_PART.length);
  if (!h) return null;
  const u = readSeg(key, h.next);
  if (!u) return null;
  const p = readU64(key, u[1]);
  if (!p || p[1] !== key.length) return null;
  return h.bucket;
}

/**
 * The owner routes `!s3|upload|meta|` records by the raw bytes before the first
 * 0x00 0x01 (no unescaping).
 */
export function uploadMetaRoutingBucket(key: Buffer): Buffer | null {
  const rest = key.subarray(P_UPLOAD_META.length);
  for (let i = 0; i + 1 < rest.length; i++) {
    if (rest[i] === 0 && rest[i + 1] === 1) return Buffer.from(rest.subarray(0, i));
  }
  return null;
}

export function startsWith(b: Buffer, p: Buffer): boolean {
  return b.length >= p.length && b.compare(p, 0, p.length, 0, p.length) === 0;
}

/** prefix + seg(bucket) + u64(gen) */
export function bucketGenBase(prefix: Buffer, bucket: Buffer, gen: bigint): Buffer {
  return Buffer.concat([prefix, seg(bucket), u64(gen)]);
}

export function manifestKey(bucket: Buffer, gen: bigint, object: Buffer): Buffer {
  return Buffer.concat([P_OBJ_HEAD, seg(bucket), u64(gen), seg(object)]);
}

export function chunkKey(prefix: Buffer, k: Omit<ChunkKey, 'partVersion'> & { partVersion: bigint }): Buffer {
  const parts = [prefix, seg(k.bucket), u64(k.gen), seg(k.object), seg(k.uploadId), u64(k.partNo), u64(k.chunkNo)];
  if (k.partVersion !== 0n) parts.push(u64(k.partVersion));
  return Buffer.concat(parts);
}

export function chunkBlobKey(digest: Buffer): Buffer {
  return Buffer.concat([P_CHUNKBLOB, Buffer.from(digest.toString('hex'), 'latin1')]);
}

export interface ChunkRefValue {
  sha256: Buffer;
  size: bigint;
}

/** A `!s3|chunkref|` value (v1: ver|sha256|size u64|srcLen u16|src; v2 adds replica peers). */
export function decodeChunkRefValue(v: Buffer): ChunkRefValue | null {
  const fixed = 1 + 32 + 8 + 2;
  if (v.length < fixed || (v[0] !== 1 && v[0] !== 2)) return null;
  const sha256 = Buffer.from(v.subarray(1, 33));
  const size = v.readBigUInt64BE(33);
  const srcLen = v.readUInt16BE(41);
  let next = 43 + srcLen;
  if (next > v.length) return null;
  if (v[0] === 1) return next === v.length ? { sha256, size } : null;
  if (v.length - next < 2) return null;
  const count = v.readUInt16BE(next);
  next += 2;
  if (count > Math.floor((v.length - next) / 4)) return null;
  for (let i = 0; i < count * 2; i++) {
    if (v.length - next < 2) return null;
    const n = v.readUInt16BE(next);
    next += 2;
    if (v.length - next < n) return null;
    next += n;
  }
  return next === v.length ? { sha256, size } : null;
}

export function encodeChunkRefValue(sha256: Buffer, size: bigint, sourcePeer = ''): Buffer {
  const src = Buffer.from(sourcePeer, 'utf8');
  const out = Buffer.alloc(43 + src.length);
  out[0] = 1;
  sha256.copy(out, 1);
  out.writeBigUInt64BE(size, 33);
  out.writeUInt16BE(src.length, 41);
  src.copy(out, 43);
  return out;
}

export function hex16(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}
