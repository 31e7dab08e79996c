/**
 * ekv-devcluster: serve demo data or an .fsm snapshot (read in place, writes
 * kept in memory above it)
 * over elastickv's gRPC contract, for live-mount demos and tests.
 *
 *   ekv-devcluster --listen 127.0.0.1:<port> (--demo | --snapshot <file.fsm>)
 *     [--no-backup-rpc] [--min-ttl-ms N] [--max-ttl-ms N] [--max-pins N]
 *     [--retention-ms N] [--latency-ms N] [--method-latency Method=ms] [--fail-rate X]
 *     [--drop-connections-every-ms N] [--token T] [--auth-all] [--log-level L]
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino } from 'pino';
import { buildDemoSource } from '../demo/data.js';
import { LayeredStore, type DevStore } from './store.js';
import { startDevCluster, DEFAULT_MAX_ACTIVE_PINS, DEFAULT_MAX_TTL_MS, DEFAULT_MIN_TTL_MS } from './server.js';

function intArg(name: string): (v: string) => number {
  return (v) => {
    if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError(`${name}: expected a non-negative integer`);
    return Number(v);
  };
}

function methodLatencyArg(v: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([A-Za-z]+)=([0-9]+)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected Method=ms, e.g. ListAdaptersAndScopes=3000');
  return { ...prev, [m[1]!]: Number(m[2]) };
}

function rateArg(v: string): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0 || x > 1) throw new InvalidArgumentError('expected a number between 0 and 1');
  return x;
}

export function buildCommand(): Command {
  return new Command('ekv-devcluster')
    .description('A single-process elastickv stand-in speaking RawKV / Distribution / Admin backup gRPC over in-memory data.')
    .requiredOption('--listen <host:port>', 'address to listen on (port 0 picks a free one)')
    .option('--demo', 'serve the built-in demo data set', false)
    .option('--snapshot <file.fsm>', 'serve the contents of an elastickv .fsm snapshot')
    .option('--no-backup-rpc', 'do not serve Admin.BeginBackup/RenewBackup/EndBackup (an older cluster)')
    .option('--min-ttl-ms <n>', 'smallest backup pin TTL accepted', intArg('--min-ttl-ms'), DEFAULT_MIN_TTL_MS)
    .option('--max-ttl-ms <n>', 'largest backup pin TTL accepted', intArg('--max-ttl-ms'), DEFAULT_MAX_TTL_MS)
    .option('--max-pins <n>', 'max_active_backup_pins', intArg('--max-pins'), DEFAULT_MAX_ACTIVE_PINS)
    .option('--sweep-interval-ms <n>', 'pin sweeper period', intArg('--sweep-interval-ms'), 1000)
    .option('--pin-state <file>', 'persist backup pins in this file and restore them at start (pins survive a restart, as in elastickv)')
    .option('--retention-ms <n>', 'MVCC retention: reads older than this (and not pinned) fail as compacted', intArg('--retention-ms'))
    .option('--latency-ms <n>', 'latency added to every RPC', intArg('--latency-ms'), 0)
    .option('--method-latency <Method=ms>', 'latency added to every call of one method, e.g. BeginBackup=2000 (repeatable)', methodLatencyArg, {})
    .option('--fail-rate <x>', 'fraction of data RPCs answered UNAVAILABLE', rateArg, 0)
    .option('--drop-connections-every-ms <n>', 'drop every client connection this often', intArg('--drop-connections-every-ms'))
    .option('--token <token>', 'require "authorization: Bearer <token>" on Admin RPCs (or env EKV_ADMIN_TOKEN)')
    .option('--auth-all', 'require the token on every RPC, not only Admin', false)
    .addOption(new Option('--log-level <level>', 'pino log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'));
}

/** Run until SIGINT/SIGTERM. */
export async function main(argv: string[]): Promise<void> {
  const cmd = buildCommand();
  cmd.parse(argv);
  const o = cmd.opts();
  if (!!o.demo === !!o.snapshot) throw new Error('choose exactly one of --demo or --snapshot <file.fsm>');
  const log = pino(
    { level: String(o.logLevel), base: { pid: process.pid, name: 'ekv-devcluster' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 1, sync: true }),
  );
  let source: DevStore;
  let initialTs = 0n;
  if (o.snapshot) {
    const t0 = performance.now();
    const loaded = await LayeredStore.openSnapshot(String(o.snapshot));
    source = loaded.store;
    initialTs = loaded.lastCommitTS;
    log.info({ file: o.snapshot, entries: source.size, last_commit_ts: loaded.lastCommitTS.toString(), load_ms: Math.round(performance.now() - t0) }, 'snapshot loaded');
  } else {
    source = buildDemoSource();
  }
  const cluster = await startDevCluster({
    listen: String(o.listen),
    source,
    backupRpc: o.backupRpc !== false,
    minTtlMs: o.minTtlMs as number,
    maxTtlMs: o.maxTtlMs as number,
    maxActivePins: o.maxPins as number,
    sweepIntervalMs: o.sweepIntervalMs as number,
    retentionMs: (o.retentionMs as number | undefined) ?? null,
    latencyMs: o.latencyMs as number,
    methodLatencyMs: o.methodLatency as Record<string, number>,
    failRate: o.failRate as number,
    dropConnectionsEveryMs: o.dropConnectionsEveryMs as number | undefined,
    token: (o.token as string | undefined) ?? process.env.EKV_ADMIN_TOKEN,
    authAll: !!o.authAll,
    initialTs,
    pinStateFile: o.pinState as string | undefined,
    log,
  });
  const sig = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  log.info({ signal: sig, calls: Object.fromEntries(cluster.calls) }, 'shutting down');
  await cluster.close();
  await source.close();
}
