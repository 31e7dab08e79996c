import { describe, expect, it } from 'vitest';
import { ContentStore } from '../src/tree/content.js';
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
