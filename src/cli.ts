/**
 * ekv-mount: mount an elastickv cluster (live, pinned) or an offline `.fsm`
 * snapshot as the logical backup tree, read-only, through FUSE.
 */
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import { ADAPTER_NAMES, defaultDecodeOptions, type AdapterName, type DecodeOptions } from './adapters/types.js';
import { parseDurationMs, parseSize } from './units.js';
import type { MountConfig } from './runner.js';
import { readPinFile } from './session/pinfile.js';
import { pinTokenFromText, pinTokenToText } from './session/session.js';
import { DEFAULT_FUSE_BACKEND, FUSE_BACKENDS, type FuseBackend } from './fuse/backends.js';
import { reexecProcess } from './fuse/addon.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}

export function buildCommand(): Command {
  const cmd = new Command('ekv-mount')
    .description('Mount an elastickv cluster or .fsm snapshot as its logical backup tree (read-only FUSE).')
    .argument('<mountpoint>', 'existing empty directory to mount on')
    .option('--snapshot <file>', 'mount an offline elastickv .fsm snapshot file')
    .option('--cluster <host:port>', 'mount a live cluster (repeat or comma-separate for failover)', collect, [])
    .option('--demo', 'start an embedded dev cluster with demo data and mount it through the live path', false)
    .option('--read-ts <hlc>', 'read timestamp (HLC uint64); default: the snapshot\'s lastCommitTS, or the read_ts BeginBackup pins. On a cluster without --pin-token it is read WITHOUT a pin (BeginBackup cannot pin a chosen read_ts)')
    .option('--cache-size <size>', 'bytes of rendered content kept in memory', '256MiB')
    .option('--heap-slack <size>', 'collect the JS heap once it, with the Buffers its objects hold, grows this much past what was live (0: leave it to V8; default: a quarter of --cache-size, 32-64 MiB)')
    .option('--page-size <n>', 'keys per scan page (scans with values: at most, sized by what a key costs)', '1024')
    .option('--spill-dir <dir>', 'where large whole-scope files (messages.jsonl, CHECKSUMS, …) and CHECKSUMS digests spill to disk (default: $TMPDIR)')
    .addOption(new Option('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .option('--log-file <file>', 'write JSON logs here instead of stdout (daemon mode: otherwise logs are discarded)')
    .option('--daemon', 'return once the mount answers; keep serving in the background', false)
    .option('--adapter <list>', `adapters to expose (${ADAPTER_NAMES.join(',')})`, collect, [])
    .option('--scope <adapter=names>', 'restrict an adapter to scopes, e.g. dynamodb=orders,users (repeatable)', collect, [])
    .option('--include-incomplete-uploads', 'S3: show in-flight multipart uploads under _incomplete_uploads/', false)
    .option('--include-orphans', 'S3: show pre-generation orphan blobs under _orphans/', false)
    .option('--preserve-sqs-visibility', 'SQS: keep live visibility-state fields instead of zeroing them', false)
    .option('--include-sqs-side-records', 'SQS: show dedup/group/vis side records under _internals/', false)
    .addOption(new Option('--dynamodb-bundle-mode <mode>', 'DynamoDB item layout').choices(['per-item', 'jsonl']).default('per-item'))
    .option('--dynamodb-bundle-size <size>', 'DynamoDB jsonl bundle size', '64MiB')
    .option('--rename-collisions', 'S3: rename user keys ending in .elastickv-meta.json instead of refusing them', false)
    .option('--cluster-id <id>', 'cluster identifier stamped into MANIFEST.json')
    .option('--elastickv-version <v>', 'elastickv_version stamped into MANIFEST.json', 'dev')
    .option('--admin-token <token>', 'bearer token for the cluster\'s Admin RPCs (or env EKV_ADMIN_TOKEN)')
    .option('--tls-ca <file>', 'PEM CA bundle for the cluster')
    .option('--tls-cert <file>', 'PEM client certificate')
    .option('--tls-key <file>', 'PEM client key')
    .option('--pin-ttl <duration>', 'backup pin TTL (e.g. 300s, 5m); renewed every ttl/3', '300s')
    .option('--pin-token <hex|@file>', 'join a pin another host began (renewed here, never ended here): its hex token with --read-ts, or @<file> written by that host\'s --pin-token-file')
    .option('--pin-token-file <path>', 'when this mount begins a pin, write its token and read_ts here (mode 0600, removed at unmount) instead of printing the token on stderr')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics here')
    .addOption(new Option('--fuse-backend <backend>', 'kernel FUSE layer: native (libfuse3 addon) or fuse-native (libfuse2)').choices([...FUSE_BACKENDS]).default(DEFAULT_FUSE_BACKEND))
    .option('--progress-interval <seconds>', 'progress log line interval while reads happen (0 = off)', '10')
    .addOption(new Option('--ready-ipc').hideHelp().default(false))
    .showHelpAfterError();
  return cmd;
}

function parseOptions(o: Record<string, unknown>): DecodeOptions {
  const d = defaultDecodeOptions();
  const adapters = o.adapter as string[];
  if (adapters.length) {
    for (const a of adapters) if (!ADAPTER_NAMES.includes(a as AdapterName)) throw new Error(`unknown adapter ${JSON.stringify(a)} (choose from ${ADAPTER_NAMES.join(', ')})`);
    d.adapters = new Set(adapters as AdapterName[]);
  }
  // --scope dynamodb=orders,users is split on commas by collect(); re-join the names onto their adapter.
  const scopes = new Map<AdapterName, Set<string>>();
  let cur: AdapterName | null = null;
  for (const part of o.scope as string[]) {
    const eq = part.indexOf('=');
    let name = part;
    if (eq >= 0) {
      const a = part.slice(0, eq) as AdapterName;
      if (!ADAPTER_NAMES.includes(a)) throw new Error(`--scope: unknown adapter ${JSON.stringify(a)} in ${JSON.stringify(part)} (choose from ${ADAPTER_NAMES.join(', ')})`);
      cur = a;
      name = part.slice(eq + 1);
      if (!name) throw new Error(`--scope ${part}: no names after "=" (e.g. --scope ${a}=${a === 'redis' ? '0' : 'name1,name2'})`);
      if (name.includes('=')) throw new Error(`--scope ${part}: one adapter per --scope (e.g. --scope dynamodb=orders --scope s3=photos)`);
      if (d.adapters.size < ADAPTER_NAMES.length && !d.adapters.has(a)) throw new Error(`--scope ${part}: adapter ${a} is not in --adapter ${[...d.adapters].join(',')}`);
    }
    if (!cur) throw new Error(`--scope: expected adapter=names (e.g. dynamodb=orders,users), got ${JSON.stringify(part)}`);
    if (cur === 'redis' && !/^(db_)?[0-9]+$/.test(name)) throw new Error(`--scope redis=${name}: redis scopes are database numbers (0 or db_0)`);
    if (!scopes.has(cur)) scopes.set(cur, new Set());
    scopes.get(cur)!.add(name);
  }
  d.scopes = scopes;
  d.includeIncompleteUploads = !!o.includeIncompleteUploads;
  d.includeOrphans = !!o.includeOrphans;
  d.preserveSqsVisibility = !!o.preserveSqsVisibility;
  d.includeSqsSideRecords = !!o.includeSqsSideRecords;
  d.dynamodbBundleMode = o.dynamodbBundleMode as 'per-item' | 'jsonl';
  d.dynamodbBundleSize = parseSize(String(o.dynamodbBundleSize));
  d.renameCollisions = !!o.renameCollisions;
  return d;
}

function parseUint64(name: string, v: string): bigint {
  if (!/^[0-9]+$/.test(v)) throw new Error(`${name}: expected an unsigned integer, got ${JSON.stringify(v)}`);
  const b = BigInt(v);
  if (b >= 1n << 64n) throw new Error(`${name}: ${v} does not fit in uint64`);
  return b;
}

/** --pin-token <hex> [--read-ts] or --pin-token @file (token and read_ts from a --pin-token-file). */
function pinTokenArgs(o: Record<string, unknown>, readTs: bigint | undefined): { pinToken?: string; readTs?: bigint } {
  const raw = o.pinToken as string | undefined;
  if (raw === undefined) return { readTs };
  if (o.pinTokenFile) throw new Error('--pin-token-file is for the host that begins a pin; a mount joining one with --pin-token does not write it');
  if (!raw.startsWith('@')) {
    pinTokenFromText(raw); // a one-line error now rather than at mount
    return { pinToken: raw, readTs };
  }
  const f = readPinFile(raw.slice(1));
  if (readTs !== undefined && readTs !== f.readTs) throw new Error(`--read-ts ${readTs} disagrees with read_ts ${f.readTs} in ${raw.slice(1)}: a joined pin is read at its own read_ts (drop --read-ts)`);
  return { pinToken: pinTokenToText(f.pinToken), readTs: f.readTs };
}

export function configFromArgs(argv: string[]): MountConfig {
  const cmd = buildCommand();
  cmd.exitOverride();
  cmd.parse(argv);
  const o = cmd.opts();
  const mountpoint = cmd.args[0]!;
  const sources = [o.snapshot ? 1 : 0, (o.cluster as string[]).length ? 1 : 0, o.demo ? 1 : 0].reduce((a, b) => a + b, 0);
  if (sources !== 1) throw new Error('choose exactly one of --snapshot <file>, --cluster <host:port>, --demo');
  const pin = pinTokenArgs(o, o.readTs !== undefined ? parseUint64('--read-ts', String(o.readTs)) : undefined);
  if ((pin.pinToken || o.pinTokenFile) && o.snapshot) throw new Error('--pin-token / --pin-token-file need a live mount (--cluster or --demo)');
  return {
    mountpoint,
    snapshot: o.snapshot as string | undefined,
    clusters: o.cluster as string[],
    demo: !!o.demo,
    readTs: pin.readTs,
    cacheBytes: parseSize(String(o.cacheSize)),
    heapSlackBytes: o.heapSlack === undefined ? undefined : parseSize(String(o.heapSlack)),
    pageSize: Math.max(1, parseInt(String(o.pageSize), 10) || 1024),
    spillDir: o.spillDir as string | undefined,
    logLevel: String(o.logLevel),
    logFile: o.logFile as string | undefined,
    decode: parseOptions(o),
    clusterId: o.clusterId as string | undefined,
    elastickvVersion: String(o.elastickvVersion),
    adminToken: (o.adminToken as string | undefined) ?? process.env.EKV_ADMIN_TOKEN,
    tls: o.tlsCa || o.tlsCert || o.tlsKey ? { ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey } : undefined,
    pinTtlMs: parseDurationMs(String(o.pinTtl)),
    pinToken: pin.pinToken,
    pinTokenFile: o.pinTokenFile as string | undefined,
    metricsListen: o.metricsListen as string | undefined,
    progressIntervalSeconds: Math.max(0, parseFloat(String(o.progressInterval)) || 0),
    readyIpc: !!o.readyIpc,
    fuseBackend: o.fuseBackend as FuseBackend,
  };
}

/**
 * Node flags for the daemon, each unless the operator gave it (argv or NODE_OPTIONS):
 *  - V8 helper threads no more than the cores beside the main thread (Node starts 4
 *    regardless). A copy through the mount is bound by the main thread, and on a 2-core
 *    machine four concurrent-GC helpers took turns with it: full-scale tar (244k files,
 *    2.1 GiB) 39.9/41.0 s with 4, 36.4/36.5 s with 2, 32.8/34.7 s with 1.
 *  - Under a --cache-size below 128 MiB, a young generation of 8 MiB semi-spaces instead
 *    of V8's 16: the memory budget is small, and a copy's garbage is short-lived pages and
 *    renders. Peak RSS of a full-scale tar at --cache-size 64MiB: 333/336/332 MiB with 16,
 *    305/323/317 with 8, tar time alike (38.1-40.1 s against 38.7-39.4 s).
 *  - An old generation let grow to 4x what was live (--heap-growing-percent=300) before
 *    V8 collects it on its own. V8 picks a smaller factor for a heap that allocates fast,
 *    so a copy through the mount ran ~100 full collections of a 35-130 MiB heap; the heap
 *    governor (memory.ts) still collects at live + slack, so the bound on the heap is the
 *    same. Snapshot tar of the bench tree (2.1 GiB), alternated: 42.1/40.8/37.8 s and
 *    51.2-53.0 s CPU without, 37.7/37.6/33.1 s and 37.1-42.7 s CPU with; peak RSS
 *    433-440 against 437-445 MiB. At --cache-size 64MiB: 41.9/39.7 -> 34.3/39.5 s, CPU
 *    52.3/49.9 -> 38.6/43.6 s, peak RSS 312/301 -> 318/318 MiB.
 *  - Less inlined into each optimised function (--max-inlined-bytecode-size-cumulative=300,
 *    V8's default 920). A copy runs several hundred functions hot enough to optimise, and
 *    TurboFan compiling them took 2.8-3.2 s of a helper thread's CPU in a live tar of the
 *    bench's live dataset (~10 s), beside the cluster on a 2-core machine. 15 alternated
 *    pairs (3 of them with the flag set at run time, as a foreground mount does): helper-thread
 *    CPU lower in 15 of 15 (2.84 -> 2.25 s mean), the mount's CPU lower in 13 of 15
 *    (10.2 -> 9.5 s mean); wall 10.81 -> 10.62 s mean, lower in only 7 of 15 (no change beyond
 *    the noise). Snapshot tar of the bench tree: 19.2-21.5 s against 17.9-21.4 s (3 pairs).
 * A foreground mount gets the same: see startupOnlyFlags and foregroundRuntimeFlags.
 */
export function daemonExecArgv(execArgv: string[], cacheBytes: number, cores = availableParallelism()): string[] {
  const given = (flag: string): boolean => nodeFlagGiven(execArgv, flag);
  const out = [...execArgv];
  if (!given('--v8-pool-size')) out.push(`--v8-pool-size=${Math.max(1, Math.min(4, cores - 1))}`);
  if (cacheBytes < 128 * 2 ** 20 && !given('--max-semi-space-size')) out.push('--max-semi-space-size=8');
  for (const [flag, value] of RUNTIME_FLAGS) if (!given(flag)) out.push(`${flag}=${value}`);
  return out;
}

/**
 * Did the operator give a node flag (on node's command line, or in NODE_OPTIONS for those
 * Node takes there)? `flag` in its dashed spelling: Node and V8 read `_` in a flag's name as
 * `-` (`--heap_growing_percent=50` is that flag, and stays so spelt in process.execArgv).
 */
function nodeFlagGiven(execArgv: string[], flag: string): boolean {
  const isFlag = (arg: string): boolean => {
    const eq = arg.indexOf('=');
    return (eq < 0 ? arg : arg.slice(0, eq)).replace(/_/g, '-') === flag;
  };
  return execArgv.some(isFlag) || (process.env.NODE_OPTIONS ?? '').split(/\s+/).some(isFlag);
}

/**
 * Whether main compiles the mount's modules whole as they load (--no-lazy while it imports
 * them, --lazy again after), unless the operator chose either flag. V8 otherwise compiles
 * a function on its first call, and the first request after a mount (a cat, an ls) paid to
 * compile the lookup, render and FUSE paths it ran. A cat of one item on a fresh mount of
 * the 1M-item table, 16 mounts each, alternated: 12.9-21.6 ms (median 14.6) -> 8.2-12.5 ms
 * (median 10.1); that mount's start 625-666 -> 692-742 ms, RSS after it 63-65 -> 66-67 MiB.
 * Only while loading: --no-lazy for the whole run made a snapshot tar of the bench tree
 * slower in 6 of 7 alternated pairs (CPU 21.0-24.1 -> 21.5-29.7 s); set back after the
 * import, the tar is as fast as without it (CPU 18.3/18.2/19.1 against 19.1/18.8/19.4 s with
 * it kept on) and the cold cat keeps its gain.
 */
export function eagerLoad(execArgv: string[]): boolean {
  return !nodeFlagGiven(execArgv, '--lazy') && !nodeFlagGiven(execArgv, '--no-lazy');
}

/** The flags of daemonExecArgv V8 reads as it works (at each collection, at each optimising compile), so a running process can still set them. */
const RUNTIME_FLAGS: readonly (readonly [string, string])[] = [
  ['--heap-growing-percent', '300'],
  ['--max-inlined-bytecode-size-cumulative', '300'],
];

/**
 * What a foreground mount (the default; systemd units run it so) sets of daemonExecArgv
 * once Node is running: the old generation's growth factor and the inlining budget (before
 * anything is optimised). (Node refuses both in NODE_OPTIONS.) For the growth factor,
 * snapshot tar of the half-size bench tree in the foreground, alternated: 12.8/15.3 s and
 * 14.2/17.5 s CPU as Node starts; 12.1/13.0 s and 12.9/13.8 s CPU with the factor set at
 * run time (as the startup flag: 11.6/13.0 s, 12.4/13.7 s CPU).
 */
export function foregroundRuntimeFlags(execArgv: string[]): string[] {
  return RUNTIME_FLAGS.filter(([flag]) => !nodeFlagGiven(execArgv, flag)).map(([flag, value]) => `${flag}=${value}`);
}

/** Node's own V8 helper-thread pool size. */
const NODE_DEFAULT_POOL = '--v8-pool-size=4';

/**
 * The flags of daemonExecArgv that only take effect when Node starts (helper-thread pool,
 * young generation) and that this process lacks: a foreground mount restarts itself with
 * them (see main). Empty when Node's defaults are what the daemon would get anyway.
 * Snapshot tar of the half-size bench tree in the foreground, alternated, with the growth
 * factor set at run time in both: 11.4/12.0/11.4 s, CPU 13.0/13.1/11.8 s on 4 helper
 * threads; 10.7/11.4/10.1 s, CPU 11.7/12.1/10.9 s on 1 (2 cores).
 */
export function startupOnlyFlags(execArgv: string[], cacheBytes: number, cores = availableParallelism()): string[] {
  return daemonExecArgv(execArgv, cacheBytes, cores)
    .slice(execArgv.length)
    .filter((f) => f !== NODE_DEFAULT_POOL && !RUNTIME_FLAGS.some(([flag]) => f.startsWith(flag + '=')));
}

/** Env marker of a process that restarted itself with startup flags (it never restarts twice). */
const REEXEC_ENV = 'EKV_MOUNT_REEXECED';

/** --daemon: fork a detached child that mounts; exit 0 once it reports the mount answers. */
async function daemonize(argv: string[], cfg: MountConfig): Promise<number> {
  const args = argv.slice(2).filter((a) => a !== '--daemon');
  args.push('--ready-ipc');
  const script = fileURLToPath(new URL('../bin/ekv-mount.js', import.meta.url));
  const child = fork(script, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: daemonExecArgv(process.execArgv, cfg.cacheBytes) });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const done = (code: number, msg?: string): void => {
      if (msg) process.stderr.write(msg.endsWith('\n') ? msg : msg + '\n');
      child.stderr?.destroy();
      if (child.connected) child.disconnect();
      child.unref();
      resolve(code);
    };
    child.on('message', (m: { ready?: boolean; error?: string; notices?: string[] }) => {
      // The daemon's operator notices (the unpinned warning, how to join the pin) are shown here, once.
      if (m.ready) {
        for (const n of m.notices ?? []) process.stderr.write(`ekv-mount: ${n}\n`);
        done(0);
      }
      else done(1, `ekv-mount: ${m.error ?? 'mount failed'}`);
    });
    child.on('exit', (code) => done(code || 1, stderr.trim() || `ekv-mount: daemon exited with code ${code} before the mount answered`));
  });
}

export async function main(argv: string[]): Promise<void> {
  let cfg: MountConfig;
  try {
    cfg = configFromArgs(argv);
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) process.exit(err.exitCode ?? 2);
    process.stderr.write(`ekv-mount: ${err.message}\n`);
    process.exit(2);
  }
  if (argv.includes('--daemon')) process.exit(await daemonize(argv, cfg));
  const startup = startupOnlyFlags(process.execArgv, cfg.cacheBytes);
  if (startup.length > 0 && process.env[REEXEC_ENV] === undefined) {
    process.env[REEXEC_ENV] = startup.join(' ');
    const why = reexecProcess(process.execPath, [process.execPath, ...process.execArgv, ...startup, ...argv.slice(1)]);
    // Still here: mount without them (the mounted line lists the flags in effect).
    process.stderr.write(`ekv-mount: could not restart with ${startup.join(' ')} (${why}); mounting without\n`);
  }
  delete process.env[REEXEC_ENV];
  const runtime = foregroundRuntimeFlags(process.execArgv);
  for (const f of runtime) setFlagsFromString(f);
  const eager = eagerLoad(process.execArgv);
  if (eager) setFlagsFromString('--no-lazy');
  // Loaded only now: a process about to restart itself need not load the whole mount first.
  const { runMount } = await import('./runner.js');
  if (eager) setFlagsFromString('--lazy');
  const code = await runMount({ ...cfg, nodeFlags: [...process.execArgv, ...runtime] });
  process.exit(code);
}
