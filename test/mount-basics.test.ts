import { writeFileSync, readFileSync, statSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFsm } from './fixture/fsm-writer.js';
import { configFromArgs, daemonExecArgv, eagerLoad, foregroundRuntimeFlags, startupOnlyFlags } from '../src/cli.js';
import { BIN, execFileP, isMounted, mount, sh, tempDir, waitFor } from './helpers/mount.js';

const dir = tempDir('ekv-basics-');
const empty = join(dir, '0000000000000064.fsm');
writeFsm(empty, [], 777n);

describe('FUSE mount of a .fsm snapshot: basics', () => {
  it('shows MANIFEST.json and CHECKSUMS with exact sizes, valid sha256sum, writes refused, clean unmount', async () => {
    const m = await mount(['--snapshot', empty]);
    try {
      // readdir order as the kernel returns it (libuv's readdirSync sorts): CHECKSUMS last.
      expect((await sh('ls -f', m.mnt)).stdout.split('\n').filter(Boolean)).toEqual(['MANIFEST.json', 'CHECKSUMS']);
      const manifest = readFileSync(join(m.mnt, 'MANIFEST.json'));
      expect(statSync(join(m.mnt, 'MANIFEST.json')).size).toBe(manifest.length);
      const j = JSON.parse(manifest.toString());
      expect(j.phase).toBe('phase0-snapshot-decode');
      expect(j.snapshot_index).toBe(64); // "<index>.fsm" parsed base 10, as the owner does
      expect(j.last_commit_ts).toBe(777);
      expect(j.source.fsm_path).toBe(empty);
      const sums = readFileSync(join(m.mnt, 'CHECKSUMS'), 'utf8');
      expect(sums).toMatch(/^[0-9a-f]{64} {2}MANIFEST\.json\n$/);
      expect(statSync(join(m.mnt, 'CHECKSUMS')).size).toBe(Buffer.byteLength(sums));
      const check = await sh('sha256sum -c CHECKSUMS', m.mnt);
      expect(check.code).toBe(0);
      expect(check.stdout).toBe('MANIFEST.json: OK\n');
      // Read-only: every write path is refused by the kernel or by us.
      for (const cmd of ['touch x', 'echo hi > MANIFEST.json', 'mkdir d', 'rm MANIFEST.json', 'mv MANIFEST.json y', 'chmod 777 MANIFEST.json', 'ln -s a b']) {
        const r = await sh(cmd, m.mnt);
        expect(r.code, cmd).not.toBe(0);
        expect(r.stderr, cmd).toMatch(/Read-only file system/);
      }
      expect(statSync(join(m.mnt, 'MANIFEST.json')).mode & 0o777).toBe(0o444);
      const mi = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === m.mnt)!;
      expect(mi.split(' ')[5]).toMatch(/^ro[,$]?/);
      const miss = await sh('cat nope', m.mnt);
      expect(miss.stderr).toMatch(/No such file or directory/);
    } finally {
      expect(await m.unmount()).toBe(0);
    }
    expect(isMounted(m.mnt)).toBe(false);
    expect(m.stdout()).toMatch(/"msg":"stopped"/);
  });

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`${sig} unmounts cleanly and exits 0`, async () => {
      const m = await mount(['--snapshot', empty]);
      m.proc.kill(sig);
      expect(await m.exited).toBe(0);
      expect(isMounted(m.mnt)).toBe(false);
    });
  }

  it('the daemon gets V8 helper threads for the cores beside its main thread, a 4x old-generation growth factor, a smaller inlining budget and, under a small cache, a small young generation, unless told otherwise', () => {
    const MiB = 2 ** 20;
    const G = '--heap-growing-percent=300';
    const I = '--max-inlined-bytecode-size-cumulative=300';
    expect(daemonExecArgv([], 256 * MiB, 2)).toEqual(['--v8-pool-size=1', G, I]);
    expect(daemonExecArgv(['--inspect'], 256 * MiB, 3)).toEqual(['--inspect', '--v8-pool-size=2', G, I]);
    expect(daemonExecArgv([], 256 * MiB, 16)).toEqual(['--v8-pool-size=4', G, I]);
    expect(daemonExecArgv(['--v8-pool-size=3'], 256 * MiB, 2)).toEqual(['--v8-pool-size=3', G, I]);
    expect(daemonExecArgv(['--heap-growing-percent=50'], 256 * MiB, 2)).toEqual(['--heap-growing-percent=50', '--v8-pool-size=1', I]);
    expect(daemonExecArgv(['--max-inlined-bytecode-size-cumulative=920'], 256 * MiB, 2)).toEqual(['--max-inlined-bytecode-size-cumulative=920', '--v8-pool-size=1', G]);
    // Node and V8 take `_` for `-` in a flag's name: the operator's flag in either spelling wins.
    expect(daemonExecArgv(['--heap_growing_percent=50', '--v8_pool_size=3'], 256 * MiB, 2)).toEqual(['--heap_growing_percent=50', '--v8_pool_size=3', I]);
    // A small cache gets a small young generation, unless the operator chose one.
    expect(daemonExecArgv([], 64 * MiB, 2)).toEqual(['--v8-pool-size=1', '--max-semi-space-size=8', G, I]);
    expect(daemonExecArgv(['--max-semi-space-size=2'], 64 * MiB, 2)).toEqual(['--max-semi-space-size=2', '--v8-pool-size=1', G, I]);
  });

  it('the mount compiles its modules whole as they load, unless the operator chose --lazy or --no-lazy', () => {
    expect(eagerLoad([])).toBe(true);
    expect(eagerLoad(['--lazy'])).toBe(false);
    expect(eagerLoad(['--no-lazy'])).toBe(false);
    expect(eagerLoad(['--no_lazy'])).toBe(false);
    // A flag that only starts with the same name is not that choice.
    expect(eagerLoad(['--lazy-feedback-allocation'])).toBe(true);
    expect(eagerLoad(['--v8-pool-size=1', '--heap-growing-percent=300'])).toBe(true);
    // In NODE_OPTIONS too, a flag is a whole word there.
    const had = process.env.NODE_OPTIONS;
    try {
      process.env.NODE_OPTIONS = '--lazy-feedback-allocation --max-old-space-size=512';
      expect(eagerLoad([])).toBe(true);
      process.env.NODE_OPTIONS = '--max-old-space-size=512 --no_lazy';
      expect(eagerLoad([])).toBe(false);
    } finally {
      if (had === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = had;
    }
  });

  it('a foreground mount (the default) sets the growth factor and the inlining budget at run time, unless the operator gave them', async () => {
    expect(foregroundRuntimeFlags([])).toEqual(['--heap-growing-percent=300', '--max-inlined-bytecode-size-cumulative=300']);
    expect(foregroundRuntimeFlags(['--heap-growing-percent=50'])).toEqual(['--max-inlined-bytecode-size-cumulative=300']);
    expect(foregroundRuntimeFlags(['--heap-growing-percent=50', '--max-inlined-bytecode-size-cumulative=920'])).toEqual([]);
    expect(foregroundRuntimeFlags(['--max_inlined_bytecode_size_cumulative=920'])).toEqual(['--heap-growing-percent=300']);
    const flagsOf = (out: string): string[] => JSON.parse(out.split('\n').find((l) => l.includes('"msg":"mounted"'))!).node_flags;
    const m = await mount(['--snapshot', empty]);
    try {
      expect(flagsOf(m.stdout())).toEqual(expect.arrayContaining(['--heap-growing-percent=300', '--max-inlined-bytecode-size-cumulative=300']));
    } finally {
      expect(await m.unmount()).toBe(0);
    }
    // (Node refuses V8 flags such as this one in NODE_OPTIONS: on node's command line only.)
    const chosen = await mount(['--snapshot', empty], { nodeArgs: ['--heap-growing-percent=120'] });
    try {
      expect(flagsOf(chosen.stdout())).toContain('--heap-growing-percent=120');
      expect(flagsOf(chosen.stdout())).not.toContain('--heap-growing-percent=300');
    } finally {
      expect(await chosen.unmount()).toBe(0);
    }
  });

  it('a foreground mount restarts itself (same pid) with the flags that only work from Node\'s start; ones the operator gave are kept', async () => {
    const MiB = 2 ** 20;
    expect(startupOnlyFlags([], 256 * MiB, 2)).toEqual(['--v8-pool-size=1']);
    expect(startupOnlyFlags([], 256 * MiB, 16)).toEqual([]); // what Node starts with anyway
    expect(startupOnlyFlags([], 64 * MiB, 16)).toEqual(['--max-semi-space-size=8']);
    expect(startupOnlyFlags(['--v8-pool-size=1', '--max-semi-space-size=4'], 64 * MiB, 2)).toEqual([]);
    const flagsOf = (out: string): string[] => JSON.parse(out.split('\n').find((l) => l.includes('"msg":"mounted"'))!).node_flags;
    // A cache under 128 MiB wants small semi-spaces on any machine: the restart happens here whatever the cores.
    const m = await mount(['--snapshot', empty, '--cache-size', '64MiB']);
    try {
      const cmdline = readFileSync(`/proc/${m.proc.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline).toContain('--max-semi-space-size=8');
      expect(cmdline).toContain(BIN);
      expect(flagsOf(m.stdout())).toEqual(expect.arrayContaining(['--max-semi-space-size=8', '--heap-growing-percent=300']));
      expect(m.stderr()).not.toMatch(/could not restart/);
      expect(readdirSync(m.mnt)).toContain('MANIFEST.json');
    } finally {
      expect(await m.unmount()).toBe(0);
    }
    // A process that restarted once never restarts again (the marker it restarts with).
    const again = await mount(['--snapshot', empty, '--cache-size', '64MiB'], { env: { EKV_MOUNT_REEXECED: '--max-semi-space-size=8' } });
    try {
      expect(readFileSync(`/proc/${again.proc.pid}/cmdline`, 'utf8').split('\0')).not.toContain('--max-semi-space-size=8');
    } finally {
      expect(await again.unmount()).toBe(0);
    }
    const chosen = await mount(['--snapshot', empty, '--cache-size', '64MiB'], { nodeArgs: ['--max-semi-space-size=4', '--v8-pool-size=2'] });
    try {
      const cmdline = readFileSync(`/proc/${chosen.proc.pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline.filter((a) => a.startsWith('--max-semi-space-size') || a.startsWith('--v8-pool-size'))).toEqual(['--max-semi-space-size=4', '--v8-pool-size=2']);
    } finally {
      expect(await chosen.unmount()).toBe(0);
    }
  });

  it('--daemon returns 0 only once the mount answers; fusermount -u ends the daemon', async () => {
    const mnt = tempDir('ekv-daemon-');
    const log = join(dir, 'daemon.log');
    const r = await execFileP(process.execPath, [BIN, mnt, '--snapshot', empty, '--daemon', '--log-file', log]);
    expect(r.stderr).toBe('');
    expect(isMounted(mnt)).toBe(true);
    expect(readdirSync(mnt)).toContain('MANIFEST.json');
    const pid = Number(/"pid":(\d+)/.exec(readFileSync(log, 'utf8'))![1]);
    // V8's helper threads sized to the cores beside the main thread (Node's default is 4).
    const cores = (await import('node:os')).availableParallelism();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline).toContain(`--v8-pool-size=${Math.max(1, Math.min(4, cores - 1))}`);
    expect(cmdline).toContain('--heap-growing-percent=300');
    await execFileP('fusermount', ['-u', mnt]);
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 'daemon exit');
    expect(readFileSync(log, 'utf8')).toMatch(/"reason":"unmounted"/);
  });

  it('--daemon fails with a one-line reason and non-zero exit for bad input', async () => {
    const run = async (args: string[]) => {
      try {
        await execFileP(process.execPath, [BIN, ...args, '--daemon']);
        return { code: 0, stderr: '' };
      } catch (e) {
        const err = e as { code: number; stderr: string };
        return { code: err.code, stderr: err.stderr };
      }
    };
    const missing = await run([join(dir, 'no-such-dir'), '--snapshot', empty]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/mountpoint .* does not exist/);

    const bad = join(dir, 'bad.fsm');
    writeFileSync(bad, 'definitely not a snapshot');
    const mnt = tempDir('ekv-bad-');
    const badFile = await run([mnt, '--snapshot', bad]);
    expect(badFile.code).not.toBe(0);
    expect(badFile.stderr).toMatch(/not an elastickv snapshot/);
    expect(badFile.stderr.trim().split('\n')).toHaveLength(1);
    expect(isMounted(mnt)).toBe(false);

    const noFile = await run([mnt, '--snapshot', join(dir, 'absent.fsm')]);
    expect(noFile.code).not.toBe(0);
    expect(noFile.stderr).toMatch(/absent\.fsm/);

    const busy = await mount(['--snapshot', empty]);
    try {
      const again = await run([busy.mnt, '--snapshot', empty]);
      expect(again.code).not.toBe(0);
      expect(again.stderr).toMatch(/busy/);
    } finally {
      await busy.unmount();
    }
  });

  it('--help lists every flag with its default', async () => {
    const r = await execFileP(process.execPath, [BIN, '--help']);
    for (const f of ['--snapshot', '--cluster', '--demo', '--read-ts', '--cache-size', '--log-level', '--daemon', '--scope', '--rename-collisions', '--admin-token', '--pin-token']) {
      expect(r.stdout).toContain(f);
    }
    expect(r.stdout).toMatch(/--cache-size <size>.*\(default: "256MiB"\)/s);
  });
});

describe('CLI: --scope, --pin-token and --pin-token-file parsing', () => {
  /** Run the binary with argv that must be refused before anything connects (nothing listens on 127.0.0.1:9). */
  const refuse = async (args: string[]): Promise<{ code: number; stderr: string }> => {
    try {
      await execFileP(process.execPath, [BIN, tempDir('ekv-cli-'), ...args], { timeout: 20_000 });
      return { code: 0, stderr: '' };
    } catch (e) {
      const err = e as { code: number; stderr: string };
      return { code: err.code, stderr: err.stderr };
    }
  };

  const cases: [string[], RegExp][] = [
    [['--scope', 'orders'], /--scope: expected adapter=names \(e\.g\. dynamodb=orders,users\), got "orders"/],
    [['--scope', 'dynamo=orders'], /--scope: unknown adapter "dynamo" in "dynamo=orders" \(choose from dynamodb, s3, redis, sqs\)/],
    [['--scope', 'dynamodb='], /--scope dynamodb=: no names after "="/],
    [['--scope', 'dynamodb=orders=x'], /one adapter per --scope/],
    [['--scope', 'redis=cache'], /--scope redis=cache: redis scopes are database numbers \(0 or db_0\)/],
    [['--adapter', 's3', '--scope', 'dynamodb=orders'], /--scope dynamodb=orders: adapter dynamodb is not in --adapter s3/],
    [['--adapter', 'mysql'], /unknown adapter "mysql"/],
    [['--pin-token', 'xyz'], /--pin-token: expected the hex pin token printed by the host that began the pin/],
    [['--pin-token', '@/nonexistent/pin.txt'], /--pin-token @\/nonexistent\/pin\.txt: cannot read it/],
    [['--pin-token', '00ff', '--pin-token-file', '/tmp/x'], /--pin-token-file is for the host that begins a pin/],
  ];
  for (const [args, want] of cases) {
    it(`refuses ${args.join(' ')} with one line, exit 2`, async () => {
      const r = await refuse(['--cluster', '127.0.0.1:9', ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^ekv-mount: [^\n]+\n$/);
      expect(r.stderr).toMatch(want);
    });
  }

  it('re-joins comma-split scope names onto their adapter', () => {
    const cfg = configFromArgs(['node', 'ekv-mount', '/mnt', '--cluster', 'h:1', '--scope', 'dynamodb=orders,users', '--scope', 's3=photos', '--scope', 'redis=db_0']);
    expect([...cfg.decode.scopes].map(([a, n]) => [a, [...n]])).toEqual([
      ['dynamodb', ['orders', 'users']],
      ['s3', ['photos']],
      ['redis', ['db_0']],
    ]);
  });

  it('--pin-token @file takes token and read_ts from the file; a disagreeing --read-ts is refused', async () => {
    const f = join(dir, 'pin.txt');
    writeFileSync(f, '# comment\npin_token=00ff10\nread_ts=123456789\n', { mode: 0o600 });
    const cfg = configFromArgs(['node', 'ekv-mount', '/mnt', '--cluster', 'h:1', '--pin-token', `@${f}`]);
    expect(cfg).toMatchObject({ pinToken: '00ff10', readTs: 123456789n });
    expect(() => configFromArgs(['node', 'ekv-mount', '/mnt', '--cluster', 'h:1', '--pin-token', `@${f}`, '--read-ts', '5'])).toThrow(/--read-ts 5 disagrees with read_ts 123456789/);
    writeFileSync(f, 'token: 00ff\n');
    expect(() => configFromArgs(['node', 'ekv-mount', '/mnt', '--cluster', 'h:1', '--pin-token', `@${f}`])).toThrow(/not a pin file/);
  });
});

afterAll(() => {
  mkdirSync(dir, { recursive: true });
});
