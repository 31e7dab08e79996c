import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFsm, type FsmEntry } from '../src/fixture/fsm.js';
import { FsmStreamWriter } from '../src/fixture/fsm-stream.js';
import { tempDir } from './helpers/mount.js';

describe('FsmStreamWriter', () => {
  it('writes the same bytes as the in-memory writer, across many spilled runs', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff), (seed >>> 8) % n);
    const entries: FsmEntry[] = [];
    const seen = new Set<string>();
    while (entries.length < 3000) {
      const key = Buffer.from(Array.from({ length: 1 + rnd(12) }, () => rnd(4) * 60));
      const ts = BigInt(1 + rnd(5));
      const id = key.toString('hex') + ':' + ts;
      if (seen.has(id)) continue;
      seen.add(id);
      entries.push({ key, value: Buffer.alloc(rnd(3000), rnd(256)), ts, tombstone: rnd(10) === 0 });
    }
    const w = new FsmStreamWriter(64 * 1024); // dozens of runs
    w.addAll(entries);
    const path = join(tempDir('ekv-fsm-stream-'), 'x.fsm');
    const size = w.finish(path, 77n);
    const want = encodeFsm(entries, 77n);
    expect(size).toBe(want.length);
    expect(readFileSync(path).equals(want)).toBe(true);
  });

  it('refuses duplicate versions', () => {
    const w = new FsmStreamWriter(1024);
    w.add({ key: 'a', value: '1', ts: 5n });
    w.add({ key: 'a', value: '2', ts: 5n });
    expect(() => w.finish(join(tempDir('ekv-fsm-stream-'), 'y.fsm'), 5n)).toThrow(/duplicate/);
  });
});
