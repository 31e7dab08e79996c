/**
 * The S3 records' values (elastickv adapter/s3.go JSON) and the dump-format
 * projections the format owner writes (_bucket.json, <obj>.elastickv-meta.json).
 */
import { GoMap, GoStr, marshal, type GoValue } from '../../format/gojson.js';
import { asArray, asBool, asInt64, asString, asStringMap, asUint64, forEachField, parseJson } from './gojsondecode.js';

export interface BucketMeta {
  generation: bigint;
  owner: Buffer;
  region: Buffer;
  acl: Buffer;
}

export function decodeBucketMeta(value: Buffer): BucketMeta {
  const m: BucketMeta = { generation: 0n, owner: Buffer.alloc(0), region: Buffer.alloc(0), acl: Buffer.alloc(0) };
  let createdAt = 0n;
  let name: Buffer = Buffer.alloc(0);
  forEachField(parseJson(value), ['bucket_name', 'generation', 'created_at_hlc', 'owner', 'region', 'acl'], 'bucket meta', (f, v) => {
    switch (f) {
      case 'bucket_name':
        name = asString(v, name, f);
        break;
      case 'generation':
        m.generation = asUint64(v, m.generation, f);
        break;
      case 'created_at_hlc':
        createdAt = asUint64(v, createdAt, f);
        break;
      case 'owner':
        m.owner = asString(v, m.owner, f);
        break;
      case 'region':
        m.region = asString(v, m.region, f);
        break;
      case 'acl':
        m.acl = asString(v, m.acl, f);
        break;
    }
  });
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

export function decodeManifest(value: Buffer): Manifest {
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
  forEachField(parseJson(value), MANIFEST_FIELDS, 'object manifest', (f, v) => {
    switch (f) {
      case 'upload_id':
        m.uploadId = asString(v, m.uploadId, f);
        break;
      case 'etag':
        m.etag = asString(v, m.etag, f);
        break;
      case 'size_bytes':
        m.sizeBytes = asInt64(v, m.sizeBytes, f);
        break;
      case 'last_modified_hlc':
        m.lastModifiedHLC = asUint64(v, m.lastModifiedHLC, f);
        break;
      case 'content_type':
        m.contentType = asString(v, m.contentType, f);
        break;
      case 'content_encoding':
        m.contentEncoding = asString(v, m.contentEncoding, f);
        break;
      case 'cache_control':
        m.cacheControl = asString(v, m.cacheControl, f);
        break;
      case 'content_disposition':
        m.contentDisposition = asString(v, m.contentDisposition, f);
        break;
      case 'user_metadata':
        m.userMetadata = asStringMap(v, m.userMetadata, f);
        break;
      case 'parts': {
        const arr = asArray(v, f);
        m.parts = (arr ?? []).map(decodePart);
        break;
      }
    }
  });
  // HandleObjectManifest refuses an offloaded part whose chunk_sizes disagree with chunk_count.
  for (const p of m.parts) {
    if (p.offloaded && BigInt(p.chunkSizes?.length ?? 0) !== p.chunkCount) {
      throw new ManifestError(`offloaded part ${p.partNo} declares ${p.chunkCount} chunks but has ${p.chunkSizes?.length ?? 0} chunk sizes`);
    }
  }
  return m;
}

function decodePart(v: ReturnType<typeof parseJson>): ManifestPart {
  const p: ManifestPart = { partNo: 0n, sizeBytes: 0n, chunkCount: 0n, chunkSizes: null, partVersion: 0n, chunkRefVersion: 0n, offloaded: false };
  let etag: Buffer = Buffer.alloc(0);
  forEachField(v, PART_FIELDS, 'part', (f, x) => {
    switch (f) {
      case 'part_no':
        p.partNo = asUint64(x, p.partNo, f);
        break;
      case 'etag':
        etag = asString(x, etag, f);
        break;
      case 'size_bytes':
        p.sizeBytes = asInt64(x, p.sizeBytes, f);
        break;
      case 'chunk_count':
        p.chunkCount = asUint64(x, p.chunkCount, f);
        break;
      case 'chunk_sizes': {
        const arr = asArray(x, f);
        p.chunkSizes = arr === null ? null : arr.map((c) => asUint64(c, 0n, f));
        break;
      }
      case 'part_version':
        p.partVersion = asUint64(x, p.partVersion, f);
        break;
      case 'chunk_ref_version':
        p.chunkRefVersion = asUint64(x, p.chunkRefVersion, f);
        break;
      case 'offloaded':
        p.offloaded = asBool(x, p.offloaded, f);
        break;
    }
  });
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
