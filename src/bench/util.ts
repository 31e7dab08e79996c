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
  try {
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
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
