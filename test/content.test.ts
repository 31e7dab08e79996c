import { describe, expect, it } from 'vitest';
import { CacheArena, ContentStore } from '../src/tree/content.js';
import { tempDir } from './helpers/mount.js';

describe('ContentStore', () => {
  it('keeps rendered files within the byte bound; evicted files render again with the same bytes', async () => {
    const cs = new ContentStore({ cacheBytes: 10_000 });
    let renders = 0;
    const files = Array.from({ length: 10 }, (_, i) =>
      cs.rendered(`/f${i}`, async () => {
        renders++;
        return Buffer.alloc(3000, 0x30 + i);
      }),
    );
    for (const f of files) expect((await f.read(0, 5000)).equals(Buffer.alloc(3000, 0x30 + files.indexOf(f)))).toBe(true);
    expect(cs.cachedBytes).toBeLessThanOrEqual(10_000);
    expect(renders).toBe(10);
    expect((await files[0]!.read(10, 5)).toString()).toBe('00000'); // evicted: rendered again
    expect(renders).toBe(11);
    await cs.close();
  });

  it('streamed files: small ones live in the bounded LRU and are produced again after eviction; large ones spill to disk once', async () => {
    const cs = new ContentStore({ cacheBytes: 2000, spillThreshold: 64 * 1024, spillDir: tempDir('ekv-spill-') });
    let produced = 0;
    const small = (i: number) =>
      cs.streamed(`/s${i}`, async (write) => {
        produced++;
        write(Buffer.from(`line ${i}\n`.repeat(100)));
      });
    const smalls = Array.from({ length: 5 }, (_, i) => small(i));
    for (const [i, f] of smalls.entries()) expect((await f.read(0, 1 << 20)).toString()).toBe(`line ${i}\n`.repeat(100));
    expect(cs.cachedBytes).toBeLessThanOrEqual(2000);
    const before = produced;
    expect((await smalls[0]!.read(0, 7)).toString()).toBe('line 0\n');
    expect(produced).toBe(before + 1);
    expect(await smalls[0]!.size()).toBe(700);

    let bigRuns = 0;
    const big = cs.streamed('/big', async (write, drain) => {
      bigRuns++;
      for (let i = 0; i < 1000; i++) {
        write(Buffer.from(`${String(i).padStart(6, '0')} ${'x'.repeat(193)}\n`));
        if (i % 100 === 0) await drain();
      }
    });
    expect(await big.size()).toBe(201_000);
    expect((await big.read(200_799, 400)).toString()).toBe(`000999 ${'x'.repeat(193)}\n`);
    expect((await big.read(0, 7)).toString()).toBe('000000 ');
    expect(bigRuns).toBe(1);
    expect(cs.stats.spilledFiles).toBe(1);
    await cs.close();
  });
});

describe('CacheArena', () => {
  it('copies small entries back to back into shared slabs that pin nothing else; large ones own exactly their bytes', () => {
    const arena = new CacheArena();
    const page = Buffer.alloc(1 << 20);
    for (let i = 0; i < page.length; i++) page[i] = (i * 7) & 0xff;
    const small = Array.from({ length: 1000 }, (_, i) => arena.own(page.subarray(i * 300, i * 300 + 200)));
    small.forEach((b, i) => expect(b.equals(page.subarray(i * 300, i * 300 + 200))).toBe(true));
    const slabs = new Set(small.map((b) => b.buffer));
    // 1000 x 200 B (8-aligned) in 64 KiB slabs: 4 slabs, none of them the 1 MiB page or Node's 8 KiB pool.
    expect(slabs.size).toBe(4);
    for (const ab of slabs) expect(ab.byteLength).toBe(64 * 1024);
    // Copies: rewriting the source changes nothing cached.
    page.fill(0);
    expect(small[999]![0]).toBe((999 * 300 * 7) & 0xff);
    // A large view of a larger buffer is copied to an exact-size allocation; a buffer owning its store is kept.
    const big = Buffer.alloc(1 << 20, 1);
    const view = arena.own(big.subarray(0, 10_000));
    expect(view.buffer.byteLength).toBe(10_000);
    expect(arena.own(big)).toBe(big);
    expect(arena.own(Buffer.alloc(0)).length).toBe(0);
  });

  it('a ContentStore of many small renders holds them in slabs, not one pool slab each', async () => {
    const cs = new ContentStore({ cacheBytes: 64 << 20 });
    const files = Array.from({ length: 2000 }, (_, i) => cs.rendered(`/i${i}`, async () => Buffer.from(`{"pk":"user-${i}","n":${i}}`)));
    for (const f of files) await f.size();
    const held = new Set<ArrayBufferLike>();
    for (const [i, f] of files.entries()) {
      const b = await f.read(0, 1000);
      expect(b.toString()).toBe(`{"pk":"user-${i}","n":${i}}`);
      held.add(b.buffer);
    }
    // About 2000 x 32 B: one slab (was one 8 KiB pool slab per few entries, shared with garbage).
    expect(held.size).toBeLessThanOrEqual(2);
    await cs.close();
  });
});
