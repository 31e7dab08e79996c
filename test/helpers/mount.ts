/** Real mounts of the real binary, for tests. FUSE must work here: failures are loud. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const BIN = join(ROOT, 'bin/ekv-mount.js');
export const execFileP = promisify(execFile);

export function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mnt);
}

export interface Mounted {
  mnt: string;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** fusermount -u and wait for the daemon to exit; returns its exit code. */
  unmount: () => Promise<number | null>;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Start `ekv-mount <mnt> ...args` in the foreground and wait until the mount answers. */
export async function mount(args: string[], opts: { mnt?: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): Promise<Mounted> {
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: FUSE tests cannot run on this machine');
  const mnt = opts.mnt ?? tempDir('ekv-mnt-');
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, mnt, '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': the process's last output (the session-end debug line) is read by then.
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  await waitFor(() => dead || /mounted at /.test(err), 60_000, `mount of ${mnt}\n${err}\n${out}`);
  if (dead) throw new Error(`ekv-mount exited before mounting: ${err}\n${out}`);
  return {
    mnt,
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    unmount: async () => {
      if (isMounted(mnt)) await execFileP('fusermount', ['-u', mnt]);
      return exited;
    },
  };
}

export async function sh(cmd: string, cwd?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', cmd], { cwd, maxBuffer: 1 << 28 }, (e, stdout, stderr) => {
      resolve({ stdout, stderr, code: e ? ((e as { code?: number }).code ?? 1) : 0 });
    });
  });
}
