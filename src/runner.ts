/**
 * Composes a mount: source -> (session) -> view -> tree -> FUSE, then serves
 * until unmounted or signalled, and cleans up on every exit path it controls.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { ALL_ADAPTERS } from './adapters/index.js';
import type { DecodeOptions } from './adapters/types.js';
import { renderManifest, snapshotIndexFromPath, PHASE_SNAPSHOT } from './format/manifest.js';
import { isMounted } from './fuse/mount.js';
import { addonSha256, createFuseMount, mallocTrimmer, type FuseBackend, type KernelMount } from './fuse/index.js';
import { makeLogger, type Logger } from './log.js';
import { SnapshotView } from './source/range.js';
import { SnapshotSource } from './source/snapshot.js';
import type { PageSource } from './source/types.js';
import { Tree } from './tree/tree.js';
import { auxCacheBytes } from './tree/content.js';
import { Interrupted } from './interrupted.js';
import type { LiveHandle } from './live.js';
import { formatSize } from './units.js';
import { Metrics } from './metrics.js';
import { heapSlackBytes, startHeapGovernor } from './memory.js';

export interface MountConfig {
  mountpoint: string;
  snapshot?: string;
  clusters: string[];
  demo: boolean;
  readTs?: bigint;
  cacheBytes: number;
  /** Heap growth past live that triggers a collection; 0 = V8 decides; undefined = from cacheBytes. */
  heapSlackBytes?: number;
  pageSize: number;
  spillDir?: string;
  /** Node and V8 flags in effect (logged when mounted). */
  nodeFlags?: string[];
  logLevel: string;
  logFile?: string;
  decode: DecodeOptions;
  clusterId?: string;
  elastickvVersion: string;
  adminToken?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  pinTtlMs: number;
  /** Join this pin (hex; `--pin-token @file` is resolved by the CLI). */
  pinToken?: string;
  /** Write the pin token and read_ts here (mode 0600) when this mount begins a pin. */
  pinTokenFile?: string;
  metricsListen?: string;
  progressIntervalSeconds: number;
  readyIpc: boolean;
  /** Kernel FUSE layer (default: DEFAULT_FUSE_BACKEND). */
  fuseBackend?: FuseBackend;
}

/** One-line, operator-facing reasons a mount cannot start. */
export function preflight(mnt: string): void {
  let st;
  try {
    st = statSync(mnt);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') throw new Error(`mountpoint ${mnt} is a stale FUSE mount (run: fusermount -u ${mnt})`);
    throw new Error(`mountpoint ${mnt} does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`mountpoint ${mnt} is not a directory`);
  if (isMounted(mnt)) throw new Error(`mountpoint ${mnt} is busy: something is already mounted there`);
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new Error('/dev/fuse is missing or not accessible: load the fuse module and run as a user allowed to mount FUSE');
  }
}

export interface OpenedSource {
  source: PageSource;
  readTs: bigint;
  manifest: () => Buffer;
  /** Gate before every read (pin check); throws to fail the read. */
  guard?: () => void;
  /** Description for the mount log line. */
  describe: Record<string, unknown>;
  /** Lines for the operator, shown once on stderr (daemon: by the parent) when the mount answers; never logged. */
  notices?: string[];
  close: () => Promise<void>;
}

async function openSnapshot(cfg: MountConfig, log: Logger): Promise<OpenedSource> {
  const path = cfg.snapshot!;
  const t0 = performance.now();
  const src = await SnapshotSource.open(path, { pageCacheBytes: auxCacheBytes(cfg.cacheBytes) });
  const readTs = cfg.readTs ?? src.lastCommitTS;
  const mountedAt = new Date();
  const ms = Math.round(performance.now() - t0);
  log.info({ file: path, ...src.stats, last_commit_ts: src.lastCommitTS.toString(), index_ms: ms }, 'snapshot indexed');
  if (src.stats.displaced > 100_000) log.warn({ displaced: src.stats.displaced }, 'many out-of-order keys held in memory');
  return {
    source: src,
    readTs,
    manifest: () =>
      renderManifest({
        phase: PHASE_SNAPSHOT,
        elastickvVersion: cfg.elastickvVersion,
        clusterId: cfg.clusterId,
        snapshotIndex: snapshotIndexFromPath(path),
        lastCommitTS: src.lastCommitTS,
        wallTime: mountedAt,
        source: { fsmPath: path },
        scopes: new Map(),
        options: cfg.decode,
      }),
    describe: { source: 'snapshot', file: path, read_ts: readTs.toString(), entries: src.stats.entries, index_ms: ms },
    close: () => src.close(),
  };
}

/** After a fatal error, clean-up gets this long before the process exits anyway. */
const FATAL_EXIT_MS = 20_000;
/** How long a daemon unmounted from outside waits for its FUSE session to report its end. */
const SESSION_END_WAIT_MS = 2_000;

/**
 * Every exit path the daemon controls ends the pin and unmounts: SIGINT, SIGTERM
 * and SIGHUP at any time (during BeginBackup, ListAdaptersAndScopes and FUSE
 * set-up too), `fusermount -u`, and uncaught exceptions / unhandled rejections.
 * Handlers go in before anything is set up. A signal during set-up stops it at
 * the next step (a BeginBackup in flight is waited for, so the pin it creates is
 * known and ended; ListAdaptersAndScopes is abandoned), cleans up and exits 1.
 * A second signal exits at once, leaving any pin to expire at its TTL.
 */
export async function runMount(cfg: MountConfig): Promise<number> {
  const log = makeLogger(cfg.logLevel, cfg.logFile);
  const report = (msg: { ready?: boolean; error?: string; notices?: string[] }): void => {
    if (cfg.readyIpc && process.send) process.send(msg);
  };
  const mountpoint = resolvePath(cfg.mountpoint);
  let opened: OpenedSource | LiveHandle | null = null;
  let tree: Tree | null = null;
  let fuse: KernelMount | null = null;
  const metrics = new Metrics(() => tree);

  const shutdown = new AbortController();
  let stopReason: string | null = null;
  let fatalCode = 0;
  let wake!: (reason: string) => void;
  const stopped = new Promise<string>((r) => (wake = r));
  const stop = (reason: string): void => {
    if (stopReason) return;
    stopReason = reason;
    shutdown.abort(new Interrupted(reason));
    wake(reason);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopReason) {
      log.warn({ signal: sig, first: stopReason }, 'second signal: exiting now without finishing clean-up (a backup pin left behind expires at its TTL)');
      if (!cfg.readyIpc) process.stderr.write(`ekv-mount: ${sig} again: exiting now; a backup pin left behind expires at its TTL\n`);
      process.exit(1);
    }
    log.info({ signal: sig, mountpoint }, 'signal received');
    stop(sig);
  };
  const onFatal = (kind: 'uncaughtException' | 'unhandledRejection') => (e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    log.fatal({ kind, err: err.message, stack: err.stack }, 'fatal error: unmounting and ending the backup pin');
    if (!cfg.readyIpc) process.stderr.write(`ekv-mount: fatal error (${kind}): ${err.message}; unmounting and ending the backup pin\n`);
    fatalCode = 1;
    if (!stopReason) setTimeout(() => process.exit(1), FATAL_EXIT_MS).unref();
    stop(kind);
  };
  const onUncaught = onFatal('uncaughtException');
  const onUnhandled = onFatal('unhandledRejection');
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);
  const uninstall = (): void => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, onSignal);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUnhandled);
  };
  const checkStop = (): void => {
    if (shutdown.signal.aborted) throw shutdown.signal.reason as Error;
  };

  try {
    try {
      preflight(mountpoint);
      // gRPC and the dev cluster load only for live mounts (about 24 MiB of RSS a snapshot mount does without).
      opened = cfg.snapshot ? await openSnapshot(cfg, log) : await (await import('./live.js')).openLive(cfg, log, metrics, shutdown.signal);
      checkStop();
      const view = new SnapshotView(metrics.instrument(opened.source), opened.readTs, cfg.pageSize);
      tree = new Tree({
        view,
        options: cfg.decode,
        adapters: ALL_ADAPTERS,
        log,
        cacheBytes: cfg.cacheBytes,
        spillDir: cfg.spillDir,
        manifest: opened.manifest,
        guard: opened.guard,
        offThreadSha256: addonSha256(),
      });
      fuse = createFuseMount({ mountpoint, tree, log, debug: cfg.logLevel === 'trace', inflight: metrics.fuseInFlight, backend: cfg.fuseBackend });
      await fuse.mount();
      checkStop();
      await stat(mountpoint); // the kernel answers through us: the mount is live
      if (cfg.metricsListen) log.info({ address: await metrics.listen(cfg.metricsListen) }, 'metrics listening');
      checkStop();
    } catch (e) {
      let msg = e instanceof Error ? e.message : String(e);
      if (fatalCode && e instanceof Interrupted) msg = `fatal error before the mount answered (${e.reason}); see the log`;
      log.error({ err: msg, mountpoint }, 'mount failed');
      await fuse?.unmount().catch(() => {});
      await tree?.close().catch(() => {});
      await opened?.close().catch(() => {});
      await metrics.close();
      report({ error: msg });
      if (!cfg.readyIpc) process.stderr.write(`ekv-mount: ${msg}\n`);
      return 1;
    }
    log.info({ mountpoint, ...opened.describe, cache_size: formatSize(cfg.cacheBytes), node_flags: cfg.nodeFlags ?? process.execArgv }, 'mounted');
    const notices = opened.notices ?? [];
    if (!cfg.readyIpc) {
      for (const n of notices) process.stderr.write(`ekv-mount: ${n}\n`);
      process.stderr.write(`ekv-mount: mounted at ${mountpoint} (read_ts ${opened.readTs}); unmount with: fusermount -u ${mountpoint}\n`);
    }
    report({ ready: true, notices });
    if (cfg.readyIpc && process.connected) process.disconnect?.();

    const t = tree;
    const progress = startProgress(t, log, cfg.progressIntervalSeconds);
    const slack = cfg.heapSlackBytes ?? heapSlackBytes(cfg.cacheBytes);
    const governor = slack > 0 ? startHeapGovernor({ slackBytes: slack, log, trim: mallocTrimmer() ?? undefined }) : null;
    // Opening the source and the mount's first scans leave old-space pages committed that the
    // walk never needs again. One collection now returns them. Measured when the .fsm index
    // pass still made an object per entry (it makes none since e1bbffc): 21 MiB of old space
    // after the 2.1 GiB bench .fsm, 10 after the half-size one, ~10 live in both; idle RssAnon
    // 64 -> ~51 MiB.
    governor?.collect();
    const poll = setInterval(() => {
      if (!isMounted(mountpoint)) stop('unmounted');
    }, 500);
    const reason = await stopped;
    clearInterval(poll);
    clearInterval(progress);
    governor?.stop();
    log.info({ reason, mountpoint }, 'shutting down');
    let code = fatalCode;
    try {
      if (reason !== 'unmounted') await fuse!.unmount();
      // Unmounted from outside (fusermount -u), seen by the poll: the session may still be ending.
      // Its end is reported (the addon's counters, its debug line) before the daemon exits.
      else if (fuse!.exited) await Promise.race([fuse!.exited, new Promise((r) => setTimeout(r, SESSION_END_WAIT_MS).unref())]);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'unmount failed');
      code = 1;
    }
    await t.close().catch(() => {});
    try {
      await opened.close();
    } catch (e) {
      log.error({ err: (e as Error).message }, 'close failed');
    }
    await metrics.close();
    log.info({ reason, bytes_served: t.stats.bytesServed, files_opened: t.stats.filesOpened, paths: t.paths.size, path_state_bytes: t.pathStateBytes(), heap_collections: governor?.stats.collections ?? 0, heap_pause_ms: Math.round(governor?.stats.pauseMs ?? 0) }, 'stopped');
    return code;
  } finally {
    uninstall();
  }
}

function startProgress(tree: Tree, log: Logger, seconds: number): NodeJS.Timeout {
  let lastBytes = 0;
  let lastFiles = 0;
  let lastChecksumFiles = -1;
  const iv = setInterval(
    () => {
      const b = tree.stats.bytesServed;
      const f = tree.stats.filesOpened;
      // A CHECKSUMS build reads files nobody asked for (served bytes do not move): its own counts.
      const checksums = tree.checksumsProgress();
      const ck = checksums ? checksums.dirs + checksums.files + checksums.hashed_now : -1;
      if (b === lastBytes && f === lastFiles && ck === lastChecksumFiles) return;
      log.info({ bytes_served: b, files_opened: f, rate_mib_s: +((b - lastBytes) / seconds / (1 << 20)).toFixed(2), cache_bytes: tree.content.cachedBytes, ...(checksums ? { checksums } : {}) }, 'progress');
      lastBytes = b;
      lastFiles = f;
      lastChecksumFiles = ck;
    },
    Math.max(1, seconds) * 1000,
  );
  if (seconds <= 0) clearInterval(iv);
  iv.unref();
  return iv;
}
