/**
 * `ekv-mount <mnt> --demo`: the embedded dev cluster with demo data in all four
 * adapters, mounted through the live (pinned) path; and the same records as a
 * .fsm mounted offline give the same tree.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoEntries } from '../src/demo/data.js';
import { writeFsm } from '../src/fixture/fsm.js';
import { mount, sh, tempDir } from './helpers/mount.js';

describe('--demo', () => {
  it('mounts demo data for all four adapters through a pinned live session; real tools work on it', async () => {
    const m = await mount(['--demo']);
    const scratch = tempDir('ekv-demo-');
    try {
      expect((await sh('ls', m.mnt)).stdout.split('\n').filter(Boolean)).toEqual(['CHECKSUMS', 'MANIFEST.json', 'dynamodb', 'redis', 's3', 'sqs']);
      const manifest = JSON.parse(readFileSync(join(m.mnt, 'MANIFEST.json'), 'utf8')) as { phase: string; adapters: Record<string, Record<string, unknown[]>> };
      expect(manifest.phase).toBe('phase1-live-pinned');
      expect(manifest.adapters.dynamodb!.tables).toEqual(expect.arrayContaining(['users', 'orders']));
      expect(manifest.adapters.sqs!.queues).toEqual(expect.arrayContaining(['payments.fifo']));
      expect((await sh('ls redis/db_0', m.mnt)).stdout.split('\n').filter(Boolean)).toEqual(expect.arrayContaining(['strings', 'hashes', 'lists', 'sets', 'zsets', 'streams', 'hll']));
      // A multipart object reassembled in part and chunk order (one part offloaded to chunkblobs).
      expect(readFileSync(join(m.mnt, 's3/photos/2026/01/video.mp4'), 'utf8')).toBe('part-one-chunk-a|part-one-chunk-b|part-two-offloaded|');
      // jq reads every JSON file and every JSONL line.
      const jq = await sh(`find . -name '*.json' -print0 | xargs -0 -n1 jq -e . > /dev/null && find . -name '*.jsonl' -print0 | xargs -0 -n1 jq -ce . > /dev/null`, m.mnt);
      expect(jq.stderr).toBe('');
      expect(jq.code).toBe(0);
      const fifo = readFileSync(join(m.mnt, 'sqs/payments.fifo/messages.jsonl'), 'utf8').trim().split('\n');
      expect(fifo.length).toBeGreaterThan(1);
      const check = await sh('sha256sum --quiet -c CHECKSUMS', m.mnt);
      expect(check.stdout + check.stderr).toBe('');
      expect(check.code).toBe(0);
      // The same records as an offline .fsm render the same tree (MANIFEST aside).
      const fsm = join(scratch, '0000000000000064.fsm');
      writeFsm(fsm, demoEntries(), 1n << 60n);
      const snap = await mount(['--snapshot', fsm]);
      try {
        const a = join(scratch, 'live');
        const b = join(scratch, 'snap');
        expect((await sh(`cp -r '${m.mnt}' '${a}' && cp -r '${snap.mnt}' '${b}'`)).stderr).toBe('');
        for (const d of [a, b]) {
          rmSync(join(d, 'MANIFEST.json'));
          await sh(`sed -i '/  MANIFEST\\.json$/d' CHECKSUMS`, d);
        }
        const d = await sh(`diff -r '${b}' '${a}'`);
        expect(d.stdout + d.stderr).toBe('');
      } finally {
        expect(await snap.unmount()).toBe(0);
      }
    } finally {
      expect(await m.unmount()).toBe(0);
    }
  });
});
