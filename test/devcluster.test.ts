import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Hlc, hlcFromMs, hlcToMs } from '../src/devcluster/hlc.js';
import { ClusterClient, ClusterSource } from '../src/source/cluster.js';
import { SnapshotSource } from '../src/source/snapshot.js';
import { SnapshotView } from '../src/source/range.js';
import { SourceError } from '../src/source/types.js';
import { writeFsm } from './fixture/fsm-writer.js';
import { b } from './helpers/devcluster.js';

const root = new URL('..', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'ekv-devcluster-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  address: string;
  lines: Record<string, unknown>[];
  stderr: () => string;
}

/** Start the real binary on port 0 and wait for its "listening" line. */
function startBin(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [join(root, 'bin/ekv-devcluster.js'), '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  let err = '';
  let buf = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.msg === 'listening') resolve({ child, address: String(line.address), lines, stderr: () => err });
      }
    });
    child.on('exit', (code) => reject(new Error(`ekv-devcluster exited ${code}: ${err}`)));
  });
}

function stop(r: Running): Promise<number | null> {
  return new Promise((resolve) => {
    r.child.once('exit', (code) => resolve(code));
    r.child.kill('SIGTERM');
  });
}

describe('HLC', () => {
  it('is physical ms << 16 | logical and strictly monotonic', () => {
    let now = 1_700_000_000_000;
    const h = new Hlc(0n, () => now);
    const a = h.next();
    expect(a).toBe(BigInt(now) << 16n);
    expect(h.next()).toBe(a + 1n);
    expect(h.next()).toBe(a + 2n);
    now -= 5; // clock goes backwards: still monotonic
    expect(h.next()).toBe(a + 3n);
    now += 10;
    expect(h.next()).toBe(BigInt(now) << 16n);
    expect(hlcToMs(hlcFromMs(now))).toBe(now);
    const floor = (BigInt(now) + 1000n) << 16n;
    expect(new Hlc(floor, () => now).next()).toBe(floor + 1n);
  });
});

describe('ekv-devcluster binary', () => {
  const fsm = join(tmp, 'data.fsm');
  writeFsm(
    fsm,
    [
      { key: 'a', value: 'a1', ts: 10n },
      { key: 'a', value: 'a2', ts: 20n },
      { key: 'ab', value: 'ab1', ts: 15n },
      { key: 'ab', value: '', ts: 18n, tombstone: true },
      { key: 'b', value: 'b-exp', ts: 12n, expireAt: 19n },
      { key: Buffer.from([0xff, 0x01]), value: 'bin', ts: 11n },
      ...Array.from({ length: 300 }, (_, i) => ({ key: `k/${String(i).padStart(4, '0')}`, value: `v${i}`, ts: BigInt(10 + (i % 7)) })),
    ],
    25n,
  );

  it('--snapshot serves the same pages as the snapshot read directly; GetTimestamp is above lastCommitTS', async () => {
    const r = await startBin(['--snapshot', fsm, '--min-ttl-ms', '1000', '--token', 'tok-123']);
    const snap = await SnapshotSource.open(fsm);
    const src = new ClusterSource({ endpoints: [r.address], token: 'tok-123' });
    try {
      expect(r.lines.find((l) => l.msg === 'snapshot loaded')).toMatchObject({ entries: 306, last_commit_ts: '25' });
      for (const ts of [11n, 16n, 19n, 25n]) {
        for (const pageSize of [1, 4, 1024]) {
          const want: string[] = [];
          for await (const kv of new SnapshotView(snap, ts, pageSize).scan(Buffer.alloc(0), null)) want.push(`${kv.key.toString('hex')}=${kv.value.toString('hex')}`);
          const got: string[] = [];
          for await (const kv of new SnapshotView(src, ts, pageSize).scan(Buffer.alloc(0), null)) got.push(`${kv.key.toString('hex')}=${kv.value.toString('hex')}`);
          expect(got).toEqual(want);
        }
      }
      const cc = src.client;
      expect(await cc.getTimestamp()).toBeGreaterThan(25n);
      // Admin requires the token (elastickv's admin gate); data RPCs do not.
      const anon = new ClusterClient({ endpoints: [r.address] });
      expect(((await anon.beginBackup(1000).catch((e: unknown) => e)) as SourceError).code).toBe('unauthenticated');
      anon.close();
      const pin = await cc.beginBackup(1000);
      await cc.endBackup(pin.pinToken);
      for (let i = 0; i < 200 && !r.lines.some((l) => l.msg === 'backup_pin_end'); i++) await new Promise((res) => setTimeout(res, 10));
      expect(r.lines.filter((l) => String(l.msg).startsWith('backup_pin_')).map((l) => [l.msg, l.active_pins])).toEqual([
        ['backup_pin_begin', 1],
        ['backup_pin_end', 0],
      ]);
      expect(JSON.stringify(r.lines)).not.toContain('tok-123');
    } finally {
      await src.close();
      await snap.close();
    }
    expect(await stop(r)).toBe(0);
  });

  it('--no-backup-rpc answers BeginBackup with UNIMPLEMENTED', async () => {
    const r = await startBin(['--snapshot', fsm, '--no-backup-rpc']);
    const cc = new ClusterClient({ endpoints: [r.address] });
    try {
      expect(r.lines.find((l) => l.msg === 'listening')).toMatchObject({ backup_rpc: false });
      expect(((await cc.beginBackup(60_000).catch((e: unknown) => e)) as SourceError).code).toBe('unimplemented');
      expect((await new ClusterSource({ endpoints: [], client: cc }).get(b('a'), 25n))?.toString()).toBe('a2');
    } finally {
      cc.close();
    }
    expect(await stop(r)).toBe(0);
  });

  it('refuses a missing data choice with one line', async () => {
    const child = spawn(process.execPath, [join(root, 'bin/ekv-devcluster.js'), '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(1);
    expect(err).toBe('ekv-devcluster: choose exactly one of --demo or --snapshot <file.fsm>\n');
  });
});
