import { describe, expect, it } from 'vitest';
import { MemorySource } from '../src/source/memory.js';
import { ReadAheadSource } from '../src/source/readahead.js';
import type { KV, PageSource, ScanPageOptions } from '../src/source/types.js';
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

  it('a burst of parallel gets ahead of the stream (FUSE readdirplus, cross-file read-ahead) rides a few doubling pages', async () => {
    for (const burst of [16, 128, 512]) {
      const m = new MemorySource('burst');
      for (let i = 0; i < 4000; i++) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}`), 10n);
      for (let i = 0; i < 4000; i += 9) m.put(b(`k/${String(i).padStart(5, '0')}`), b(''), 20n, { tombstone: true });
      const c = new CountingSource(new SlowSource(m));
      const ra = new ReadAheadSource(c);
      for (let i = 0; i < 4000; i += burst) {
        const keys = Array.from({ length: Math.min(burst, 4000 - i) }, (_, j) => b(`k/${String(i + j).padStart(5, '0')}`));
        const got = await Promise.all(keys.map((k) => ra.get(k, 25n)));
        for (let j = 0; j < keys.length; j++) expect(got[j]?.toString() ?? null).toBe((i + j) % 9 === 0 ? null : `v${i + j}`);
      }
      // Without waiting on pages in flight this took ~2 calls per 3 gets at a burst of 512.
      expect(c.gets + c.pages, `burst ${burst}`).toBeLessThan(40);
    }
  });

  it('a sequential reader has the next page fetched before it gets there', async () => {
    const m = new MemorySource('seq');
    for (let i = 0; i < 3000; i++) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}`), 10n);
    const ra = new ReadAheadSource(new SlowSource(m));
    for (let i = 0; i < 3000; i++) expect((await ra.get(b(`k/${String(i).padStart(5, '0')}`), 10n))?.toString()).toBe(`v${i}`);
    expect(ra.stats.prefetches).toBeGreaterThan(5);
    expect(ra.stats.pages).toBeLessThan(25);
  });

  it('a failed page fails only the gets that needed it; the next get asks again', async () => {
    const m = new MemorySource('fail');
    for (let i = 0; i < 100; i++) m.put(b(`k/${String(i).padStart(3, '0')}`), b(`v${i}`), 10n);
    const flaky = new SlowSource(m);
    const ra = new ReadAheadSource(flaky);
    for (let i = 0; i < 10; i++) await ra.get(b(`k/${String(i).padStart(3, '0')}`), 10n);
    flaky.failNext = true;
    const burst = await Promise.allSettled(Array.from({ length: 20 }, (_, j) => ra.get(b(`k/${String(50 + j).padStart(3, '0')}`), 10n)));
    expect(burst.some((r) => r.status === 'rejected')).toBe(true);
    for (const [j, r] of burst.entries()) if (r.status === 'fulfilled') expect(r.value?.toString()).toBe(`v${50 + j}`);
    for (let i = 50; i < 100; i++) expect((await ra.get(b(`k/${String(i).padStart(3, '0')}`), 10n))?.toString()).toBe(`v${i}`);
  });
});

/** A source that answers after a timer (so parallel gets overlap pages in flight), optionally failing one call. */
class SlowSource implements PageSource {
  readonly label = 'slow';
  failNext = false;
  constructor(private readonly inner: PageSource) {}
  private async delay(): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('injected failure');
    }
  }
  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    await this.delay();
    return this.inner.scanPage(start, end, ts, opts);
  }
  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    await this.delay();
    return this.inner.get(key, ts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
