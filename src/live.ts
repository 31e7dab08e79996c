/**
 * Live mounts: --cluster (elastickv's gRPC contract) and --demo (the dev cluster
 * started in-process with demo data, mounted through the same live path).
 */
import { createHash } from 'node:crypto';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { MountConfig, OpenedSource } from './runner.js';
import { renderManifest, PHASE_LIVE_PINNED, PHASE_LIVE_UNPINNED } from './format/manifest.js';
import { buildDemoSource } from './demo/data.js';
import { startDevCluster } from './devcluster/server.js';
import { openClusterSession, type OpenedCluster } from './session/open.js';
import { removePinFile, writePinFile } from './session/pinfile.js';
import { scopesFromKeyspace, type AdapterScopes } from './session/scopes.js';
import { pinTokenToText } from './session/session.js';
import { SnapshotView } from './source/range.js';
import { ReadAheadSource } from './source/readahead.js';
import type { AdapterName, DecodeOptions } from './adapters/types.js';
import type { ListAdaptersAndScopesResponse } from './source/cluster.js';

export type LiveHandle = OpenedSource;

/** Set-up was stopped (a signal, a fatal error) before the mount answered. */
export { Interrupted } from './interrupted.js';

/** Reject as soon as `signal` aborts; `p` is left to settle on its own (its rejection is swallowed). */
export function unlessAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  p.catch(() => {});
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

/**
 * MANIFEST's adapters section for what this mount shows: adapters outside
 * --adapter are absent (renderManifest), and each adapter's scope list is the
 * cluster's list narrowed by --scope, so MANIFEST names exactly the tables,
 * buckets, databases and queues the tree can contain. An enabled adapter with no
 * scope left stays an empty object, as the format owner's decoder writes it
 * ("in the dump, nothing emitted"; internal/backup/manifest.go Adapters).
 */
export function manifestScopes(all: AdapterScopes, opts: DecodeOptions): Map<AdapterName, string[] | number[]> {
  const only = (adapter: AdapterName, names: string[]): string[] => {
    const allowed = opts.scopes.get(adapter);
    return allowed ? names.filter((n) => allowed.has(n)) : names;
  };
  const redisAllowed = opts.scopes.get('redis');
  const dbs = all.redis_databases.map(Number).filter((n) => !redisAllowed || redisAllowed.has(String(n)) || redisAllowed.has(`db_${n}`));
  const out = new Map<AdapterName, string[] | number[]>([
    ['dynamodb', only('dynamodb', all.dynamodb_tables)],
    ['s3', only('s3', all.s3_buckets)],
    ['redis', dbs],
    ['sqs', only('sqs', all.sqs_queues)],
  ]);
  for (const a of [...out.keys()]) if (!opts.adapters.has(a)) out.delete(a);
  return out;
}

/** Operator-facing lines (stderr, once) about the pin this mount holds or joined. Never logged: they may carry the token. */
function pinNotices(o: OpenedCluster, cfg: MountConfig, endpoints: string[]): string[] {
  const ref = o.session.pinRef;
  if (o.mode === 'joined') {
    return [`joined backup pin ${ref} at read_ts ${o.readTs}: renewed here, never ended here (the host that began it ends it)`];
  }
  if (o.mode !== 'pinned' || !o.pinToken) return [];
  const cluster = endpoints.join(',');
  if (cfg.pinTokenFile) {
    return [
      `backup pin ${ref} begun at read_ts ${o.readTs}; its token and read_ts are in ${cfg.pinTokenFile} (mode 0600, removed at unmount).`,
      `to copy other scopes at the same read_ts from another host: ekv-mount <mountpoint> --cluster ${cluster} --pin-token @${cfg.pinTokenFile} --scope <adapter>=<names>`,
    ];
  }
  return [
    `backup pin ${ref} begun at read_ts ${o.readTs} with pin token ${pinTokenToText(o.pinToken)}`,
    `to copy other scopes at the same read_ts from another host: ekv-mount <mountpoint> --cluster ${cluster} --pin-token ${pinTokenToText(o.pinToken)} --read-ts ${o.readTs} --scope <adapter>=<names>`,
    'the pin token is a secret (whoever holds it can renew and end the pin): it is shown only here, never in the logs; --pin-token-file <path> keeps it off the terminal',
  ];
}

export async function openLive(cfg: MountConfig, log: Logger, metrics: Metrics, abort?: AbortSignal): Promise<LiveHandle> {
  let endpoints = cfg.clusters;
  let stopDemo: (() => Promise<void>) | null = null;
  if (cfg.demo) {
    const demo = await startDevCluster({ listen: '127.0.0.1:0', source: buildDemoSource(), backupRpc: true, log: log.child({ component: 'devcluster' }) });
    endpoints = [demo.address];
    stopDemo = () => demo.close();
    log.info({ address: demo.address }, 'demo cluster started');
  }
  let opened: OpenedCluster;
  try {
    // Not abandoned on a signal: a BeginBackup answered after we stopped waiting would
    // leave a pin nobody ends. The runner waits for it, then we end it below.
    opened = await openClusterSession({
      endpoints,
      token: cfg.adminToken,
      tls: cfg.tls,
      ttlMs: cfg.pinTtlMs,
      readTs: cfg.readTs,
      pinToken: cfg.pinToken,
      log,
      counters: metrics,
    });
  } catch (e) {
    await stopDemo?.();
    throw e;
  }
  const o = opened;
  let pinFileWritten = false;
  const close = async (): Promise<void> => {
    await o.close();
    if (pinFileWritten && o.pinToken) removePinFile(cfg.pinTokenFile!, o.pinToken);
    await stopDemo?.();
  };
  let scopes: AdapterScopes;
  try {
    if (abort?.aborted) throw abort.reason as Error;
    if (cfg.pinTokenFile && o.mode === 'pinned' && o.pinToken) {
      writePinFile(cfg.pinTokenFile, { pinToken: o.pinToken, readTs: o.readTs }, { endpoints, ttlMs: o.ttlMs, mountpoint: cfg.mountpoint });
      pinFileWritten = true;
      log.info({ file: cfg.pinTokenFile, pin_ref: o.session.pinRef, read_ts: o.readTs.toString() }, 'pin token file written (mode 0600)');
    }
    // Scopes for MANIFEST: the server's answer when it has the Backup RPCs, else our own read of the metadata prefixes.
    // These we may abandon on a signal: the pin is known and ended by close().
    scopes = await unlessAborted(
      o.mode !== 'unpinned' && o.pinToken
        ? o.client.call<{ pin_token: Buffer }, ListAdaptersAndScopesResponse>('Admin', 'ListAdaptersAndScopes', { pin_token: o.pinToken })
        : scopesFromKeyspace(new SnapshotView(o.source, o.readTs, cfg.pageSize)),
      abort,
    );
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  const scopeMap = manifestScopes(scopes, cfg.decode);
  const mountedAt = new Date();
  // The unpinned warning was logged once by the session; here it goes to stderr and MANIFEST only.
  const notices = o.warning ? [`WARNING: ${o.warning}`] : pinNotices(o, cfg, endpoints);
  return {
    // Ascending point reads (cp -r, tar) turn into scan pages after a few keys: one RPC for many files.
    source: new ReadAheadSource(o.source),
    readTs: o.readTs,
    guard: o.guard,
    notices,
    manifest: () =>
      renderManifest({
        phase: o.mode === 'unpinned' ? PHASE_LIVE_UNPINNED : PHASE_LIVE_PINNED,
        elastickvVersion: cfg.elastickvVersion,
        clusterId: cfg.clusterId,
        wallTime: mountedAt,
        live: { readTs: o.readTs, pinTokenSha256: o.pinToken ? createHash('sha256').update(o.pinToken).digest('hex') : undefined },
        scopes: scopeMap,
        options: cfg.decode,
        extra: o.warning ? { warning: o.warning } : undefined,
      }),
    describe: { source: cfg.demo ? 'demo' : 'cluster', endpoints, read_ts: o.readTs.toString(), pin_mode: o.mode, pin_ref: o.session.pinRef ?? undefined },
    close,
  };
}
