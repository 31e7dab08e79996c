import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LayeredStore } from '../src/devcluster/store.js';
import { writeFsm, type FsmEntry } from '../src/fixture/fsm.js';
import { MemorySource } from '../src/source/memory.js';
import type { KV } from '../src/source/types.js';

const dir = mkdtempSync(join(tmpdir(), 'ekv-devstore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key = (i: number): string => `k/${String(i).padStart(4, '0')}`;
const show = (kvs: KV[]): string[] => kvs.map((kv) => `${kv.key.toString('latin1')}=${kv.value.toString('latin1')}`);

describe('LayeredStore (the dev cluster serving an .fsm with writes above it)', () => {
  it('answers every scan and get exactly as the same data loaded into memory, before and after writes, at every ts', async () => {
    // Base: versions at ts 100 and 200, tombstones at 300, expiries; the newest commit (400) is past the header's 350.
    const entries: FsmEntry[] = [];
    for (let i = 0; i < 600; i += 2) entries.push({ key: key(i), value: `v${i}@100`, ts: 100n });
    for (let i = 0; i < 600; i += 6) entries.push({ key: key(i), value: `v${i}@200`, ts: 200n });
    for (let i = 0; i < 600; i += 10) entries.push({ key: key(i), value: '', ts: 300n, tombstone: true });
    for (let i = 1; i < 600; i += 50) entries.push({ key: key(i), value: `e${i}`, ts: 150n, expireAt: 250n });
    entries.push({ key: key(599), value: 'last', ts: 400n });
    const fsm = join(dir, 'base.fsm');
    writeFsm(fsm, entries, 350n);
    const { store, lastCommitTS } = await LayeredStore.openSnapshot(fsm);
    expect(lastCommitTS).toBe(400n);
    const model = new MemorySource('model');
    for (const e of entries) model.put(Buffer.from(e.key), Buffer.from(e.value), e.ts!, { tombstone: e.tombstone, expireAt: e.expireAt });
    expect(store.size).toBe(entries.length);

    let seed = 11;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    const check = async (label: string, tss = [50n, 120n, 260n, 350n, 450n, 550n, 650n]): Promise<void> => {
      for (const ts of tss) {
        for (let t = 0; t < 40; t++) {
          const s = Buffer.from(key(rnd(650)));
          const e = rnd(3) === 0 ? null : Buffer.from(key(rnd(650)));
          const opts = { limit: 1 + rnd(rnd(2) ? 8 : 300), keysOnly: rnd(2) === 0 };
          expect(show(await store.scanPage(s, e, ts, opts)), `${label}: scan ${s.toString()}..${e?.toString() ?? '∞'} at ${ts} ${JSON.stringify(opts)}`).toEqual(show(await model.scanPage(s, e, ts, opts)));
        }
        for (let i = 0; i < 650; i += 7) {
          const k = Buffer.from(key(i));
          expect((await store.get(k, ts))?.toString() ?? null, `${label}: get ${i} at ${ts}`).toBe((await model.get(k, ts))?.toString() ?? null);
        }
      }
    };
    await check('base only');
    // Writes after the base: new keys, overwrites, deletes of base keys, and a key deleted then written again.
    const write = (i: number, ts: bigint, value: string | null): void => {
      for (const s of [store, model]) s.put(Buffer.from(key(i)), Buffer.from(value ?? ''), ts, { tombstone: value === null });
    };
    for (let i = 1; i < 650; i += 9) write(i, 500n, `w${i}@500`);
    for (let i = 0; i < 600; i += 4) write(i, 500n, null);
    for (let i = 0; i < 600; i += 12) write(i, 600n, `back${i}@600`);
    await check('with writes');
    store.compact(550n);
    model.compact(550n);
    // Reads below the watermark are refused by the server; at or above it nothing changed.
    await check('compacted', [550n, 600n, 650n]);
    await store.close();
  });
});
