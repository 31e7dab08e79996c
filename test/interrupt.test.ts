/**
 * Interrupted requests on the native backend, end to end: the real binary mounts (real FUSE)
 * a dev cluster whose RawScanAt answers slowly, so building CHECKSUMS (what a stat of it,
 * `ls -l` of the root, asks for) takes seconds. A caller that is leaving (Ctrl-C, kill,
 * timeout) must not be held in the kernel's uninterruptible wait until the build ends, and a
 * build nobody waits for any more must stop. Other signals must not turn a stat into an error.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LayeredStore } from '../src/devcluster/store.js';
import { startDevCluster, type DevCluster } from '../src/devcluster/server.js';
import { writeFsm, type FsmEntry } from '../src/fixture/fsm.js';
import { ddbTableWithItems } from '../src/fixture/dynamodb.js';
import { sqsMessageEntries, sqsQueueEntries } from '../src/fixture/sqs.js';
import { captureLog } from './helpers/devcluster.js';
import { isMounted, mount, sh, tempDir, waitFor, type Mounted } from './helpers/mount.js';
import { renderEntries } from './helpers/render.js';

const tmp = tempDir('ekv-intr-');
const ENTRIES: FsmEntry[] = Array.from({ length: 60 }, (_, i) => ({ key: `!redis|str|k${String(i).padStart(3, '0')}`, value: `value-${i}` }));
const FSM = join(tmp, '0000000000000064.fsm');
writeFsm(FSM, ENTRIES, 1000n);
/** A queue whose messages.jsonl takes 30 pages at --page-size 4 (a round trip each: 4.5 s at 150 ms). */
const QUEUE: FsmEntry[] = [
  ...sqsQueueEntries({ name: 'q' }),
  ...Array.from({ length: 120 }, (_, i) => sqsMessageEntries({ name: 'q' }, { id: `m${String(i).padStart(3, '0')}`, body: `body ${i}`, sendTs: 1000 + i })).flat(),
];
const QUEUE_FSM = join(tmp, 'queue', '0000000000000064.fsm');
/** Each RawScanAt takes this long: a CHECKSUMS build here takes seconds (see the last test). */
const SCAN_MS = 250;
/** A signalled stat must end within this; the build it asked for takes longer (checked below). */
const PROMPT_MS = 1000;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

async function slowCluster(scanMs = SCAN_MS, fsm = FSM): Promise<DevCluster> {
  const { store: source, lastCommitTS } = await LayeredStore.openSnapshot(fsm);
  cleanup.push(() => source.close());
  const dc = await startDevCluster({ source, initialTs: lastCommitTS, log: captureLog().log, methodLatencyMs: { RawScanAt: scanMs } });
  cleanup.push(() => dc.close());
  return dc;
}

async function liveMount(dc: DevCluster, args: string[] = []): Promise<Mounted> {
  const m = await mount(['--cluster', dc.address, '--progress-interval', '0', ...args]);
  cleanup.push(async () => {
    if (m.proc.exitCode === null) {
      if (isMounted(m.mnt)) await sh(`fusermount -u '${m.mnt}'`);
      await m.exited;
    }
  });
  return m;
}

/** Wait until the dev cluster has had no RawScanAt for `quietMs` (a render still running keeps scanning). */
async function untilQuiet(dc: DevCluster, quietMs: number): Promise<void> {
  await waitFor(
    async () => {
      const before = dc.calls.get('RawScanAt') ?? 0;
      await new Promise((res) => setTimeout(res, quietMs));
      return (dc.calls.get('RawScanAt') ?? 0) === before;
    },
    30_000,
    'the scans to stop',
  );
}

const logMsgs = (m: Mounted): Record<string, unknown>[] =>
  m
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => String(l.msg).includes('CHECKSUMS'));

/** Run `cmd args`, send it `sig` after `afterMs`; resolves with how it ended and when. */
function runAndSignal(cmd: string, args: string[], sig: NodeJS.Signals, afterMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; signalledAt: number; endedAt: number }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    let signalledAt = 0;
    const t = setTimeout(() => {
      signalledAt = Date.now();
      p.kill(sig);
    }, afterMs);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out, signalledAt, endedAt: Date.now() });
    });
  });
}

describe('interrupted requests (native backend)', () => {
  for (const sig of ['SIGINT', 'SIGKILL'] as const) {
    it(`${sig} ends a stat of CHECKSUMS at once; the build nobody waits for stops, and a later one completes`, async () => {
      const dc = await slowCluster();
      const m = await liveMount(dc);
      const path = join(m.mnt, 'CHECKSUMS');
      const r = await runAndSignal('stat', ['-c', '%s', path], sig, 300);
      expect(r.signal).toBe(sig); // killed by it, not answered first
      expect(r.signalledAt).toBeGreaterThan(0);
      // Without the interrupt it waits for the whole build (the last test: over 2 s).
      expect(r.endedAt - r.signalledAt).toBeLessThan(PROMPT_MS);
      await waitFor(() => logMsgs(m).some((l) => l.msg === 'CHECKSUMS build stopped'), 10_000, 'the build to stop');
      const stopped = logMsgs(m).find((l) => l.msg === 'CHECKSUMS build stopped')!;
      expect(stopped.reason).toBe('every request waiting for it was interrupted');
      // The listing in flight when it stopped ends (it is kept); the walk goes no further: once
      // the source is quiet, the build has not completed (a build left running would have).
      await untilQuiet(dc, 3 * SCAN_MS);
      expect(logMsgs(m).some((l) => l.msg === 'CHECKSUMS built')).toBe(false);
      expect(Number(stopped.files)).toBeLessThan(ENTRIES.length + 1);
      // The mount is still whole: CHECKSUMS builds on request and verifies every file.
      const check = await sh(`cd '${m.mnt}' && sha256sum -c --quiet CHECKSUMS && wc -l < CHECKSUMS`);
      expect(check.code).toBe(0);
      expect(Number(check.stdout.trim())).toBe(ENTRIES.length + 1); // + MANIFEST.json
      expect(logMsgs(m).filter((l) => l.msg === 'CHECKSUMS built')).toHaveLength(1);
      expect(await m.unmount()).toBe(0);
    });
  }

  for (const [how, cmd] of [
    ['a stat of', (p: string) => ['stat', ['-c', '%s', join(p, 'messages.jsonl')]]],
    ['an `ls -l` of the directory of', (p: string) => ['ls', ['-l', p]]],
  ] as const) {
    it(`SIGINT on ${how} an SQS messages.jsonl being rendered stops the render; the file renders whole on the next request`, async () => {
      mkdirSync(join(tmp, 'queue'), { recursive: true });
      writeFsm(QUEUE_FSM, QUEUE, 1000n);
      const want = (await renderEntries(QUEUE)).files.get('sqs/q/messages.jsonl')!;
      const scanMs = 150;
      const dc = await slowCluster(scanMs, QUEUE_FSM);
      const m = await liveMount(dc, ['--page-size', '4', '--log-level', 'debug']);
      const sorted = () => m.stdout().split('\n').filter((l) => l.includes('"msg":"sqs: messages sorted"')).length;
      const [bin, args] = cmd(join(m.mnt, 'sqs/q'));
      // Signalled once the render is well under way (the lookups before it take a few round trips).
      const r = await runAndSignal(bin, [...args], 'SIGINT', 10 * scanMs);
      expect(r.signal).toBe('SIGINT');
      expect(r.endedAt - r.signalledAt).toBeLessThan(PROMPT_MS);
      const stopped = () => m.stdout().split('\n').filter((l) => l.includes('"msg":"render stopped"')).map((l) => JSON.parse(l) as Record<string, unknown>);
      await waitFor(() => stopped().length > 0, 10_000, 'the render to stop');
      expect(stopped()[0]).toMatchObject({ path: '/sqs/q/messages.jsonl', reason: 'every request waiting for it was interrupted' });
      // It stopped: once the source is quiet, the render has not got as far as its sort (a
      // render left running would have, and logged it), and the next request sorts once.
      await untilQuiet(dc, 3 * scanMs);
      expect(sorted()).toBe(0);
      const got = await sh(`cat '${join(m.mnt, 'sqs/q/messages.jsonl')}' | sha256sum`);
      expect(got.stdout.split(' ')[0]).toBe(createHash('sha256').update(want).digest('hex'));
      expect(sorted()).toBe(1);
      expect(await m.unmount()).toBe(0);
    });
  }

  it('SIGINT on an `ls` of a DynamoDB items/ directory being listed stops the listing; the next `ls` lists it whole', async () => {
    // 100 pk directories of 2 items: listing items/ pages through 200 keys, 50 pages at --page-size 4 (7.5 s at 150 ms).
    const items = Array.from({ length: 200 }, (_, i) => ({ pk: { S: `p${String(i >> 1).padStart(3, '0')}` }, sk: { N: String(i) } }));
    const fsm = join(tmp, 'ddb', '0000000000000064.fsm');
    mkdirSync(join(tmp, 'ddb'), { recursive: true });
    writeFsm(fsm, ddbTableWithItems({ name: 't', hashKey: 'pk', hashType: 'S', rangeKey: 'sk', rangeType: 'N' }, items), 1000n);
    const scanMs = 150;
    const dc = await slowCluster(scanMs, fsm);
    const m = await liveMount(dc, ['--page-size', '4']);
    const dir = join(m.mnt, 'dynamodb/t/items');
    const stopped = () => m.stdout().split('\n').filter((l) => l.includes('"msg":"listing stopped"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    // Signalled once the listing is well under way (the lookups before it take a few round trips).
    const r = await runAndSignal('ls', [dir], 'SIGINT', 10 * scanMs);
    expect(r.signal).toBe('SIGINT');
    expect(r.endedAt - r.signalledAt).toBeLessThan(PROMPT_MS);
    await waitFor(() => stopped().length > 0, 10_000, 'the listing to stop');
    expect(stopped()[0]).toMatchObject({ path: '/dynamodb/t/items', reason: 'every request waiting for it was interrupted' });
    // It stopped: the source is quiet within a page or two (the rest of the listing is over 30 pages).
    const atStop = dc.calls.get('RawScanAt') ?? 0;
    await untilQuiet(dc, 3 * scanMs);
    expect((dc.calls.get('RawScanAt') ?? 0) - atStop).toBeLessThan(3);
    expect(atStop).toBeLessThan(40);
    const names = (await sh(`ls '${dir}'`)).stdout.trim().split('\n');
    expect(names).toHaveLength(100);
    expect(names[0]).toBe('p000');
    expect((await sh(`cat '${dir}/p099/199.json'`)).stdout).toContain('"N": "199"');
    expect(await m.unmount()).toBe(0);
  });

  it('SIGTERM ends an `ls -l` waiting for a slow listing; the listing still answers afterwards', async () => {
    const dc = await slowCluster(2 * PROMPT_MS); // the listing needs more than one scan
    const m = await liveMount(dc);
    const dir = join(m.mnt, 'redis/db_0/strings');
    const r = await runAndSignal('ls', ['-l', dir], 'SIGTERM', 300);
    expect(r.signal).toBe('SIGTERM');
    expect(r.endedAt - r.signalledAt).toBeLessThan(PROMPT_MS);
    const names = (await sh(`ls '${dir}'`)).stdout.trim().split('\n');
    expect(names).toHaveLength(ENTRIES.length);
    expect(names[0]).toBe('k000.bin');
    expect(await m.unmount()).toBe(0);
  });

  it('a signal the caller handles (not INT/TERM/HUP/QUIT/KILL) does not fail its stat: the build completes and the size is right', async () => {
    const dc = await slowCluster();
    const m = await liveMount(dc);
    const path = join(m.mnt, 'CHECKSUMS');
    const script = join(tmp, 'usr1.mjs');
    writeFileSync(script, `import { statSync } from 'node:fs';\nprocess.on('SIGUSR1', () => {});\ntry { console.log('size', statSync(process.argv[2]).size); } catch (e) { console.log('error', e.code); }\n`);
    const t0 = Date.now();
    const r = await runAndSignal(process.execPath, [script, path], 'SIGUSR1', 300);
    expect(r.code).toBe(0);
    expect(r.endedAt - t0).toBeGreaterThan(2 * PROMPT_MS); // the whole build, waited for
    const size = Number((await sh(`stat -c %s '${path}'`)).stdout.trim());
    expect(size).toBeGreaterThan(0);
    expect(r.out.trim()).toBe(`size ${size}`);
    // The build ran once, to its end.
    expect(logMsgs(m).map((l) => l.msg)).toEqual(['building CHECKSUMS: every file not read whole yet is read and hashed', 'CHECKSUMS built']);
    expect((await sh(`cd '${m.mnt}' && sha256sum -c --quiet CHECKSUMS`)).code).toBe(0);
    expect(await m.unmount()).toBe(0);
  });
});
