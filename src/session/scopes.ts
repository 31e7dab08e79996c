/**
 * Scope names per adapter, read from the metadata prefixes at one read_ts: what
 * Admin.ListAdaptersAndScopes answers, and what an unpinned mount (no Backup
 * RPCs on the server) reads for itself.
 */
import { readSegment } from '../format/segment.js';
import type { SnapshotView } from '../source/range.js';

export interface AdapterScopes {
  dynamodb_tables: string[];
  s3_buckets: string[];
  redis_databases: number[];
  sqs_queues: string[];
}

/** `!ddb|meta|table|` and `!sqs|queue|meta|` segments are base64url of the name. */
function decodeB64UrlSegment(seg: Buffer): string | null {
  const s = seg.toString('latin1');
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  return Buffer.from(s, 'base64url').toString('utf8');
}

/** `!s3|bucket|meta|` segments are elastickv's ordered segments (0x00 0xFF = NUL, end 0x00 0x01). */
function decodeS3Segment(seg: Buffer): string | null {
  const r = readSegment(seg, 0);
  return r ? r.raw.toString('utf8') : null;
}

async function names(view: SnapshotView, prefix: string, decode: (seg: Buffer) => string | null): Promise<string[]> {
  const p = Buffer.from(prefix, 'latin1');
  const out = new Set<string>();
  for await (const kv of view.scanPrefix(p, { keysOnly: true })) {
    const n = decode(kv.key.subarray(p.length));
    if (n !== null) out.add(n);
  }
  return [...out].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

export async function scopesFromKeyspace(view: SnapshotView): Promise<AdapterScopes> {
  return {
    dynamodb_tables: await names(view, '!ddb|meta|table|', decodeB64UrlSegment),
    s3_buckets: await names(view, '!s3|bucket|meta|', decodeS3Segment),
    redis_databases: [0],
    sqs_queues: await names(view, '!sqs|queue|meta|', decodeB64UrlSegment),
  };
}
