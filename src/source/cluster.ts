/**
 * Live cluster source: elastickv's gRPC contract (RawKV, Distribution, Admin)
 * spoken with @grpc/grpc-js over our own .proto files in ./proto.
 *
 * ClusterClient is the transport: several endpoints with failover, bearer-token
 * metadata, TLS, deadlines, and gRPC status -> SourceError mapping.
 * ClusterSource is the PageSource on top of it: scanPage via RawScanAt, get via
 * RawGet, with bounded concurrency (p-queue).
 *
 * Server facts this relies on (elastickv adapter/grpc.go):
 *  - RawScanAt: forward scan of [start_key, end_key); empty end_key = unbounded;
 *    limit must be 0..1025 (larger -> error); keys_only omits values; ts = 0
 *    means "now" (we never send 0 for a real read).
 *  - RawGet: a missing key is exists=false, not an error.
 *  - A read below the compaction watermark -> FAILED_PRECONDITION
 *    "read timestamp has been compacted".
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import PQueue from 'p-queue';
import type { Logger } from '../log.js';
import { compareKeys } from './mvcc.js';
import { nextKey } from './range.js';
import { decodeRawGetResponse, decodeRawScanAtResponse } from './wire.js';
import { EMPTY_VALUE, SourceError, type KV, type PageSource, type ScanPageOptions } from './types.js';

// ---------------------------------------------------------------------------
// Contract loading

export const PROTO_FILES = ['rawkv.proto', 'distribution.proto', 'admin.proto'] as const;

/**
 * Options shared by client and dev server: snake_case field names as in the
 * .proto, uint64 as decimal strings (converted to bigint at the edges), bytes
 * as Buffers, defaults filled in.
 */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** Where the .proto files are: next to this module (src/), or src/ seen from dist/. */
export function protoDir(): string {
  const candidates = [new URL('./proto/', import.meta.url), new URL('../../src/source/proto/', import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(p + 'rawkv.proto')) return p;
  }
  throw new Error(`elastickv .proto files not found (looked in ${candidates.map((c) => fileURLToPath(c)).join(', ')})`);
}

export interface Contract {
  RawKV: grpc.ServiceDefinition;
  Distribution: grpc.ServiceDefinition;
  Admin: grpc.ServiceDefinition;
}

let contractCache: Contract | null = null;

/** The three services, loaded once. Methods are /RawKV/..., /Distribution/..., /Admin/... (no proto package). */
export function contract(): Contract {
  if (contractCache) return contractCache;
  const dir = protoDir();
  const def = protoLoader.loadSync(
    PROTO_FILES.map((f) => dir + f),
    { ...LOADER_OPTIONS, includeDirs: [dir] },
  );
  const svc = (name: string): grpc.ServiceDefinition => {
    const s = def[name];
    if (!s || typeof s !== 'object' || 'format' in s) throw new Error(`service ${name} missing from the .proto files`);
    return s as unknown as grpc.ServiceDefinition;
  };
  contractCache = { RawKV: svc('RawKV'), Distribution: svc('Distribution'), Admin: svc('Admin') };
  return contractCache;
}

export type ServiceName = keyof Contract;

// ---------------------------------------------------------------------------
// Wire shapes (as the loader presents them: uint64/int64 as strings)

export interface RawScanAtRequest {
  start_key?: Buffer;
  end_key?: Buffer;
  limit: string;
  ts: string;
  reverse?: boolean;
  group_id?: string;
  keys_only?: boolean;
}
export interface RawScanAtResponse {
  kv: { key: Buffer; value: Buffer }[];
}
export interface RawGetRequest {
  key: Buffer;
  ts: string;
  group_id?: string;
}
export interface RawGetResponse {
  read_at_index: string;
  value: Buffer;
  exists: boolean;
}
export interface BeginBackupResponse {
  read_ts: string;
  pin_token: Buffer;
  ttl_ms_effective: string;
  shards: { group_id: string; applied_index: string }[];
  expected_keys: { scope_id: string; key_count: string; applied_index_at_count: string }[];
}
export interface ListAdaptersAndScopesResponse {
  dynamodb_tables: string[];
  s3_buckets: string[];
  redis_databases: number[];
  sqs_queues: string[];
}

/** Responses decoded by hand (wire.ts) rather than through the loader: the two a mount receives per file. */
const FAST_DECODERS: Record<string, (b: Buffer) => unknown> = {
  '/RawKV/RawScanAt': decodeRawScanAtResponse,
  '/RawKV/RawGet': decodeRawGetResponse,
};

/** Largest `limit` elastickv accepts in one RawScanAt (store.MaxDeltaScanLimit + 1). */
export const MAX_SCAN_LIMIT = 1025;
/** HTTP/2 flow-control window of our connections (stream and connection), bytes. */
const FLOW_CONTROL_WINDOW = 16 << 20;
/** The message elastickv sends with FAILED_PRECONDITION for a compacted read ts. */
export const COMPACTED_MESSAGE = 'read timestamp has been compacted';

// ---------------------------------------------------------------------------
// Errors

/** A failed RPC, classified. `code` is one of the stable strings below. */
export class ClusterRpcError extends SourceError {
  constructor(
    code: string,
    message: string,
    readonly grpcCode: number,
    readonly method: string,
    readonly endpoint: string,
    readonly details: string,
  ) {
    super(code, message);
    this.name = 'ClusterRpcError';
  }
}

function isServiceError(e: unknown): e is grpc.ServiceError {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'details' in e;
}

/** gRPC status -> stable SourceError code. */
export function classify(grpcCode: number, details: string): string {
  switch (grpcCode) {
    case grpc.status.FAILED_PRECONDITION:
      return /compacted/i.test(details) ? 'compacted' : 'failed_precondition';
    case grpc.status.UNAVAILABLE:
      return 'unavailable';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'timeout';
    case grpc.status.UNAUTHENTICATED:
      return 'unauthenticated';
    case grpc.status.PERMISSION_DENIED:
      return 'permission_denied';
    case grpc.status.UNIMPLEMENTED:
      return 'unimplemented';
    case grpc.status.INVALID_ARGUMENT:
      return 'invalid_argument';
    case grpc.status.RESOURCE_EXHAUSTED:
      return 'resource_exhausted';
    case grpc.status.NOT_FOUND:
      return 'not_found';
    case grpc.status.CANCELLED:
      return 'cancelled';
    default:
      return 'rpc_error';
  }
}

function toSourceError(e: unknown, method: string, endpoint: string): SourceError {
  if (e instanceof SourceError) return e;
  if (isServiceError(e)) {
    const details = e.details || e.message || '';
    const name = grpc.status[e.code] ?? String(e.code);
    return new ClusterRpcError(classify(e.code, details), `cluster ${endpoint}: ${method}: ${details} (${name})`, e.code, method, endpoint, details);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new ClusterRpcError('rpc_error', `cluster ${endpoint}: ${method}: ${msg}`, grpc.status.UNKNOWN, method, endpoint, msg);
}

// ---------------------------------------------------------------------------
// Transport

export interface TlsOptions {
  /** PEM CA bundle; when absent the system roots are used. */
  ca?: Buffer;
  /** PEM client certificate and key (mutual TLS); both or neither. */
  cert?: Buffer;
  key?: Buffer;
  /** Override the name checked against the server certificate. */
  serverName?: string;
}

/** Read PEM files named on the command line into TlsOptions. */
export async function readTlsFiles(paths: { ca?: string; cert?: string; key?: string; serverName?: string }): Promise<TlsOptions> {
  const rd = async (what: string, p?: string): Promise<Buffer | undefined> => {
    if (!p) return undefined;
    try {
      return await readFile(p);
    } catch (e) {
      throw new Error(`cannot read TLS ${what} ${p}: ${(e as Error).message}`);
    }
  };
  return { ca: await rd('CA', paths.ca), cert: await rd('certificate', paths.cert), key: await rd('key', paths.key), serverName: paths.serverName };
}

export interface ClusterClientOptions {
  /** host:port targets, tried in order; the client sticks to the last one that answered. */
  endpoints: string[];
  /** Sent as `authorization: Bearer <token>` on every call. Never logged. */
  token?: string;
  /** TLS; plaintext when absent. */
  tls?: TlsOptions;
  /** Per-attempt deadline (ms). Default 30 s. */
  deadlineMs?: number;
  /** Attempts per call across endpoints for retryable failures. Default max(3, 2 x endpoints). */
  maxAttempts?: number;
  /** Base backoff between retry rounds (ms). Default 50. */
  backoffMs?: number;
  log?: Logger;
}

export interface CallOptions {
  deadlineMs?: number;
  /** Reads: also fail over on DEADLINE_EXCEEDED. Writes/admin: only on UNAVAILABLE. */
  idempotent?: boolean;
  /** Override the attempt budget (1 = no retry). */
  attempts?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One set of endpoints; every RPC of the three services goes through call(). */
export class ClusterClient {
  readonly endpoints: string[];
  private readonly clients: grpc.Client[];
  private readonly metadata: grpc.Metadata;
  private current = 0;
  private closed = false;
  readonly stats = { calls: 0, retries: 0, failovers: 0 };
  private readonly deadlineMs: number;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly log?: Logger;

  constructor(opts: ClusterClientOptions) {
    const eps = opts.endpoints.flatMap((e) => e.split(',')).map((e) => e.trim()).filter(Boolean);
    if (eps.length === 0) throw new SourceError('config', 'no cluster endpoint given');
    this.endpoints = eps;
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? Math.max(3, 2 * eps.length));
    this.backoffMs = opts.backoffMs ?? 50;
    this.log = opts.log;
    let creds: grpc.ChannelCredentials;
    if (opts.tls) {
      const { ca, cert, key } = opts.tls;
      if (!!cert !== !!key) throw new SourceError('config', 'TLS client certificate and key must be given together');
      creds = grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null);
    } else {
      creds = grpc.credentials.createInsecure();
    }
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
      // HTTP/2's default window is 64 KiB: a 2-3 MiB page then crosses in window-sized bursts,
      // each waiting for a WINDOW_UPDATE our (busy) event loop sends. Pages in flight are few
      // and bounded by what we ask for, so the window can cover several of them.
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    };
    if (opts.tls?.serverName) channelOptions['grpc.ssl_target_name_override'] = opts.tls.serverName;
    this.clients = eps.map((ep) => new grpc.Client(ep, creds, channelOptions));
    this.metadata = new grpc.Metadata();
    if (opts.token) this.metadata.set('authorization', `Bearer ${opts.token}`);
  }

  /** Endpoint currently preferred (for logs). */
  get endpoint(): string {
    return this.endpoints[this.current]!;
  }

  private once<Req, Res>(idx: number, service: ServiceName, method: string, req: Req, deadlineMs: number): Promise<Res> {
    const def = contract()[service][method];
    if (!def) throw new Error(`unknown method ${service}.${method}`);
    const client = this.clients[idx]!;
    const deserialize = (FAST_DECODERS[def.path] ?? def.responseDeserialize) as (b: Buffer) => Res;
    return new Promise<Res>((resolve, reject) => {
      client.makeUnaryRequest<Req, Res>(
        def.path,
        def.requestSerialize as (v: Req) => Buffer,
        deserialize,
        req,
        this.metadata.clone(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(err) : resolve(res as Res)),
      );
    });
  }

  /** One RPC with failover. Throws SourceError (ClusterRpcError) on failure. */
  async call<Req, Res>(service: ServiceName, method: string, req: Req, opts: CallOptions = {}): Promise<Res> {
    if (this.closed) throw new SourceError('closed', 'cluster client is closed');
    const n = this.endpoints.length;
    const attempts = Math.max(1, opts.attempts ?? this.maxAttempts);
    const deadlineMs = opts.deadlineMs ?? this.deadlineMs;
    this.stats.calls++;
    let last: unknown;
    let lastEp = this.endpoint;
    for (let a = 0; a < attempts; a++) {
      const idx = this.current;
      lastEp = this.endpoints[idx]!;
      try {
        return await this.once<Req, Res>(idx, service, method, req, deadlineMs);
      } catch (e) {
        last = e;
        const code = isServiceError(e) ? e.code : -1;
        const retryable = code === grpc.status.UNAVAILABLE || (opts.idempotent === true && code === grpc.status.DEADLINE_EXCEEDED);
        if (!retryable || this.closed || a + 1 >= attempts) break;
        this.stats.retries++;
        if (n > 1 && this.current === idx) {
          this.current = (idx + 1) % n;
          this.stats.failovers++;
          this.log?.warn({ method, from: lastEp, to: this.endpoint, err: isServiceError(e) ? e.details : String(e) }, 'cluster endpoint failed, failing over');
        }
        // A full round over every endpoint failed: back off before the next round.
        if ((a + 1) % n === 0) await sleep(Math.min(1000, this.backoffMs * 2 ** Math.floor(a / n)));
      }
    }
    throw toSourceError(last, method, lastEp);
  }

  // --- typed helpers --------------------------------------------------------

  /** Distribution.GetTimestamp: a fresh HLC timestamp. */
  async getTimestamp(): Promise<bigint> {
    const r = await this.call<object, { timestamp: string }>('Distribution', 'GetTimestamp', {}, { idempotent: true });
    return BigInt(r.timestamp);
  }

  async beginBackup(ttlMs: number, deadlineMs?: number): Promise<{ readTs: bigint; pinToken: Buffer; ttlMsEffective: number; raw: BeginBackupResponse }> {
    const r = await this.call<{ ttl_ms: string }, BeginBackupResponse>('Admin', 'BeginBackup', { ttl_ms: String(ttlMs) }, { deadlineMs });
    return { readTs: BigInt(r.read_ts), pinToken: Buffer.from(r.pin_token), ttlMsEffective: Number(r.ttl_ms_effective), raw: r };
  }

  /** One renewal attempt (no retry: the session owns the retry policy). */
  async renewBackup(pinToken: Buffer, ttlMs: number, deadlineMs?: number): Promise<{ ttlMsEffective: number }> {
    const r = await this.call<{ pin_token: Buffer; ttl_ms: string }, { ttl_ms_effective: string }>(
      'Admin',
      'RenewBackup',
      { pin_token: pinToken, ttl_ms: String(ttlMs) },
      { deadlineMs, attempts: Math.min(2, this.endpoints.length) },
    );
    return { ttlMsEffective: Number(r.ttl_ms_effective) };
  }

  async endBackup(pinToken: Buffer, deadlineMs?: number): Promise<void> {
    await this.call('Admin', 'EndBackup', { pin_token: pinToken }, { deadlineMs, idempotent: true });
  }

  async listAdaptersAndScopes(pinToken: Buffer): Promise<ListAdaptersAndScopesResponse> {
    return this.call('Admin', 'ListAdaptersAndScopes', { pin_token: pinToken }, { idempotent: true });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients) c.close();
  }
}

// ---------------------------------------------------------------------------
// PageSource

export interface ClusterSourceOptions extends ClusterClientOptions {
  /** Maximum RPCs in flight from this source. Default 16. */
  concurrency?: number;
  /** Share an existing client (the session's); close() then leaves it open. */
  client?: ClusterClient;
}

export class ClusterSource implements PageSource {
  readonly label: string;
  readonly client: ClusterClient;
  private readonly ownsClient: boolean;
  private readonly queue: PQueue;

  constructor(opts: ClusterSourceOptions) {
    this.ownsClient = !opts.client;
    this.client = opts.client ?? new ClusterClient(opts);
    this.label = `cluster:${this.client.endpoints.join(',')}`;
    this.queue = new PQueue({ concurrency: Math.max(1, opts.concurrency ?? 16) });
  }

  /** RPCs waiting for a slot plus in flight. */
  get pending(): number {
    return this.queue.size + this.queue.pending;
  }

  private rpc<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.add(fn);
  }

  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    const limit = Math.floor(opts.limit);
    if (!(limit >= 1)) return [];
    if (ts <= 0n) return []; // nothing commits at ts 0 (and elastickv would read "now")
    if (end && compareKeys(start, end) >= 0) return [];
    const keysOnly = opts.keysOnly ?? false;
    const out: KV[] = [];
    let cursor = start;
    while (out.length < limit) {
      const want = Math.min(MAX_SCAN_LIMIT, limit - out.length);
      // proto3 defaults are left out rather than sent as explicit zeros (empty end_key = unbounded).
      // In Go an explicitly-sent empty end_key may decode as a non-nil empty slice, which
      // elastickv's `end != nil` bound check would treat as "ends before everything".
      const req: RawScanAtRequest = { limit: String(want), ts: ts.toString() };
      if (cursor.length > 0) req.start_key = cursor;
      if (end) req.end_key = end;
      if (keysOnly) req.keys_only = true;
      const res = await this.rpc(() => this.client.call<RawScanAtRequest, RawScanAtResponse>('RawKV', 'RawScanAt', req, { idempotent: true }));
      const raw = res.kv ?? [];
      const page = normalizePage(raw, cursor, end, keysOnly, want);
      for (const kv of page) out.push(kv);
      if (raw.length < want || page.length === 0) break;
      cursor = nextKey(page[page.length - 1]!.key);
      if (end && compareKeys(cursor, end) >= 0) break;
    }
    return out;
  }

  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    if (ts <= 0n) return null;
    const req: RawGetRequest = { key, ts: ts.toString() };
    const res = await this.rpc(() => this.client.call<RawGetRequest, RawGetResponse>('RawKV', 'RawGet', req, { idempotent: true }));
    if (!res.exists) return null;
    return res.value; // the decoder's own copy
  }

  /**
   * One turn of the event loop: Node runs its own pending work (the HTTP/2 writes of the
   * calls made so far) ahead of setImmediate callbacks in the same check phase.
   */
  sent(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    this.queue.clear();
    if (this.ownsClient) this.client.close();
  }
}

/**
 * Defensive page hygiene: keep keys in [start, end), sort by unsigned bytes,
 * drop duplicates, cap at `limit`, blank values for keys-only pages. The
 * pairs' Buffers are kept, not copied: the wire decoder's are already the
 * caller's own.
 */
export function normalizePage(raw: { key: Buffer; value: Buffer }[], start: Buffer, end: Buffer | null, keysOnly: boolean, limit: number): KV[] {
  const kvs: KV[] = [];
  for (const p of raw) {
    const key = p.key;
    if (compareKeys(key, start) < 0) continue;
    if (end && compareKeys(key, end) >= 0) continue;
    kvs.push(keysOnly && p.value.length > 0 ? { key, value: EMPTY_VALUE } : p);
  }
  let sorted = true;
  for (let i = 1; i < kvs.length; i++) {
    if (compareKeys(kvs[i - 1]!.key, kvs[i]!.key) >= 0) {
      sorted = false;
      break;
    }
  }
  if (!sorted) {
    kvs.sort((a, b) => compareKeys(a.key, b.key));
    let w = 0;
    for (const kv of kvs) {
      if (w > 0 && compareKeys(kvs[w - 1]!.key, kv.key) === 0) continue;
      kvs[w++] = kv;
    }
    kvs.length = w;
  }
  if (kvs.length > limit) kvs.length = limit;
  return kvs;
}
