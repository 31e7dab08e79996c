/**
 * Live mounts end to end: the real ekv-mount binary mounts (real FUSE) a dev
 * cluster speaking elastickv's gRPC contract on loopback. The cluster runs in
 * this test process so the tests can watch its pins, write to it, fail its
 * renewals and restart it.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LayeredStore } from '../src/devcluster/store.js';
import { startDevCluster, type DevCluster, type DevClusterOptions } from '../src/devcluster/server.js';
import { writeFsm, type FsmEntry } from '../src/fixture/fsm.js';
import { ClusterClient } from '../src/source/cluster.js';
import { captureLog, type LogCapture } from './helpers/devcluster.js';
import { goldenCases, normalizeChecksums } from './helpers/golden.js';
import { BIN, execFileP, isMounted, mount, sh, tempDir, waitFor, type Mounted } from './helpers/mount.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { buildDemoSource } from '../src/demo/data.js';

const tmp = tempDir('ekv-live-');
const STR = (k: string): string => `!redis|str|${k}`;
/** Legacy (no magic header) Redis string values: the owner writes them as raw bytes. */
const value = (i: number): Buffer => Buffer.alloc(48 * 1024, `value-${i}-`);
const ENTRIES: FsmEntry[] = [
  { key: STR('greeting'), value: 'hello' },
  ...Array.from({ length: 40 }, (_, i) => ({ key: STR(`k${String(i).padStart(3, '0')}`), value: value(i) })),
];
const FSM = join(tmp, '0000000000000064.fsm');
writeFsm(FSM, ENTRIES, 1000n);
const STRINGS = 'redis/db_0/strings';

interface Cluster {
  dc: DevCluster;
  server: LogCapture;
  pins: () => [string, unknown][];
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

async function cluster(opts: Partial<DevClusterOptions> = {}, fsm = FSM): Promise<Cluster> {
  const server = captureLog();
  const { store: source, lastCommitTS } = await LayeredStore.openSnapshot(fsm);
  cleanup.push(() => source.close());
  const dc = await startDevCluster({ source, initialTs: lastCommitTS, minTtlMs: 100, sweepIntervalMs: 50, log: server.log, ...opts });
  cleanup.push(() => dc.close());
  return {
    dc,
    server,
    pins: () => server.lines.filter((l) => String(l.msg).startsWith('backup_pin_')).map((l) => [String(l.msg), l.active_pins]),
  };
}

async function liveMount(c: Cluster, args: string[] = []): Promise<Mounted> {
  const m = await mount(['--cluster', c.dc.address, '--pin-ttl', '3s', ...args]);
  cleanup.push(async () => {
    if (m.proc.exitCode === null) {
      if (isMounted(m.mnt)) await sh(`fusermount -u '${m.mnt}'`);
      await m.exited;
    }
  });
  return m;
}

const cat = (m: Mounted, rel: string) => sh(`cat '${join(m.mnt, rel)}'`);
/** The daemon's pino JSON lines (stdout). */
const logLines = (m: { stdout: () => string }): Record<string, unknown>[] =>
  m
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('live mount: pin lifecycle', () => {
  for (const how of ['fusermount -u', 'SIGINT', 'SIGTERM'] as const) {
    it(`pins go back to 0 after ${how}; exit 0`, async () => {
      const c = await cluster();
      const m = await liveMount(c);
      expect(c.dc.activePins).toBe(1);
      expect((await cat(m, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
      if (how === 'fusermount -u') expect(await m.unmount()).toBe(0);
      else {
        m.proc.kill(how);
        expect(await m.exited).toBe(0);
      }
      expect(isMounted(m.mnt)).toBe(false);
      expect(c.dc.activePins).toBe(0);
      // Renewals (every ttl/3) may land in between on a busy box: they must hold the pin, not end it.
      const renewals = c.pins().filter(([msg]) => msg === 'backup_pin_renew');
      expect(renewals.every(([, n]) => n === 1)).toBe(true);
      expect(c.pins().filter(([msg]) => msg !== 'backup_pin_renew')).toEqual([
        ['backup_pin_begin', 1],
        ['backup_pin_end', 0],
      ]);
      expect(c.dc.calls.get('EndBackup')).toBe(1);
    });
  }

  it('after SIGKILL the pin is not ended but expires at its TTL', async () => {
    const c = await cluster();
    const ttl = 1500;
    const sweepMs = 50; // cluster() runs the sweeper every 50 ms
    const m = await liveMount(c, ['--pin-ttl', `${ttl}ms`]);
    expect(c.dc.activePins).toBe(1);
    const killedAt = Date.now();
    m.proc.kill('SIGKILL');
    await m.exited;
    await sh(`fusermount -u -z '${m.mnt}'`);
    await waitFor(() => c.dc.activePins === 0, 5000, 'the pin to expire');
    expect(c.pins().map(([msg]) => msg)).not.toContain('backup_pin_end');
    expect(c.pins().at(-1)).toEqual(['backup_pin_expired', 0]);
    const expiredAt = Number(c.server.byMsg('backup_pin_expired')[0]!.time);
    const expiredAfter = expiredAt - killedAt;
    // Renewed every ttl/3 until the kill: it outlives the kill by at least ttl - ttl/3 ...
    expect(expiredAfter).toBeGreaterThanOrEqual(900);
    // ... and the last renewal was at or before the kill, so it is gone by ttl + one sweep (+ slack for a busy box).
    expect(expiredAfter).toBeLessThanOrEqual(ttl + sweepMs + 750);
  });

  it('renews while a long copy runs; the copy is byte-exact', async () => {
    const c = await cluster({ latencyMs: 25 });
    const m = await liveMount(c, ['--pin-ttl', '600ms', '--page-size', '4']);
    const t0 = c.server.lines.length;
    const dest = join(tmp, 'copy-renew');
    const r = await sh(`cp -r '${join(m.mnt, 'redis')}' '${dest}'`);
    expect(r.stderr).toBe('');
    const renewals = c.server.lines.slice(t0).filter((l) => l.msg === 'backup_pin_renew').length;
    expect(renewals).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 40; i += 13) expect(readFileSync(join(dest, 'db_0/strings', `k${String(i).padStart(3, '0')}.bin`)).equals(value(i))).toBe(true);
    expect(await m.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
  });

  it('writes made after the pin are invisible in the mount (and visible to a new mount)', async () => {
    const c = await cluster();
    const m = await liveMount(c);
    const client = new ClusterClient({ endpoints: [c.dc.address] });
    cleanup.push(async () => client.close());
    await client.call('RawKV', 'RawPut', { key: Buffer.from(STR('greeting')), value: Buffer.from('changed') });
    await client.call('RawKV', 'RawPut', { key: Buffer.from(STR('zz-new')), value: Buffer.from('new') });
    expect((await cat(m, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
    expect((await sh(`ls '${join(m.mnt, STRINGS)}'`)).stdout.split('\n')).not.toContain('zz-new.bin');
    const m2 = await liveMount(c);
    expect((await cat(m2, `${STRINGS}/greeting.bin`)).stdout).toBe('changed');
    expect((await cat(m2, `${STRINGS}/zz-new.bin`)).stdout).toBe('new');
    expect(await m2.unmount()).toBe(0);
    expect(await m.unmount()).toBe(0);
  });

  it('renewal failure: reads fail with EIO (never stale bytes) and one critical log line says why', async () => {
    const c = await cluster();
    const m = await liveMount(c, ['--pin-ttl', '900ms']);
    expect((await cat(m, `${STRINGS}/k000.bin`)).code).toBe(0);
    c.dc.injectFailure('RenewBackup', Infinity, 5 /* NOT_FOUND */, 'backup pin not found');
    await waitFor(() => /backup pin LOST/.test(m.stdout()), 5000, 'the pin to be lost');
    const r = await cat(m, `${STRINGS}/k001.bin`);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Input\/output error/);
    const crit = m
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"severity":"critical"'));
    expect(crit).toHaveLength(1);
    expect(crit[0]).toMatch(/renewal/);
    // The data RPCs still answer: the EIO is the pin check, not the cluster.
    expect(c.dc.calls.get('RawGet') ?? 0).toBeGreaterThan(0);
    expect(await m.unmount()).toBe(0);
  });

  it('cluster restart mid-copy: EIO while it is down, then the pin is confirmed and reads resume with the right bytes', async () => {
    const port = await freePort();
    const pinState = join(tmp, 'pins.json');
    rmSync(pinState, { force: true });
    let c = await cluster({ listen: `127.0.0.1:${port}`, pinStateFile: pinState });
    const m = await liveMount(c, ['--pin-ttl', '8s']);
    expect((await cat(m, `${STRINGS}/k000.bin`)).code).toBe(0);
    await c.dc.close();
    const down = await cat(m, `${STRINGS}/k001.bin`);
    expect(down.code).not.toBe(0);
    expect(down.stdout).toBe('');
    expect(down.stderr).toMatch(/Input\/output error/);
    expect(existsSync(pinState)).toBe(true);
    c = await cluster({ listen: `127.0.0.1:${port}`, pinStateFile: pinState });
    expect(c.server.byMsg('backup pins restored')).toHaveLength(1);
    let ok: { stdout: string; code: number } = { stdout: '', code: 1 };
    await waitFor(
      async () => {
        ok = await sh(`cat '${join(m.mnt, STRINGS)}/k001.bin'`);
        if (ok.code === 0) return true;
        expect(ok.stdout).toBe(''); // a failing read never returns bytes
        return false;
      },
      15_000,
      'reads to resume after the restart',
    );
    expect(Buffer.from(ok.stdout, 'latin1').equals(value(1))).toBe(true);
    const all = await sh(`cat '${join(m.mnt, STRINGS)}'/k0*.bin | sha256sum`);
    const want = createHash('sha256').update(Buffer.concat(Array.from({ length: 40 }, (_, i) => value(i)))).digest('hex');
    expect(all.stdout).toBe(`${want}  -\n`);
    expect(await m.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
  });
});

describe('live mount: files checked by path (sha256sum -c)', () => {
  it('every file checks out, nearly all answered ahead by the addon though each render costs round trips; the pin then ends', async () => {
    const c = await cluster({ latencyMs: 5 });
    const m = await liveMount(c, ['--log-level', 'debug']);
    const sums = join(tempDir('ekv-live-sums-'), 'CHECKSUMS');
    expect((await sh(`cat CHECKSUMS > '${sums}'`, m.mnt)).code).toBe(0);
    const files = Number((await sh(`wc -l < '${sums}'`)).stdout.trim());
    expect(files).toBeGreaterThanOrEqual(41); // 41 strings, MANIFEST.json and KEYMAP.jsonl
    const r = await sh(`sha256sum -c '${sums}'`, m.mnt);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.match(/: OK$/gm)?.length).toBe(files);
    expect(await m.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
    const end = logLines(m).find((l) => l.msg === 'fuse session ended') as { ops: Record<string, number> } | undefined;
    expect(end, 'fuse session ended line').toBeDefined();
    // Three lookups in order start the walk; the rest of the strings are answered by the addon.
    expect(end!.ops.lookahead_runs).toBeGreaterThanOrEqual(1);
    expect(end!.ops.expected_answered).toBeGreaterThanOrEqual(files - 10);
    expect(end!.ops.lookup).toBeLessThan(12);
  });
});

describe('live mount: older clusters and refusals', () => {
  it('--no-backup-rpc: mounts unpinned at a fresh timestamp with a loud warning (stderr, log, MANIFEST)', async () => {
    const c = await cluster({ backupRpc: false });
    const m = await liveMount(c);
    // Once at mount: one stderr line, one log line, and MANIFEST.
    const stderrWarnings = m.stderr().split('\n').filter((l) => l.includes('WARNING'));
    expect(stderrWarnings).toHaveLength(1);
    expect(stderrWarnings[0]).toMatch(/^ekv-mount: WARNING: the cluster has no Admin\.BeginBackup RPC .*WITHOUT a backup pin/);
    const warnLines = logLines(m).filter((l) => l.level === 40);
    expect(warnLines).toHaveLength(1);
    expect(String(warnLines[0]!.msg)).toMatch(/no Admin\.BeginBackup RPC.*WITHOUT a backup pin/);
    const manifest = JSON.parse((await cat(m, 'MANIFEST.json')).stdout) as Record<string, unknown>;
    expect(manifest.phase).toBe('phase1-live-unpinned');
    expect(manifest.warning).toBe(warnLines[0]!.msg);
    expect((manifest.live as { read_ts: number }).read_ts).toBeGreaterThan(1000);
    expect((await cat(m, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
    expect(await m.unmount()).toBe(0);
  });

  it('a pinned mount writes phase1-live-pinned with read_ts, the pin token hash and the scopes', async () => {
    const c = await cluster();
    const m = await liveMount(c);
    const manifest = JSON.parse((await cat(m, 'MANIFEST.json')).stdout) as { phase: string; live: { read_ts: number; pin_token_sha256: string }; adapters: Record<string, unknown> };
    expect(manifest.phase).toBe('phase1-live-pinned');
    expect(manifest.live.pin_token_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.adapters.redis).toEqual({ databases: [0] });
    expect(await m.unmount()).toBe(0);
  });

  it('ResourceExhausted (too many pins) and InvalidArgument (ttl out of bounds) are one-line errors, exit 1', async () => {
    const c = await cluster({ maxActivePins: 1, minTtlMs: 60_000 });
    const holder = new ClusterClient({ endpoints: [c.dc.address] });
    cleanup.push(async () => holder.close());
    const pin = await holder.beginBackup(60_000);
    const full = await runMountExpectingFailure(['--cluster', c.dc.address, '--pin-ttl', '5m']);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/^ekv-mount: [^\n]*too many active backups[^\n]*\n$/);
    await holder.endBackup(pin.pinToken);
    const ttl = await runMountExpectingFailure(['--cluster', c.dc.address, '--pin-ttl', '10s']);
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toMatch(/^ekv-mount: [^\n]*ttl[^\n]*\n$/i);
    expect(c.dc.activePins).toBe(0);
  });
});

describe('live mount: --read-ts without a pin', () => {
  it('on a cluster WITH the Backup RPCs: unpinned time travel, warned once (stderr, log, MANIFEST), no claim the RPC is missing', async () => {
    const c = await cluster();
    const m = await liveMount(c, ['--read-ts', '1000']);
    expect(c.dc.calls.get('BeginBackup')).toBeUndefined(); // BeginBackup takes no read_ts: nothing to ask it
    expect(c.dc.activePins).toBe(0);
    expect(m.stderr()).not.toMatch(/no Admin\.BeginBackup/);
    const stderrWarnings = m.stderr().split('\n').filter((l) => l.includes('WARNING'));
    expect(stderrWarnings).toEqual([expect.stringMatching(/^ekv-mount: WARNING: --read-ts 1000 without --pin-token is unpinned time travel: BeginBackup cannot pin a read_ts you choose .*WITHOUT a backup pin/)]);
    const warnLines = logLines(m).filter((l) => l.level === 40);
    expect(warnLines).toHaveLength(1);
    expect(`ekv-mount: WARNING: ${String(warnLines[0]!.msg)}`).toBe(stderrWarnings[0]);
    const manifest = JSON.parse((await cat(m, 'MANIFEST.json')).stdout) as { phase: string; warning: string; live: { read_ts: number } };
    expect(manifest).toMatchObject({ phase: 'phase1-live-unpinned', warning: warnLines[0]!.msg, live: { read_ts: 1000 } });
    expect((await cat(m, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
    expect(await m.unmount()).toBe(0);
  });
});

describe('live mount: joining a pin from another host', () => {
  const tokenIn = (stderr: string): { token: string; readTs: string } => {
    const mm = /backup pin [0-9a-f]+ begun at read_ts (\d+) with pin token ([0-9a-f]+)\n/.exec(stderr);
    expect(mm, stderr).not.toBeNull();
    return { readTs: mm![1]!, token: mm![2]! };
  };

  it('host A prints token and read_ts once on stderr (never in its logs); host B joins with them; same bytes; B leaves the pin, A ends it', async () => {
    const c = await cluster();
    const a = await liveMount(c, ['--scope', 'redis=0']);
    const { token, readTs } = tokenIn(a.stderr());
    expect(a.stderr().split(token).length - 1).toBe(2); // the "begun" line and the ready-to-paste join command, nothing else
    expect(a.stderr()).toContain(`--pin-token ${token} --read-ts ${readTs}`);
    // Writes after A's pin: B must still see A's read_ts, not the new data.
    const writer = new ClusterClient({ endpoints: [c.dc.address] });
    cleanup.push(async () => writer.close());
    await writer.call('RawKV', 'RawPut', { key: Buffer.from(STR('greeting')), value: Buffer.from('changed') });
    const b = await liveMount(c, ['--pin-token', token, '--read-ts', readTs, '--scope', 'redis=db_0']);
    expect(b.stderr()).toMatch(/joined backup pin [0-9a-f]{12} at read_ts \d+: renewed here, never ended here/);
    expect(c.dc.activePins).toBe(1);
    const sum = (m: Mounted) => sh(`cd '${m.mnt}' && find redis -type f | sort | xargs sha256sum`);
    const [sa, sb] = [await sum(a), await sum(b)];
    expect(sa.stdout).toContain('strings/greeting.bin');
    expect(sb.stdout).toBe(sa.stdout);
    expect((await cat(b, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
    const liveSection = (text: string): string => /\n {2}"live": \{[^}]*\}/.exec(text)![0]; // as text: a uint64 HLC does not survive JSON.parse
    const [rawA, rawB] = [(await cat(a, 'MANIFEST.json')).stdout, (await cat(b, 'MANIFEST.json')).stdout];
    expect(liveSection(rawA)).toContain(`"read_ts": ${readTs},`);
    expect(liveSection(rawB)).toBe(liveSection(rawA));
    const ma = JSON.parse(rawA) as { live: { pin_token_sha256: string } };
    expect((JSON.parse(rawB) as { phase: string }).phase).toBe('phase1-live-pinned');
    expect(ma.live.pin_token_sha256).toBe(createHash('sha256').update(Buffer.from(token, 'hex')).digest('hex'));
    expect(await b.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(1);
    expect(c.dc.calls.get('EndBackup')).toBeUndefined();
    expect((await cat(a, `${STRINGS}/greeting.bin`)).stdout).toBe('hello'); // A's pin is untouched
    expect(await a.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
    expect(c.pins().filter(([msg]) => msg === 'backup_pin_end')).toEqual([['backup_pin_end', 0]]);
    // The token never reached a JSON log line, on either host (only its sha256 / short ref).
    for (const m of [a, b]) {
      expect(m.stdout()).not.toContain(token);
      expect(m.stdout()).toMatch(/"pin_ref":"[0-9a-f]{12}"/);
    }
  });

  it('--pin-token-file writes token + read_ts with mode 0600 (not on stderr); --pin-token @file joins with it; the file goes at unmount', async () => {
    const c = await cluster();
    const file = join(tmp, 'pin-a.txt');
    rmSync(file, { force: true });
    const prevUmask = process.umask(0o000); // the daemon inherits it: 0600 must not depend on the umask
    let a: Mounted;
    try {
      a = await liveMount(c, ['--pin-token-file', file]);
    } finally {
      process.umask(prevUmask);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const token = /^pin_token=([0-9a-f]+)$/m.exec(text)![1]!;
    const readTs = /^read_ts=(\d+)$/m.exec(text)![1]!;
    expect(a.stderr()).not.toContain(token);
    expect(a.stderr()).toContain(`its token and read_ts are in ${file} (mode 0600`);
    expect(a.stderr()).toContain(`--pin-token @${file}`);
    expect(a.stdout()).not.toContain(token);
    const rawManifest = (await cat(a, 'MANIFEST.json')).stdout;
    expect(rawManifest).toContain(`"read_ts": ${readTs},`); // (as text: a uint64 HLC does not survive JSON.parse)
    const ma = JSON.parse(rawManifest) as { live: { pin_token_sha256: string } };
    expect(ma.live.pin_token_sha256).toBe(createHash('sha256').update(Buffer.from(token, 'hex')).digest('hex'));
    const b = await liveMount(c, ['--pin-token', `@${file}`]);
    expect(b.stderr()).toContain(`joined backup pin`);
    expect(b.stderr()).toContain(`(read_ts ${readTs})`);
    expect((await sh(`cmp '${join(a.mnt, STRINGS, 'k007.bin')}' '${join(b.mnt, STRINGS, 'k007.bin')}'`)).code).toBe(0);
    expect(b.stdout()).not.toContain(token);
    expect(await b.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(1);
    expect(await a.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
    expect(existsSync(file)).toBe(false);
  });

  it('--daemon: the parent prints the join line (and an unpinned warning) that the detached child would otherwise lose; the log file has no token', async () => {
    const c = await cluster();
    const mnt = tempDir('ekv-mnt-daemon-');
    const logFile = join(tmp, 'daemon-pin.log');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [BIN, mnt, '--cluster', c.dc.address, '--pin-ttl', '3s', '--daemon', '--log-file', logFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('exit', (code) => resolve({ code, stderr: err }));
    });
    cleanup.push(async () => {
      if (isMounted(mnt)) await sh(`fusermount -u '${mnt}'`);
    });
    expect(r.code).toBe(0);
    const { token, readTs } = tokenIn(r.stderr);
    expect(r.stderr).toContain(`--pin-token ${token} --read-ts ${readTs}`);
    expect(isMounted(mnt)).toBe(true);
    expect(c.dc.activePins).toBe(1);
    expect(readFileSync(logFile, 'utf8')).not.toContain(token);
    await sh(`fusermount -u '${mnt}'`);
    await waitFor(() => c.dc.activePins === 0, 10_000, 'the daemon to end its pin');

    const old = await cluster({ backupRpc: false });
    const mnt2 = tempDir('ekv-mnt-daemon-');
    const r2 = await execFileP(process.execPath, [BIN, mnt2, '--cluster', old.dc.address, '--daemon', '--log-file', join(tmp, 'daemon-unpinned.log')]);
    cleanup.push(async () => {
      if (isMounted(mnt2)) await sh(`fusermount -u '${mnt2}'`);
    });
    expect(r2.stderr).toMatch(/^ekv-mount: WARNING: the cluster has no Admin\.BeginBackup RPC[^\n]*WITHOUT a backup pin[^\n]*\n$/);
    await sh(`fusermount -u '${mnt2}'`);
  });

  it('--pin-token without --read-ts says where to get it, truthfully', async () => {
    const c = await cluster();
    const r = await runMountExpectingFailure(['--cluster', c.dc.address, '--pin-token', '00ff']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ekv-mount: --pin-token needs --read-ts: [^\n]*printed both on its stderr[^\n]*--pin-token-file[^\n]*--pin-token @<that file>[^\n]*\n$/);
  });
});

describe('live MANIFEST follows --scope and --adapter', () => {
  /** adapter -> names in the tree (decoded dir names), for comparing with MANIFEST. */
  const treeScopes = async (m: Mounted): Promise<Record<string, string[]>> => {
    const out: Record<string, string[]> = {};
    for (const a of (await sh(`ls '${m.mnt}'`)).stdout.split('\n').filter((n) => n && !/^[A-Z]/.test(n))) {
      out[a] = (await sh(`ls '${join(m.mnt, a)}'`)).stdout.split('\n').filter(Boolean).map((n) => (a === 'redis' ? n.replace(/^db_/, '') : decodeURIComponent(n)));
    }
    return out;
  };
  const manifestScopes = (j: { adapters: Record<string, Record<string, (string | number)[]>> }): Record<string, string[]> =>
    Object.fromEntries(Object.entries(j.adapters).map(([a, v]) => [a, (Object.values(v)[0] ?? []).map(String)]));

  for (const backupRpc of [true, false]) {
    it(`${backupRpc ? 'pinned (ListAdaptersAndScopes)' : 'unpinned (metadata scan)'}: MANIFEST lists exactly the scopes the tree contains`, async () => {
      const c = await cluster({ source: buildDemoSource(), backupRpc });
      const m = await liveMount(c, ['--scope', 'dynamodb=orders,no-such-table', '--scope', 'sqs=payments.fifo,orders']);
      const j = JSON.parse((await cat(m, 'MANIFEST.json')).stdout) as { adapters: Record<string, Record<string, (string | number)[]>> };
      expect(j.adapters).toEqual({
        dynamodb: { tables: ['orders'] },
        s3: { buckets: ['logs', 'photos'] },
        redis: { databases: [0] },
        sqs: { queues: ['orders', 'payments.fifo'] },
      });
      expect(manifestScopes(j)).toEqual(await treeScopes(m));
      expect(await m.unmount()).toBe(0);

      const m2 = await liveMount(c, ['--adapter', 'dynamodb,redis', '--scope', 'dynamodb=users', '--scope', 'redis=7']);
      const j2 = JSON.parse((await cat(m2, 'MANIFEST.json')).stdout) as { adapters: Record<string, Record<string, (string | number)[]>> };
      // Excluded adapters are absent; an adapter in the dump with nothing emitted is {} (the owner's shape).
      expect(j2.adapters).toEqual({ dynamodb: { tables: ['users'] }, redis: {} });
      expect(await treeScopes(m2)).toEqual({ dynamodb: ['users'] });
      expect(await m2.unmount()).toBe(0);
    });
  }
});

describe('live mount: every exit path ends the pin', () => {
  interface Spawned {
    proc: ChildProcess;
    mnt: string;
    stdout: () => string;
    stderr: () => string;
    exited: Promise<number | null>;
  }
  /** The real binary without waiting for the mount (set-up can be interrupted); nodeArgs go before the script. */
  const spawnMount = (args: string[], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Spawned => {
    const mnt = tempDir('ekv-mnt-exit-');
    const proc = spawn(process.execPath, [...nodeArgs, BIN, mnt, '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    cleanup.push(async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      if (isMounted(mnt)) await sh(`fusermount -u -z '${mnt}'`);
    });
    return { proc, mnt, stdout: () => out, stderr: () => err, exited };
  };

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} while ListAdaptersAndScopes is slow (pin begun, not mounted yet): EndBackup, pins back to 0, exit 1 with one line`, async () => {
      const c = await cluster({ methodLatencyMs: { ListAdaptersAndScopes: 4000 } });
      const m = spawnMount(['--cluster', c.dc.address, '--pin-ttl', '3s']);
      await waitFor(() => c.dc.calls.get('ListAdaptersAndScopes') === 1, 15_000, 'ListAdaptersAndScopes to be called');
      expect(c.dc.activePins).toBe(1);
      const t0 = Date.now();
      m.proc.kill(sig);
      expect(await m.exited).toBe(1);
      expect(Date.now() - t0).toBeLessThan(3000); // the slow listing was abandoned, not waited out
      expect(c.dc.activePins).toBe(0);
      expect(c.pins().filter(([msg]) => msg !== 'backup_pin_renew')).toEqual([
        ['backup_pin_begin', 1],
        ['backup_pin_end', 0],
      ]);
      expect(m.stderr()).toMatch(new RegExp(`^ekv-mount: interrupted by ${sig} before the mount answered\\n$`));
      expect(isMounted(m.mnt)).toBe(false);
    });
  }

  it('SIGTERM while BeginBackup is in flight: the pin it creates is waited for and ended (none left to expire)', async () => {
    const c = await cluster({ methodLatencyMs: { BeginBackup: 1500 } });
    const m = spawnMount(['--cluster', c.dc.address, '--pin-ttl', '60s']);
    await waitFor(() => c.dc.calls.get('BeginBackup') === 1, 15_000, 'BeginBackup to be called');
    expect(c.dc.activePins).toBe(0);
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(1);
    expect(c.dc.activePins).toBe(0);
    expect(c.pins()).toEqual([
      ['backup_pin_begin', 1],
      ['backup_pin_end', 0],
    ]);
    expect(c.dc.calls.get('ListAdaptersAndScopes')).toBeUndefined(); // stopped at the next step
    expect(isMounted(m.mnt)).toBe(false);
  });

  it('a second signal exits at once (the operator insists); the pin is left to its TTL', async () => {
    const c = await cluster({ methodLatencyMs: { BeginBackup: 3000 } });
    const m = spawnMount(['--cluster', c.dc.address, '--pin-ttl', '1s']);
    await waitFor(() => c.dc.calls.get('BeginBackup') === 1, 15_000, 'BeginBackup to be called');
    m.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(m.proc.exitCode).toBeNull(); // the first one waits for BeginBackup
    const t0 = Date.now();
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(m.stderr()).toMatch(/SIGTERM again: exiting now; a backup pin left behind expires at its TTL/);
    await waitFor(() => c.pins().some(([msg]) => msg === 'backup_pin_expired'), 10_000, 'the orphaned pin to expire');
    expect(c.dc.activePins).toBe(0);
  });

  for (const kind of ['uncaughtException', 'unhandledRejection'] as const) {
    it(`an ${kind} while mounted: one fatal log line, unmounted, EndBackup, exit 1`, async () => {
      const c = await cluster();
      // Preloaded into the daemon: SIGUSR2 raises the fault from outside any handler the daemon wrote.
      const preload = join(tmp, 'crash.mjs');
      writeFileSync(
        preload,
        `process.on('SIGUSR2', () => { if (process.env.EKV_TEST_CRASH === 'unhandledRejection') Promise.reject(new Error('injected rejection')); else throw new Error('injected exception'); });\n`,
      );
      const m = spawnMount(['--cluster', c.dc.address, '--pin-ttl', '3s'], ['--import', pathToFileURL(preload).href], { EKV_TEST_CRASH: kind });
      await waitFor(() => /mounted at /.test(m.stderr()) || m.proc.exitCode !== null, 30_000, 'the mount');
      expect(isMounted(m.mnt)).toBe(true);
      expect((await sh(`cat '${join(m.mnt, STRINGS, 'greeting.bin')}'`)).stdout).toBe('hello');
      expect(c.dc.activePins).toBe(1);
      m.proc.kill('SIGUSR2');
      expect(await m.exited).toBe(1);
      expect(isMounted(m.mnt)).toBe(false);
      expect(c.dc.activePins).toBe(0);
      expect(c.pins().filter(([msg]) => msg !== 'backup_pin_renew').map(([msg]) => msg)).toEqual(['backup_pin_begin', 'backup_pin_end']);
      const fatal = logLines(m).filter((l) => l.level === 60);
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toMatchObject({ kind, err: kind === 'uncaughtException' ? 'injected exception' : 'injected rejection' });
      expect(m.stderr()).toMatch(new RegExp(`fatal error \\(${kind}\\): injected`));
    });
  }
});

describe('live mount: admin token', () => {
  const TOKEN = 'adm-XYZZY-7f3a';
  const envWithout = (): NodeJS.ProcessEnv => {
    const e = { ...process.env };
    delete e.EKV_ADMIN_TOKEN;
    return e;
  };

  it('--admin-token and EKV_ADMIN_TOKEN are sent as the bearer token (flag wins over env); never logged', async () => {
    const c = await cluster({ token: TOKEN });
    const viaFlag = await mount(['--cluster', c.dc.address, '--pin-ttl', '3s', '--admin-token', TOKEN], { env: { EKV_ADMIN_TOKEN: 'wrong-env-token' } });
    cleanup.push(async () => viaFlag.unmount());
    expect(c.dc.activePins).toBe(1);
    expect((await cat(viaFlag, `${STRINGS}/greeting.bin`)).stdout).toBe('hello');
    expect(viaFlag.stdout()).not.toContain('XYZZY');
    expect(await viaFlag.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
    const viaEnv = await mount(['--cluster', c.dc.address, '--pin-ttl', '3s'], { env: { EKV_ADMIN_TOKEN: TOKEN } });
    cleanup.push(async () => viaEnv.unmount());
    expect(c.dc.activePins).toBe(1);
    expect(viaEnv.stdout()).not.toContain('XYZZY');
    expect(await viaEnv.unmount()).toBe(0);
    expect(c.dc.activePins).toBe(0);
  });

  it('a wrong or missing token is a clear one-line error, exit 1, no pin left', async () => {
    const c = await cluster({ token: TOKEN });
    const wrong = await runMountExpectingFailure(['--cluster', c.dc.address, '--admin-token', 'not-the-token'], envWithout());
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^ekv-mount: [^\n]*BeginBackup: invalid admin token \(UNAUTHENTICATED\); the cluster refused the admin token from --admin-token \/ EKV_ADMIN_TOKEN \(check it\)\n$/);
    expect(wrong.stderr).not.toContain('not-the-token');
    const wrongEnv = await runMountExpectingFailure(['--cluster', c.dc.address], { ...envWithout(), EKV_ADMIN_TOKEN: 'bad-env' });
    expect(wrongEnv.code).toBe(1);
    expect(wrongEnv.stderr).toMatch(/^ekv-mount: [^\n]*UNAUTHENTICATED[^\n]*refused the admin token[^\n]*\n$/);
    const missing = await runMountExpectingFailure(['--cluster', c.dc.address], envWithout());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^ekv-mount: [^\n]*missing authorization header \(UNAUTHENTICATED\); no admin token was given: pass --admin-token <token> or set EKV_ADMIN_TOKEN\n$/);
    expect(c.dc.activePins).toBe(0);
  });
});

describe('live tree == snapshot tree', () => {
  const cases = goldenCases();
  it('has golden pairs to compare', () => expect(cases.length).toBeGreaterThan(0));
  for (const gc of cases) {
    it(`${gc.name}: the live mount and the snapshot mount diff -r clean (MANIFEST aside)`, async () => {
      const c = await cluster({}, gc.fsm);
      const live = await liveMount(c, gc.flags);
      const snap = await mount(['--snapshot', gc.fsm, ...gc.flags]);
      cleanup.push(async () => snap.unmount());
      const a = join(tmp, `${gc.name.replace('/', '_')}-live`);
      const b = join(tmp, `${gc.name.replace('/', '_')}-snap`);
      expect((await sh(`cp -r '${live.mnt}' '${a}' && cp -r '${snap.mnt}' '${b}'`)).stderr).toBe('');
      for (const d of [a, b]) {
        rmSync(join(d, 'MANIFEST.json'));
        await sh(`sed -i '/  MANIFEST\\.json$/d' '${join(d, 'CHECKSUMS')}'`);
      }
      expect(normalizeChecksums(readFileSync(join(a, 'CHECKSUMS'), 'utf8'))).toBe(normalizeChecksums(readFileSync(join(b, 'CHECKSUMS'), 'utf8')));
      const d = await sh(`diff -r '${b}' '${a}'`);
      expect(d.stdout + d.stderr).toBe('');
      expect(await live.unmount()).toBe(0);
      expect(c.dc.activePins).toBe(0);
    });
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function runMountExpectingFailure(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stderr: string }> {
  const mnt = tempDir('ekv-mnt-fail-');
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, mnt, '--log-level', 'error', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code, stderr: err }));
  });
}

