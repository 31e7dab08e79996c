import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContentStore, SPILL_QUEUE_BYTES } from '../src/tree/content.js';
import { ownedCopy } from '../src/bytes.js';
import { PathTable } from '../src/tree/paths.js';
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

  it('a producer faster than the disk that awaits drain() holds at most SPILL_QUEUE_BYTES queued, and its bytes are whole', async () => {
    const cs = new ContentStore({ cacheBytes: 1 << 20, spillThreshold: 64 * 1024, spillDir: tempDir('ekv-spill-') });
    const chunk = (i: number): Buffer => Buffer.alloc(64 * 1024, i & 0xff);
    const n = 512; // 32 MiB, written without waiting for any I/O but drain's
    let waits = 0;
    const f = cs.streamed('/fast', async (write, drain) => {
      for (let i = 0; i < n; i++) {
        write(chunk(i));
        const d = drain();
        let done = false;
        void d.then(() => (done = true));
        await Promise.resolve();
        if (!done) waits++;
        await d;
      }
    });
    expect(await f.size()).toBe(n * 64 * 1024);
    expect(cs.stats.spillQueuedMax).toBeGreaterThan(SPILL_QUEUE_BYTES);
    expect(cs.stats.spillQueuedMax).toBeLessThanOrEqual(SPILL_QUEUE_BYTES + 64 * 1024);
    expect(waits).toBeGreaterThan(0);
    const want = createHash('sha256');
    for (let i = 0; i < n; i++) want.update(chunk(i));
    const got = createHash('sha256');
    for (let off = 0; off < n * 64 * 1024; off += 1 << 20) got.update(await f.read(off, 1 << 20));
    expect(got.digest('hex')).toBe(want.digest('hex'));
    await cs.close();
  });
});

describe('a spill directory that fills up', () => {
  it('fails that file (its reads error, the daemon lives): no unhandled rejection, the producer stops, the partial spill file is removed', async () => {
    // A 512 KiB tmpfs as --spill-dir (root, as the FUSE tests are). Vitest fails the run on an
    // unhandled rejection: before, each write queued after the first ENOSPC was one, and the
    // daemon's handler for them unmounts.
    const dir = tempDir('ekv-spill-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir]);
    try {
      const cs = new ContentStore({ cacheBytes: 1 << 20, spillThreshold: 64 * 1024, spillDir: dir });
      let writes = 0;
      const f = cs.streamed('/big', async (write, drain) => {
        for (let i = 0; i < 64; i++) {
          write(Buffer.alloc(64 * 1024, i));
          writes++;
          // A producer waiting on its source, not on drain: its writes fail meanwhile.
          await new Promise((r) => setTimeout(r, 5));
          if (i % 32 === 31) await drain();
        }
      });
      await expect(f.size()).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(writes).toBeLessThan(32);
      const [root] = readdirSync(dir);
      expect(readdirSync(join(dir, root!))).toEqual([]);
      // The next reader starts a new run (and fails the same way while the disk is full).
      await expect(f.read(0, 10)).rejects.toMatchObject({ code: 'ENOSPC' });
      await cs.close();
    } finally {
      execFileSync('umount', [dir]);
    }
  });
});

describe('small files in slabs', () => {
  it('copies small files back to back into shared 64 KiB slabs that pin nothing else; large ones own exactly their bytes', () => {
    const cs = new ContentStore({ cacheBytes: 64 << 20 });
    const page = Buffer.alloc(1 << 20);
    for (let i = 0; i < page.length; i++) page[i] = (i * 7) & 0xff;
    for (let i = 0; i < 1000; i++) cs.keepId(i + 1, page.subarray(i * 300, i * 300 + 200));
    const small = Array.from({ length: 1000 }, (_, i) => cs.peekId(i + 1)!);
    small.forEach((b, i) => expect(b.equals(page.subarray(i * 300, i * 300 + 200))).toBe(true));
    const slabs = new Set(small.map((b) => b.buffer));
    // 1000 x 200 B (8-aligned) in 64 KiB slabs: 4 slabs, none of them the 1 MiB page or Node's 8 KiB pool.
    expect(slabs.size).toBe(4);
    for (const ab of slabs) expect(ab.byteLength).toBe(64 * 1024);
    expect(cs.sizeOfId(1000)).toBe(200);
    expect(cs.sizeOfId(1001)).toBe(-1);
    // Copies: rewriting the source changes nothing cached.
    page.fill(0);
    expect(cs.peekId(1000)![0]).toBe((999 * 300 * 7) & 0xff);
    // A large view of a larger buffer is copied to an exact-size allocation; a buffer owning its store is kept.
    const big = Buffer.alloc(1 << 20, 1);
    expect(ownedCopy(big.subarray(0, 10_000)).buffer.byteLength).toBe(10_000);
    expect(ownedCopy(big)).toBe(big);
    cs.keepId(5000, big.subarray(0, 10_000));
    expect(cs.peekId(5000)!.buffer.byteLength).toBe(10_000);
    cs.keepId(5001, Buffer.alloc(0));
    expect(cs.sizeOfId(5001)).toBe(0);
    expect(cs.peekId(5001)!.length).toBe(0);
  });

  it('slabs age out of the byte bound as LRU entries: a file read recently keeps its slab, the others of an evicted slab miss', () => {
    // Room for 4 slabs of 64 KiB; each file of 1 KiB, 64 to a slab.
    const cs = new ContentStore({ cacheBytes: 4 * 64 * 1024 });
    const body = (i: number): Buffer => Buffer.alloc(1024, i & 0xff);
    for (let i = 1; i <= 64 * 3; i++) cs.keepId(i, body(i));
    expect(cs.peekId(1)!.equals(body(1))).toBe(true); // slab 1 is now the most recently used
    for (let i = 64 * 3 + 1; i <= 64 * 6; i++) cs.keepId(i, body(i)); // three more slabs: slabs 2 and 3 go
    expect(cs.cachedBytes).toBeLessThanOrEqual(4 * 64 * 1024);
    expect(cs.peekId(2)!.equals(body(2))).toBe(true);
    expect(cs.peekId(65)).toBeUndefined();
    expect(cs.sizeOfId(64 * 2 + 5)).toBe(-1);
    expect(cs.peekId(64 * 6)!.equals(body(64 * 6))).toBe(true);
    // A file kept again after its slab went is found in its new place.
    cs.keepId(65, body(65));
    expect(cs.peekId(65)!.equals(body(65))).toBe(true);
  });

  it('release: an entry all of whose files the kernel holds is served; the most recently served stay up to servedBytes, the others go', async () => {
    // Slabs of 64 KiB; files of 1 KiB, 64 to a slab; room for two served slabs.
    const cs = new ContentStore({ cacheBytes: 16 * 64 * 1024, servedBytes: 2 * 64 * 1024 });
    const body = (i: number): Buffer => Buffer.alloc(1024, i & 0xff);
    const slab = 64 * 1024;
    for (let i = 1; i <= 64 * 4 + 1; i++) cs.keepId(i, body(i)); // slabs 1-4 full, slab 5 being filled
    expect(cs.cachedBytes).toBe(5 * slab);
    // Released files of a slab with files left in it stay found; twice is once.
    cs.release(1);
    cs.release(1);
    for (let i = 2; i < 64; i++) cs.release(i);
    expect(cs.peekId(1)!.equals(body(1))).toBe(true);
    expect(cs.sizeOfId(1)).toBe(1024);
    cs.release(64); // slab 1 is served (nothing the kernel lacks): kept while it fits
    for (let i = 65; i <= 128; i++) cs.release(i); // slab 2 too
    expect(cs.cachedBytes).toBe(5 * slab);
    expect(cs.peekId(1)!.equals(body(1))).toBe(true);
    for (let i = 129; i <= 192; i++) cs.release(i); // slab 3: past two served slabs, the oldest served goes
    expect(cs.cachedBytes).toBe(4 * slab);
    expect(cs.peekId(1)).toBeUndefined();
    expect(cs.sizeOfId(1)).toBe(-1);
    expect(cs.peekId(65)!.equals(body(65))).toBe(true); // served, and read again: still here
    expect(cs.peekId(129)!.equals(body(129))).toBe(true);
    expect(cs.peekId(193)!.equals(body(193))).toBe(true); // slab 4: not released
    // The slab being filled is not served while it is, even with all its files released; once full, it is.
    cs.release(257);
    expect(cs.cachedBytes).toBe(4 * slab);
    for (let i = 258; i <= 64 * 5; i++) {
      cs.keepId(i, body(i));
      cs.release(i);
    }
    cs.keepId(1000, body(1000)); // slab 6 starts: slab 5 is served, slab 2 (the oldest served) goes
    expect(cs.peekId(65)).toBeUndefined();
    expect(cs.peekId(129)!.equals(body(129))).toBe(true);
    expect(cs.peekId(257)!.equals(body(257))).toBe(true);
    expect(cs.cachedBytes).toBe(4 * slab);
    // A released file kept again is found again (and counts in its new slab).
    cs.keepId(1, body(1));
    expect(cs.peekId(1)!.equals(body(1))).toBe(true);
    // A large file (an entry of its own) is served on release; past servedBytes the oldest served go.
    cs.keepId(5000, Buffer.alloc(100_000, 7));
    cs.release(5000);
    expect(cs.peekId(5000)!.length).toBe(100_000);
    cs.keepId(5001, Buffer.alloc(100_000, 8));
    cs.release(5001);
    expect(cs.peekId(5000)).toBeUndefined();
    expect(cs.peekId(129)).toBeUndefined();
    expect(cs.peekId(5001)![0]).toBe(8);
    // Releasing what was never kept changes nothing.
    cs.release(9999);
    expect(cs.peekId(193)!.equals(body(193))).toBe(true);
    await cs.close();
  });

  it('a served file that went renders again, with the same bytes, when it is read again', async () => {
    const paths = new PathTable();
    const cs = new ContentStore({ cacheBytes: 64 << 20, paths, servedBytes: 0 });
    let renders = 0;
    const f = cs.rendered('/a', async () => {
      renders++;
      return Buffer.from('x'.repeat(5000));
    });
    expect((await f.read(0, 10_000)).length).toBe(5000);
    expect((await f.read(0, 10_000)).length).toBe(5000);
    expect(renders).toBe(1);
    cs.release(paths.lookup('/a'));
    expect(cs.cached('/a')).toBe(false);
    expect((await f.read(4990, 100)).toString()).toBe('x'.repeat(10));
    expect(renders).toBe(2);
    await cs.close();
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
