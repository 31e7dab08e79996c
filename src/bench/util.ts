/** Benchmark plumbing: processes, timing, statistics. Real tools, medians of several runs. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { daemonExecArgv } from '../cli.js';
import { parseSize } from '../units.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const MOUNT_BIN = join(ROOT, 'bin/ekv-mount.js');
export const DEVCLUSTER_BIN = join(ROOT, 'bin/ekv-devcluster.js');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function sh(cmd: string, opts: { cwd?: string } = {}): Promise<{ stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', cmd], { cwd: opts.cwd, maxBuffer: 1 << 28 }, (e, stdout, stderr) => {
      if (e) reject(new Error(`${cmd}: ${stderr || e.message}`));
      else resolve({ stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

export function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mnt);
}

/** CPU seconds (user + system) a live process has used so far, from /proc (clock ticks of 1/100 s); 0 when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** utime + stime of a /proc stat file (a process's or one thread's), in seconds; 0 when it is gone. */
function statCpuSeconds(path: string): number {
  try {
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
    const f = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds one thread has used so far (/proc/<pid>/task/<tid>/stat); 0 when it is gone. */
function threadCpuSeconds(pid: number, tid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
}

/** The machine's idle and disk-wait core-seconds so far (/proc/stat's first line, clock ticks of 1/100 s). */
function machineIdle(): { idle: number; iowait: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  return { idle: Number(f[4]) / 100, iowait: Number(f[5]) / 100 };
}

/**
 * A thread this busy over a sample is taken as what bound that stretch: /proc counts CPU in
 * ticks of 10 ms, so a thread busy all of a 250 ms sample reads 23-25 ticks, and the
 * sampler itself competes for the same two cores.
 */
const BOUND = 0.85;

/** Where a stretch of wall time went on this machine: see sampleTimeline. */
export interface Timeline {
  wallS: number;
  /** Seconds in which the sampled process's main (JS) thread (the daemon's, or the raw client's) was at least 85 % busy (BOUND). */
  mainBoundS: number;
  /** Its CPU over the stretch (core-seconds). */
  mainS: number;
  /** Seconds in which the dev cluster's main thread was at least 85 % busy. */
  clusterBoundS: number;
  /** Core-seconds no process used, and of those the ones the kernel counted as waiting on the disk. */
  idleS: number;
  iowaitS: number;
}

/**
 * Sample, every `everyMs`, the CPU of the main thread of `jsPid` (the daemon, or this process
 * for raw paging) and of the dev cluster's, and the machine's idle time, until stop(). A live
 * copy's wall time is bounded in turn by the daemon's JS thread, by the cluster, by the
 * copying tool, or by neither (cores idle while each waits on the other): the totals alone
 * do not say which.
 */
export function sampleTimeline(jsPid: number, clusterPid: number, everyMs = 250): { stop(): Timeline } {
  const t0 = performance.now();
  const idle0 = machineIdle();
  const main0 = threadCpuSeconds(jsPid, jsPid);
  let last = { t: t0, main: main0, cluster: threadCpuSeconds(clusterPid, clusterPid) };
  let mainBoundS = 0;
  let clusterBoundS = 0;
  const tick = (): void => {
    const now = { t: performance.now(), main: threadCpuSeconds(jsPid, jsPid), cluster: threadCpuSeconds(clusterPid, clusterPid) };
    const dt = (now.t - last.t) / 1000;
    // A stretch much shorter than a sample (the last one, at stop) is too few clock ticks to say.
    if (dt >= everyMs / 2000) {
      if ((now.main - last.main) / dt >= BOUND) mainBoundS += dt;
      if ((now.cluster - last.cluster) / dt >= BOUND) clusterBoundS += dt;
    }
    last = now;
  };
  const iv = setInterval(tick, everyMs);
  return {
    stop: () => {
      clearInterval(iv);
      tick();
      const idle1 = machineIdle();
      return { wallS: (performance.now() - t0) / 1000, mainBoundS, mainS: last.main - main0, clusterBoundS, idleS: idle1.idle - idle0.idle, iowaitS: idle1.iowait - idle0.iowait };
    },
  };
}

export interface Daemon {
  proc: ChildProcess;
  mnt: string;
  /** Peak resident set (VmHWM) in KiB, read from /proc while alive. */
  peakRssKiB(): number;
  /** CPU seconds the daemon has used so far (its every thread). */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** Mount in the foreground (child process) and wait until it answers. */
export async function startMount(args: string[]): Promise<Daemon> {
  const mnt = tempDir('ekv-bench-mnt-');
  // The node flags `ekv-mount --daemon` gives its daemon, so the figures are the shipped daemon's.
  const cache = args.indexOf('--cache-size');
  const node = daemonExecArgv([], parseSize(cache >= 0 ? args[cache + 1]! : '256MiB'));
  const proc = spawn(process.execPath, [...node, MOUNT_BIN, mnt, '--log-level', 'warn', '--progress-interval', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const t0 = Date.now();
  while (!/mounted at /.test(err)) {
    if (proc.exitCode !== null) throw new Error(`ekv-mount exited: ${err}`);
    if (Date.now() - t0 > 300_000) throw new Error(`mount timed out: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc,
    mnt,
    cpuSeconds: () => cpuSeconds(proc.pid),
    peakRssKiB: () => {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : 0;
    },
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      if (isMounted(mnt)) await sh(`fusermount -u '${mnt}'`);
      await exited;
      // The empty mount point goes too (a full run mounts some 70 times).
      if (!isMounted(mnt)) {
        try {
          rmdirSync(mnt);
        } catch {
          /* left behind: harmless, and not worth failing a benchmark run for */
        }
      }
    },
  };
}

export async function dropCaches(): Promise<void> {
  // Best effort: a cold kernel page cache for the .fsm file (root only).
  await sh('sync; echo 1 > /proc/sys/vm/drop_caches').catch(() => {});
}
