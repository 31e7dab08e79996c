/**
 * The dev cluster: a single-process stand-in for an elastickv cluster that
 * speaks the same gRPC contract (RawKV, Distribution.GetTimestamp and the
 * proposed Admin backup RPCs) over a DevStore (an .fsm with an overlay of
 * writes, or a MemorySource), so live mounts can be
 * exercised end to end without Raft, Pebble or Go.
 *
 * What it simulates:
 *  - HLC timestamps (ms << 16 | logical), monotonic; RawPut/RawDelete write a
 *    new version at a fresh timestamp.
 *  - Backup pins with the design's server rules: ttl_ms within [minTtlMs,
 *    maxTtlMs] (0 = 30 min default) else INVALID_ARGUMENT; at most
 *    maxActivePins live pins else RESOURCE_EXHAUSTED; RenewBackup of an unknown
 *    or expired pin -> NOT_FOUND; EndBackup idempotent; a sweeper dropping pins
 *    past their deadline (logged backup_pin_expired).
 *  - Compaction: with retentionMs set, the watermark advances to
 *    now - retention, held back by the oldest pin's read_ts; reads below it
 *    fail FAILED_PRECONDITION "read timestamp has been compacted".
 *  - Faults: latency (every RPC, or per method), a random UNAVAILABLE rate on data RPCs, one-shot injected
 *    failures per method, and dropping every client connection (a TCP proxy
 *    sits in front of the gRPC server for that).
 *  - Auth: with `token`, the Admin service requires "authorization: Bearer
 *    <token>" like elastickv's admin gate (authAll: every service).
 *
 * Logs are pino JSON: "listening" when ready, backup_pin_begin / _renew / _end /
 * _expired with an active_pins field; at debug, one "rpc" line per call served
 * (method, gRPC code name, ms), so tests can count attempts and their spacing. Pin tokens are never logged (pin_id is a hash).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { contract, COMPACTED_MESSAGE, MAX_SCAN_LIMIT } from '../source/cluster.js';
import type { DevStore } from './store.js';
import { prefixEnd, nextKey, SnapshotView } from '../source/range.js';
import { pinRef } from '../session/session.js';
import { scopesFromKeyspace } from '../session/scopes.js';
import { Hlc, hlcFromMs } from './hlc.js';

export const DEFAULT_MIN_TTL_MS = 60_000;
export const DEFAULT_MAX_TTL_MS = 24 * 60 * 60_000;
export const DEFAULT_TTL_MS = 30 * 60_000;
export const DEFAULT_MAX_ACTIVE_PINS = 4;

export interface DevClusterOptions {
  /** host:port to listen on; port 0 picks one. Default 127.0.0.1:0. */
  listen?: string;
  source: DevStore;
  /** Serve the Admin backup RPCs. false: BeginBackup is UNIMPLEMENTED (an older cluster). Default true. */
  backupRpc?: boolean;
  minTtlMs?: number;
  maxTtlMs?: number;
  /** TTL used when a request says 0. Default 30 min (clamped into the bounds). */
  defaultTtlMs?: number;
  maxActivePins?: number;
  /** Sweeper period. Default 1000 ms. */
  sweepIntervalMs?: number;
  /** MVCC retention: null/undefined = never compacts. */
  retentionMs?: number | null;
  /** Added to every RPC. */
  latencyMs?: number;
  /** Added to every call of one method, on top of latencyMs: { ListAdaptersAndScopes: 3000 }. */
  methodLatencyMs?: Record<string, number>;
  /** Fraction (0..1) of RawKV / Distribution calls answered UNAVAILABLE. */
  failRate?: number;
  /** Drop every client connection this often (ms). */
  dropConnectionsEveryMs?: number;
  /** Bearer token required on Admin calls (and on every call with authAll). */
  token?: string;
  authAll?: boolean;
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requireClientCert?: boolean };
  /** The HLC never issues a timestamp at or below this (e.g. the snapshot's lastCommitTS). */
  initialTs?: bigint;
  /**
   * Persist active pins here (JSON, rewritten on every change) and restore them at
   * start: elastickv replicates pins through Raft, so they survive a restart.
   */
  pinStateFile?: string;
  /** A logger; default pino JSON to stdout at logLevel. */
  log?: Logger;
  logLevel?: string;
}

interface Pin {
  id: string;
  token: Buffer;
  readTs: bigint;
  ttlMs: number;
  deadline: number;
}

export interface DevCluster {
  /** host:port clients dial. */
  readonly address: string;
  readonly port: number;
  readonly hlc: Hlc;
  readonly source: DevStore;
  readonly log: Logger;
  readonly activePins: number;
  /** Current compaction watermark (0 = nothing compacted). */
  readonly watermark: bigint;
  /** Calls served per method name ("RawScanAt", "BeginBackup", ...). */
  readonly calls: Map<string, number>;
  /** Write one version at a fresh timestamp; returns the commit ts. */
  put(key: Buffer, value: Buffer): bigint;
  delete(key: Buffer): bigint;
  /** Advance the watermark to ts (never backwards) and drop versions no reader at or above it can see. */
  compactTo(ts: bigint): void;
  /** Delay every later call of `method` by `ms` before it is served (0 clears). */
  injectLatency(method: string, ms: number): void;
  /** Fail the next `count` calls of `method` with `code` (default UNAVAILABLE). Infinity = until cleared. */
  injectFailure(method: string, count: number, code?: grpc.status, details?: string): void;
  clearFailures(): void;
  /** Close every client connection now; returns how many were dropped. */
  dropConnections(): number;
  /** Run the pin sweeper now. */
  sweep(): void;
  close(): Promise<void>;
}

class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]*):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: expected host:port, got ${JSON.stringify(listen)}`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`--listen: port ${port} out of range`);
  return { host: m[1] || '127.0.0.1', port };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startDevCluster(opts: DevClusterOptions): Promise<DevCluster> {
  const log = opts.log ?? pino({ level: opts.logLevel ?? 'info', base: { pid: process.pid, name: 'ekv-devcluster' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 1, sync: true }));
  const source = opts.source;
  const backupRpc = opts.backupRpc ?? true;
  const minTtl = opts.minTtlMs ?? DEFAULT_MIN_TTL_MS;
  const maxTtl = opts.maxTtlMs ?? DEFAULT_MAX_TTL_MS;
  if (minTtl > maxTtl) throw new Error(`min ttl ${minTtl} ms exceeds max ttl ${maxTtl} ms`);
  const defaultTtl = Math.min(maxTtl, Math.max(minTtl, opts.defaultTtlMs ?? DEFAULT_TTL_MS));
  const maxPins = opts.maxActivePins ?? DEFAULT_MAX_ACTIVE_PINS;
  const retentionMs = opts.retentionMs ?? null;
  const latencyMs = opts.latencyMs ?? 0;
  const failRate = opts.failRate ?? 0;
  const hlc = new Hlc(opts.initialTs ?? 0n);
  const pins = new Map<string, Pin>();
  const pinStateFile = opts.pinStateFile;
  const savePins = (): void => {
    if (!pinStateFile) return;
    const state = [...pins.values()].map((p) => ({ id: p.id, token: p.token.toString('hex'), read_ts: p.readTs.toString(), ttl_ms: p.ttlMs, deadline: p.deadline }));
    writeFileSync(pinStateFile + '.tmp', JSON.stringify(state) + '\n');
    renameSync(pinStateFile + '.tmp', pinStateFile);
  };
  if (pinStateFile && existsSync(pinStateFile)) {
    const state = JSON.parse(readFileSync(pinStateFile, 'utf8')) as { id: string; token: string; read_ts: string; ttl_ms: number; deadline: number }[];
    for (const p of state) pins.set(p.token, { id: p.id, token: Buffer.from(p.token, 'hex'), readTs: BigInt(p.read_ts), ttlMs: p.ttl_ms, deadline: p.deadline });
    for (const p of pins.values()) hlc.observe(p.readTs);
    if (state.length) log.info({ restored: state.length, active_pins: pins.size }, 'backup pins restored');
  }
  const calls = new Map<string, number>();
  const injected = new Map<string, { count: number; code: grpc.status; details: string }>();
  const methodLatency = new Map<string, number>(Object.entries(opts.methodLatencyMs ?? {}));
  let watermark = 0n;
  let commitIndex = 0n;

  // --- rules -----------------------------------------------------------------

  const advanceWatermark = (): bigint => {
    if (retentionMs === null) return watermark;
    let cand = hlcFromMs(Date.now() - retentionMs);
    for (const p of pins.values()) if (p.readTs < cand) cand = p.readTs;
    if (cand > watermark) watermark = cand;
    return watermark;
  };
  const readTsOf = (raw: string): bigint => {
    const ts = BigInt(raw || '0');
    if (ts === 0n) return hlc.current();
    advanceWatermark();
    if (ts < watermark) throw new StatusError(grpc.status.FAILED_PRECONDITION, COMPACTED_MESSAGE);
    return ts;
  };
  const expire = (p: Pin, now: number): void => {
    pins.delete(p.token.toString('hex'));
    savePins();
    log.warn({ pin_id: p.id, read_ts: p.readTs.toString(), overdue_ms: now - p.deadline, active_pins: pins.size }, 'backup_pin_expired');
  };
  const sweep = (): void => {
    const now = Date.now();
    for (const p of [...pins.values()]) if (p.deadline <= now) expire(p, now);
    advanceWatermark();
  };
  const validTtl = (raw: string): number => {
    const t = Number(raw || '0');
    if (t === 0) return defaultTtl;
    if (!Number.isFinite(t) || t < minTtl || t > maxTtl) {
      throw new StatusError(grpc.status.INVALID_ARGUMENT, `ttl_ms ${raw} out of range: must be between ${minTtl} and ${maxTtl} ms (0 = default ${defaultTtl} ms)`);
    }
    return t;
  };
  const findPin = (token: Buffer | undefined): Pin => {
    const p = token && token.length ? pins.get(Buffer.from(token).toString('hex')) : undefined;
    if (p && p.deadline <= Date.now()) {
      expire(p, Date.now());
      throw new StatusError(grpc.status.NOT_FOUND, 'backup pin not found: it expired');
    }
    if (!p) throw new StatusError(grpc.status.NOT_FOUND, 'backup pin not found (expired, ended, or never issued by this cluster)');
    return p;
  };

  // --- plumbing ----------------------------------------------------------------

  const dataServices = new Set(['RawKV', 'Distribution']);
  type Handler<Req, Res> = (req: Req) => Promise<Res> | Res;
  const unary =
    <Req, Res>(service: string, method: string, fn: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> =>
    (call, cb) => {
      const t0 = Date.now();
      const done = (code: grpc.status): void => {
        if (log.isLevelEnabled('debug')) log.debug({ method, code: grpc.status[code], ms: Date.now() - t0 }, 'rpc');
      };
      (async () => {
        calls.set(method, (calls.get(method) ?? 0) + 1);
        if (opts.token && (opts.authAll || service === 'Admin')) {
          const v = call.metadata.get('authorization');
          if (v.length === 0) throw new StatusError(grpc.status.UNAUTHENTICATED, 'missing authorization header');
          const s = String(v[0]);
          if (!s.startsWith('Bearer ')) throw new StatusError(grpc.status.UNAUTHENTICATED, 'authorization is not a bearer token');
          if (s.slice(7) !== opts.token) throw new StatusError(grpc.status.UNAUTHENTICATED, 'invalid admin token');
        }
        if (latencyMs > 0) await sleep(latencyMs);
        const slow = methodLatency.get(method) ?? 0;
        if (slow > 0) await sleep(slow);
        const inj = injected.get(method);
        if (inj && inj.count > 0) {
          inj.count--;
          throw new StatusError(inj.code, inj.details);
        }
        if (failRate > 0 && dataServices.has(service) && Math.random() < failRate) {
          throw new StatusError(grpc.status.UNAVAILABLE, 'injected failure (dev cluster fail rate)');
        }
        return fn(call.request);
      })().then(
        (res) => {
          done(grpc.status.OK);
          cb(null, res);
        },
        (e: unknown) => {
          done(e instanceof StatusError ? e.code : grpc.status.INTERNAL);
          if (e instanceof StatusError) cb({ name: 'StatusError', message: e.details, code: e.code, details: e.details });
          else {
            log.error({ method, err: (e as Error).message }, 'handler failed');
            cb({ name: 'Error', message: String((e as Error).message), code: grpc.status.INTERNAL, details: String((e as Error).message) });
          }
        },
      );
    };

  // --- RawKV -----------------------------------------------------------------

  const rawKV: grpc.UntypedServiceImplementation = {
    RawScanAt: unary<{ start_key: Buffer; end_key: Buffer; limit: string; ts: string; reverse: boolean; keys_only: boolean }, unknown>('RawKV', 'RawScanAt', async (req) => {
      const limit = Number(req.limit);
      // elastickv: negative or > MaxDeltaScanLimit+1 -> kv.ErrInvalidRequest, surfaced as codes.Unknown.
      if (!Number.isInteger(limit) || limit < 0 || limit > MAX_SCAN_LIMIT) throw new StatusError(grpc.status.UNKNOWN, 'invalid request');
      if (req.reverse) throw new StatusError(grpc.status.UNIMPLEMENTED, 'reverse scans are not served by the dev cluster');
      const ts = readTsOf(req.ts);
      if (limit === 0) return { kv: [] };
      const end = req.end_key && req.end_key.length > 0 ? req.end_key : null;
      const page = await source.scanPage(req.start_key ?? Buffer.alloc(0), end, ts, { limit, keysOnly: req.keys_only });
      return { kv: page.map((p) => ({ key: p.key, value: req.keys_only ? Buffer.alloc(0) : p.value })) };
    }),
    RawGet: unary<{ key: Buffer; ts: string }, unknown>('RawKV', 'RawGet', async (req) => {
      const ts = readTsOf(req.ts);
      const v = await source.get(req.key, ts);
      return v === null ? { read_at_index: commitIndex.toString(), value: Buffer.alloc(0), exists: false } : { read_at_index: commitIndex.toString(), value: v, exists: true };
    }),
    RawPut: unary<{ key: Buffer; value: Buffer }, unknown>('RawKV', 'RawPut', (req) => {
      cluster.put(req.key, req.value);
      return { commit_index: commitIndex.toString(), success: true };
    }),
    RawDelete: unary<{ key: Buffer }, unknown>('RawKV', 'RawDelete', (req) => {
      cluster.delete(req.key);
      return { commit_index: commitIndex.toString(), success: true };
    }),
  };

  const distribution: grpc.UntypedServiceImplementation = {
    GetTimestamp: unary<object, unknown>('Distribution', 'GetTimestamp', () => ({ timestamp: hlc.next().toString() })),
  };

  // --- Admin (backup) ----------------------------------------------------------

  const admin: grpc.UntypedServiceImplementation = {
    BeginBackup: unary<{ ttl_ms: string }, unknown>('Admin', 'BeginBackup', (req) => {
      const ttl = validTtl(req.ttl_ms);
      sweep();
      if (pins.size >= maxPins) {
        throw new StatusError(grpc.status.RESOURCE_EXHAUSTED, `too many active backups: ${pins.size} pins held, max_active_backup_pins is ${maxPins}`);
      }
      const token = randomBytes(16);
      const readTs = hlc.next();
      const pin: Pin = { id: pinRef(token), token, readTs, ttlMs: ttl, deadline: Date.now() + ttl };
      pins.set(token.toString('hex'), pin);
      savePins();
      log.info({ pin_id: pin.id, read_ts: readTs.toString(), ttl_ms: ttl, active_pins: pins.size }, 'backup_pin_begin');
      return {
        read_ts: readTs.toString(),
        pin_token: token,
        ttl_ms_effective: String(ttl),
        shards: [{ group_id: '1', applied_index: commitIndex.toString() }],
        expected_keys: [],
      };
    }),
    RenewBackup: unary<{ pin_token: Buffer; ttl_ms: string }, unknown>('Admin', 'RenewBackup', (req) => {
      const ttl = validTtl(req.ttl_ms);
      const pin = findPin(req.pin_token);
      pin.ttlMs = ttl;
      pin.deadline = Date.now() + ttl;
      savePins();
      log.info({ pin_id: pin.id, read_ts: pin.readTs.toString(), ttl_ms: ttl, active_pins: pins.size }, 'backup_pin_renew');
      return { ttl_ms_effective: String(ttl) };
    }),
    EndBackup: unary<{ pin_token: Buffer }, unknown>('Admin', 'EndBackup', (req) => {
      const key = Buffer.from(req.pin_token ?? Buffer.alloc(0)).toString('hex');
      const pin = pins.get(key);
      if (pin) {
        pins.delete(key);
        savePins();
        log.info({ pin_id: pin.id, read_ts: pin.readTs.toString(), active_pins: pins.size }, 'backup_pin_end');
      } else {
        log.debug({ active_pins: pins.size }, 'EndBackup of an unknown pin (already ended or expired): no-op');
      }
      return {};
    }),
    ListAdaptersAndScopes: unary<{ pin_token: Buffer }, unknown>('Admin', 'ListAdaptersAndScopes', async (req) => {
      const pin = findPin(req.pin_token);
      return scopesFromKeyspace(new SnapshotView(source, pin.readTs, 1024));
    }),
  };

  // --- servers -------------------------------------------------------------------

  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  const c = contract();
  server.addService(c.RawKV, rawKV);
  server.addService(c.Distribution, distribution);
  if (backupRpc) server.addService(c.Admin, admin);
  const creds = opts.tls
    ? grpc.ServerCredentials.createSsl(opts.tls.ca ?? null, [{ private_key: opts.tls.key, cert_chain: opts.tls.cert }], opts.tls.requireClientCert ?? false)
    : grpc.ServerCredentials.createInsecure();
  const innerPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));

  // A TCP proxy in front, so connections can be dropped on demand.
  const sockets = new Set<Socket>();
  const proxy: NetServer = createNetServer((client) => {
    const upstream = netConnect(innerPort, '127.0.0.1');
    // gRPC frames are small and latency-bound: no Nagle on either leg.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const done = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const { host, port: wantPort } = parseListen(opts.listen ?? '127.0.0.1:0');
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(wantPort, host, () => {
      proxy.off('error', reject);
      resolve();
    });
  });
  const port = (proxy.address() as AddressInfo).port;
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;

  const dropConnections = (): number => {
    const n = sockets.size / 2;
    for (const s of [...sockets]) s.destroy();
    sockets.clear();
    if (n > 0) log.info({ connections: n }, 'dropped client connections');
    return n;
  };

  const sweeper = setInterval(sweep, Math.max(10, opts.sweepIntervalMs ?? 1000));
  sweeper.unref();
  const dropper = opts.dropConnectionsEveryMs && opts.dropConnectionsEveryMs > 0 ? setInterval(dropConnections, opts.dropConnectionsEveryMs) : null;
  dropper?.unref();

  let closed: Promise<void> | null = null;
  const cluster: DevCluster = {
    address,
    port,
    hlc,
    source,
    log,
    calls,
    get activePins() {
      return pins.size;
    },
    get watermark() {
      return advanceWatermark();
    },
    put(key, value) {
      const ts = hlc.next();
      source.put(Buffer.from(key), Buffer.from(value), ts);
      commitIndex++;
      return ts;
    },
    delete(key) {
      const ts = hlc.next();
      source.put(Buffer.from(key), Buffer.alloc(0), ts, { tombstone: true });
      commitIndex++;
      return ts;
    },
    compactTo(ts) {
      if (ts > watermark) watermark = ts;
      source.compact(watermark);
    },
    injectFailure(method, count, code = grpc.status.UNAVAILABLE, details = `injected ${grpc.status[code]} (dev cluster)`) {
      injected.set(method, { count, code, details });
    },
    injectLatency(method, ms) {
      if (ms > 0) methodLatency.set(method, ms);
      else methodLatency.delete(method);
    },
    clearFailures() {
      injected.clear();
    },
    dropConnections,
    sweep,
    close() {
      if (closed) return closed;
      closed = (async () => {
        clearInterval(sweeper);
        if (dropper) clearInterval(dropper);
        await new Promise<void>((r) => {
          proxy.close(() => r());
          for (const s of [...sockets]) s.destroy();
          sockets.clear();
        });
        await new Promise<void>((r) => {
          const t = setTimeout(() => {
            server.forceShutdown();
            r();
          }, 1000);
          server.tryShutdown(() => {
            clearTimeout(t);
            r();
          });
        });
        log.info({ address }, 'stopped');
      })();
      return closed;
    },
  };

  log.info(
    { address, port, backup_rpc: backupRpc, min_ttl_ms: minTtl, max_ttl_ms: maxTtl, max_active_pins: maxPins, retention_ms: retentionMs, latency_ms: latencyMs, method_latency_ms: Object.fromEntries(methodLatency), fail_rate: failRate, auth: opts.token ? (opts.authAll ? 'all' : 'admin') : 'none', tls: !!opts.tls, keys: source.size },
    'listening',
  );
  return cluster;
}
