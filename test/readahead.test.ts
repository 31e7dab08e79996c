import { describe, expect, it } from 'vitest';
import { MemorySource } from '../src/source/memory.js';
import { ReadAheadSource } from '../src/source/readahead.js';
import { CountingSource } from './helpers/counting.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function model(): MemorySource {
  const m = new MemorySource('m');
  for (let i = 0; i < 2000; i += 2) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}@10`), 10n);
  for (let i = 0; i < 2000; i += 10) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}@20`), 20n);
  for (let i = 0; i < 2000; i += 14) m.put(b(`k/${String(i).padStart(5, '0')}`), b(''), 30n, { tombstone: true });
  m.put(b('big/1'), Buffer.alloc(1 << 20, 1), 10n);
  m.put(b('big/2'), Buffer.alloc(1 << 20, 2), 10n);
  m.put(b('big/3'), Buffer.alloc(1 << 20, 3), 10n);
  return m;
}

describe('ReadAheadSource', () => {
  it('answers every get exactly as the source does, at every ts, for ascending, random and absent keys', async () => {
    const m = model();
    const ra = new ReadAheadSource(new CountingSource(m), { cacheBytes: 1 << 20 });
    for (const ts of [5n, 15n, 25n, 35n]) {
      const keys = Array.from({ length: 2000 }, (_, i) => b(`k/${String(i).padStart(5, '0')}`));
      for (const k of keys) expect((await ra.get(k, ts))?.toString() ?? null).toBe((await m.get(k, ts))?.toString() ?? null);
      for (let i = 0; i < 300; i++) {
        const k = keys[(i * 7919) % keys.length]!;
        expect((await ra.get(k, ts))?.toString() ?? null).toBe((await m.get(k, ts))?.toString() ?? null);
      }
      for (const k of [b('a'), b('k/'), b('k/99999'), b('zzz')]) expect(await ra.get(k, ts)).toBe(await m.get(k, ts));
    }
  });

  it('turns ascending gets into a few scan pages; random gets stay point reads', async () => {
    const c = new CountingSource(model());
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 2000; i++) await ra.get(b(`k/${String(i).padStart(5, '0')}`), 25n);
    expect(c.gets + c.pages).toBeLessThan(60);
    expect(ra.stats.hits).toBeGreaterThan(1900);
    const c2 = new CountingSource(model());
    const ra2 = new ReadAheadSource(c2);
    for (let i = 0; i < 200; i++) await ra2.get(b(`k/${String((i * 7919 + 13) % 2000).padStart(5, '0')}`), 25n);
    // Random access never turns into big pages: one call per get, at most ~2 keys each.
    expect(c2.pages + c2.gets).toBeLessThanOrEqual(200);
    expect(c2.rows + c2.gets).toBeLessThanOrEqual(400);
  });

  it('interleaved ascending readers each keep their own read-ahead stream', async () => {
    const m = new MemorySource('m4');
    for (const p of ['a', 'b', 'c', 'd']) for (let i = 0; i < 500; i++) m.put(b(`${p}/${String(i).padStart(4, '0')}`), b(`${p}${i}`), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 500; i++) {
      for (const p of ['a', 'b', 'c', 'd']) expect((await ra.get(b(`${p}/${String(i).padStart(4, '0')}`), 10n))?.toString()).toBe(`${p}${i}`);
    }
    expect(c.gets + c.pages).toBeLessThan(100); // 2000 gets
  });

  it('shrinks the window for large values', async () => {
    const c = new CountingSource(model());
    const ra = new ReadAheadSource(c, { targetBytes: 1 << 20 });
    for (const k of ['big/1', 'big/2', 'big/3']) expect((await ra.get(b(k), 10n))!.length).toBe(1 << 20);
    expect(ra.stats.hits).toBeLessThanOrEqual(1); // at most one 2-key page: the window shrank back
  });
});
