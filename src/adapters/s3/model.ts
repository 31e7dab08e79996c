/**
 * The S3 records' values (elastickv adapter/s3.go JSON) and the dump-format
 * projections the format owner writes (_bucket.json, <obj>.elastickv-meta.json).
 */
import { GoMap, GoStr, marshal, type GoValue } from '../../format/gojson.js';
import { fieldArray, fieldBool, fieldInt, fieldObject, fieldString, matchField, topObject, type JsonSpan } from '../../format/gojson-decode.js';
import { ownedCopy } from '../../bytes.js';

export interface BucketMeta {
  generation: bigint;
  owner: Buffer;
  region: Buffer;
  acl: Buffer;
}

const BUCKET_FIELDS = ['bucket_name', 'generation', 'created_at_hlc', 'owner', 'region', 'acl'] as const;

export function decodeBucketMeta(value: Buffer): BucketMeta {
  const m: BucketMeta = { generation: 0n, owner: Buffer.alloc(0), region: Buffer.alloc(0), acl: Buffer.alloc(0) };
  // bucket_name and created_at_hlc are not projected, but a value of the wrong type still fails the decode.
  for (const v of topObject(value) ?? []) {
    switch (matchField(v.key, BUCKET_FIELDS)) {
      case 'bucket_name':
        fieldString(value, v);
        break;
      case 'generation':
        m.generation = fieldInt(value, v, 'u64') ?? m.generation;
        break;
      case 'created_at_hlc':
        fieldInt(value, v, 'u64');
        break;
      case 'owner':
        m.owner = fieldString(value, v) ?? m.owner;
        break;
      case 'region':
        m.region = fieldString(value, v) ?? m.region;
        break;
      case 'acl':
        m.acl = fieldString(value, v) ?? m.acl;
        break;
    }
  }
  return m;
}

/** _bucket.json: json.MarshalIndent(s3PublicBucket, "", "  "), no trailing newline. */
export function renderBucketJson(bucket: Buffer, m: BucketMeta): Buffer {
  const v: Record<string, GoValue | undefined> = {
    format_version: 1,
    name: new GoStr(bucket),
    owner: m.owner.length ? new GoStr(m.owner) : undefined,
    region: m.region.length ? new GoStr(m.region) : undefined,
    acl: m.acl.length ? new GoStr(m.acl) : undefined,
  };
  return Buffer.from(marshal(v, { indent: '  ' }), 'utf8');
}

export interface ManifestPart {
  partNo: bigint;
  sizeBytes: bigint;
  chunkCount: bigint;
  chunkSizes: bigint[] | null;
  partVersion: bigint;
  chunkRefVersion: bigint;
  offloaded: boolean;
}

export interface Manifest {
  uploadId: Buffer;
  etag: Buffer;
  sizeBytes: bigint;
  lastModifiedHLC: bigint;
  contentType: Buffer;
  contentEncoding: Buffer;
  cacheControl: Buffer;
  contentDisposition: Buffer;
  userMetadata: Map<string, Buffer> | null;
  parts: ManifestPart[];
}

const MANIFEST_FIELDS = [
  'upload_id',
  'etag',
  'size_bytes',
  'last_modified_hlc',
  'content_type',
  'content_encoding',
  'cache_control',
  'content_disposition',
  'user_metadata',
  'parts',
] as const;
const PART_FIELDS = ['part_no', 'etag', 'size_bytes', 'chunk_count', 'chunk_sizes', 'part_version', 'chunk_ref_version', 'offloaded'] as const;

export class ManifestError extends Error {}

export function decodeManifest(raw: Buffer): Manifest {
  // Manifests are cached, and their fields are views of the value: one exact allocation for
  // all of them, not a pool slab pinned by each (see ownedCopy).
  const value = ownedCopy(raw);
  const e = Buffer.alloc(0);
  const m: Manifest = {
    uploadId: e,
    etag: e,
    sizeBytes: 0n,
    lastModifiedHLC: 0n,
    contentType: e,
    contentEncoding: e,
    cacheControl: e,
    contentDisposition: e,
    userMetadata: null,
    parts: [],
  };
  for (const v of topObject(value) ?? []) {
    switch (matchField(v.key, MANIFEST_FIELDS)) {
      case 'upload_id':
        m.uploadId = fieldString(value, v) ?? m.uploadId;
        break;
      case 'etag':
        m.etag = fieldString(value, v) ?? m.etag;
        break;
      case 'size_bytes':
        m.sizeBytes = fieldInt(value, v, 'i64') ?? m.sizeBytes;
        break;
      case 'last_modified_hlc':
        m.lastModifiedHLC = fieldInt(value, v, 'u64') ?? m.lastModifiedHLC;
        break;
      case 'content_type':
        m.contentType = fieldString(value, v) ?? m.contentType;
        break;
      case 'content_encoding':
        m.contentEncoding = fieldString(value, v) ?? m.contentEncoding;
        break;
      case 'cache_control':
        m.cacheControl = fieldString(value, v) ?? m.cacheControl;
        break;
      case 'content_disposition':
        m.contentDisposition = fieldString(value, v) ?? m.contentDisposition;
        break;
      case 'user_metadata': {
        // map[string]string: null -> nil; members merge into an existing map; a null member -> "".
        const members = fieldObject(value, v, 'map[string]string');
        if (members === null) {
          m.userMetadata = null;
          break;
        }
        m.userMetadata ??= new Map();
        for (const e of members) m.userMetadata.set(e.key.toString('latin1'), fieldString(value, e) ?? Buffer.alloc(0));
        break;
      }
      case 'parts':
        m.parts = (fieldArray(value, v, '[]s3ObjectPart') ?? []).map((e) => decodePart(value, e));
        break;
    }
  }
  // HandleObjectManifest refuses an offloaded part whose chunk_sizes disagree with chunk_count.
  for (const p of m.parts) {
    if (p.offloaded && BigInt(p.chunkSizes?.length ?? 0) !== p.chunkCount) {
      throw new ManifestError(`offloaded part ${p.partNo} declares ${p.chunkCount} chunks but has ${p.chunkSizes?.length ?? 0} chunk sizes`);
    }
  }
  return m;
}

/** One element of `parts` (null leaves the part zero). */
function decodePart(value: Buffer, e: JsonSpan): ManifestPart {
  const p: ManifestPart = { partNo: 0n, sizeBytes: 0n, chunkCount: 0n, chunkSizes: null, partVersion: 0n, chunkRefVersion: 0n, offloaded: false };
  for (const v of fieldObject(value, e, 's3ObjectPart') ?? []) {
    switch (matchField(v.key, PART_FIELDS)) {
      case 'part_no':
        p.partNo = fieldInt(value, v, 'u64') ?? p.partNo;
        break;
      case 'etag':
        // Not projected; a value of the wrong type still fails the decode.
        fieldString(value, v);
        break;
      case 'size_bytes':
        p.sizeBytes = fieldInt(value, v, 'i64') ?? p.sizeBytes;
        break;
      case 'chunk_count':
        p.chunkCount = fieldInt(value, v, 'u64') ?? p.chunkCount;
        break;
      case 'chunk_sizes': {
        const arr = fieldArray(value, v, '[]uint64');
        p.chunkSizes = arr === null ? null : arr.map((c) => fieldInt(value, c, 'u64') ?? 0n);
        break;
      }
      case 'part_version':
        p.partVersion = fieldInt(value, v, 'u64') ?? p.partVersion;
        break;
      case 'chunk_ref_version':
        p.chunkRefVersion = fieldInt(value, v, 'u64') ?? p.chunkRefVersion;
        break;
      case 'offloaded':
        p.offloaded = fieldBool(v) ?? p.offloaded;
        break;
    }
  }
  return p;
}

/** <obj>.elastickv-meta.json: json.MarshalIndent(s3PublicManifest, "", "  "), no trailing newline. */
export function renderSidecar(m: Manifest): Buffer {
  const s = (b: Buffer): GoStr | undefined => (b.length ? new GoStr(b) : undefined);
  const lm = formatHlcRfc3339Nano(m.lastModifiedHLC);
  const v: Record<string, GoValue | undefined> = {
    format_version: 1,
    etag: s(m.etag),
    size_bytes: m.sizeBytes,
    last_modified: lm ? lm : undefined,
    content_type: s(m.contentType),
    content_encoding: s(m.contentEncoding),
    cache_control: s(m.cacheControl),
    content_disposition: s(m.contentDisposition),
    user_metadata:
      m.userMetadata && m.userMetadata.size > 0
        ? new GoMap([...m.userMetadata].map(([k, x]) => [Buffer.from(k, 'latin1'), new GoStr(x)] as [Buffer, GoValue]))
        : undefined,
  };
  return Buffer.from(marshal(v, { indent: '  ' }), 'utf8');
}

/**
 * The millisecond half of an HLC (upper 48 bits) as Go's
 * time.UnixMilli(ms).UTC().Format(time.RFC3339Nano); HLC 0 -> "".
 */
export function formatHlcRfc3339Nano(hlc: bigint): string {
  if (hlc === 0n) return '';
  const ms = Number(hlc >> 16n);
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  let out = `${String(d.getUTCFullYear()).padStart(4, '0')}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}T${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
  const frac = d.getUTCMilliseconds();
  if (frac) out += '.' + String(frac).padStart(3, '0').replace(/0+$/, '');
  return out + 'Z';
}
