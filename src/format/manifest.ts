/**
 * MANIFEST.json exactly as the format owner writes it: a Go struct marshaled by
 * json.Encoder with SetIndent("", "  ") and HTML escaping off, trailing newline.
 */
import { encodeLine, type GoValue } from './gojson.js';
import type { AdapterName, DecodeOptions } from '../adapters/types.js';

export const PHASE_SNAPSHOT = 'phase0-snapshot-decode';
export const PHASE_LIVE_PINNED = 'phase1-live-pinned';
/** Our value for a live mount the server could not pin (no BeginBackup RPC). */
export const PHASE_LIVE_UNPINNED = 'phase1-live-unpinned';

export interface ManifestInput {
  phase: string;
  elastickvVersion?: string;
  clusterId?: string;
  snapshotIndex?: bigint;
  lastCommitTS?: bigint;
  wallTime: Date;
  source?: { fsmPath: string; fsmCrc32c?: string };
  live?: { readTs: bigint; pinTokenSha256?: string };
  /** Scopes per enabled adapter (empty arrays are omitted, as the owner's omitempty does). */
  scopes: Map<AdapterName, string[] | number[]>;
  options: DecodeOptions;
  /** Extra fields after the owner's (e.g. a loud warning for unpinned live mounts). */
  extra?: Record<string, GoValue>;
}

/** Go's time.RFC3339Nano of a UTC time: trailing zeros of the fraction trimmed, no fraction when zero. */
export function rfc3339Nano(d: Date): string {
  const iso = d.toISOString(); // 2026-04-29T15:42:11.094Z
  const [sec, frac] = iso.slice(0, -1).split('.');
  const f = (frac ?? '').replace(/0+$/, '');
  return f ? `${sec}.${f}Z` : `${sec}Z`;
}

const SCOPE_FIELD: Record<AdapterName, string> = { dynamodb: 'tables', s3: 'buckets', redis: 'databases', sqs: 'queues' };

export function renderManifest(m: ManifestInput): Buffer {
  const adapters: Record<string, GoValue> = {};
  for (const name of ['dynamodb', 's3', 'redis', 'sqs'] as const) {
    if (!m.options.adapters.has(name)) continue;
    const scopes = m.scopes.get(name) ?? [];
    adapters[name] = scopes.length ? { [SCOPE_FIELD[name]]: scopes as GoValue[] } : {};
  }
  const exclusions: Record<string, GoValue> = {
    include_incomplete_uploads: m.options.includeIncompleteUploads,
    include_orphans: m.options.includeOrphans,
    preserve_sqs_visibility: m.options.preserveSqsVisibility,
    include_sqs_side_records: m.options.includeSqsSideRecords,
  };
  if (m.options.renameCollisions) exclusions.rename_s3_collisions = true;
  const v: Record<string, GoValue | undefined> = {
    format_version: 1,
    phase: m.phase,
    elastickv_version: m.elastickvVersion || undefined,
    cluster_id: m.clusterId || undefined,
    snapshot_index: m.snapshotIndex ? m.snapshotIndex : undefined,
    last_commit_ts: m.lastCommitTS ? m.lastCommitTS : undefined,
    wall_time_iso: rfc3339Nano(m.wallTime),
    source: m.source ? { fsm_path: m.source.fsmPath, fsm_crc32c: m.source.fsmCrc32c || undefined } : undefined,
    live: m.live ? { read_ts: m.live.readTs, pin_token_sha256: m.live.pinTokenSha256 || undefined } : undefined,
    adapters,
    exclusions,
    checksum_algorithm: 'sha256',
    checksum_format: 'sha256sum',
    encoded_filename_charset: 'rfc3986-unreserved-plus-percent',
    key_segment_max_bytes: 240,
    s3_meta_suffix: '.elastickv-meta.json',
    s3_collision_strategy: 'leaf-data-suffix',
    dynamodb_layout: m.options.dynamodbBundleMode === 'jsonl' ? 'jsonl' : 'per-item',
    ...(m.extra ?? {}),
  };
  return Buffer.from(encodeLine(v, { indent: '  ' }), 'utf8');
}

/** snapshot_index from a `<index>.fsm` filename, as the owner parses it; undefined when it does not match. */
export function snapshotIndexFromPath(path: string): bigint | undefined {
  const base = path.split('/').pop() ?? '';
  if (!base.endsWith('.fsm')) return undefined;
  const stem = base.slice(0, -4);
  if (!/^[0-9]+$/.test(stem)) return undefined;
  const v = BigInt(stem);
  return v < 1n << 64n ? v : undefined;
}
