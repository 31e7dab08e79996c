import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultDecodeOptions, type Adapter } from '../src/adapters/types.js';
import { MemorySource } from '../src/source/memory.js';
import { SnapshotView } from '../src/source/range.js';
import { DIGEST_PAGE_BYTES, DigestStore } from '../src/tree/digests.js';
import { StaticDir, type FileNode } from '../src/tree/node.js';
import { Tree } from '../src/tree/tree.js';
import { tempDir } from './helpers/mount.js';

const digest = (i: number): Buffer => createHash('sha256').update(`file ${i}`).digest();
const PER_PAGE = DIGEST_PAGE_BYTES / 32;

/** Paths of this process's open files that are in `dir` (deleted ones included). */
function openFilesUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(join('/proc/self/fd', fd));
      } catch {
        return '';
      }
    })
    .filter((p) => p.startsWith(dir));
}

describe('DigestStore', () => {
  it('keeps digests past its page window on disk and reads them back; unknown ids stay unknown; the file is already unlinked', () => {
    const dir = tempDir('ekv-digests-');
    const d = new DigestStore({ dir, maxPages: 2 });
    const ids = [1, 2, PER_PAGE - 1, PER_PAGE, 3 * PER_PAGE + 7, 9 * PER_PAGE + 1, 5 * PER_PAGE];
    for (const id of ids) d.setId(id, digest(id));
    // Seven ids on five pages (0, 1, 3, 9, 5) with room for two: three pages went to the file.
    expect(d.stats.pageWrites).toBe(3);
    expect(readdirSync(dir)).toEqual([]);
    expect(openFilesUnder(dir).length).toBe(1);
    expect(openFilesUnder(dir)[0]).toMatch(/\(deleted\)$/);
    for (const id of ids) {
      expect(d.hasId(id)).toBe(true);
      expect(d.hexId(id)).toBe(digest(id).toString('hex'));
    }
    expect(d.stats.pageReads).toBeGreaterThan(0);
    for (const id of [0, 3, PER_PAGE + 1, 4 * PER_PAGE, 100 * PER_PAGE]) {
      expect(d.hasId(id)).toBe(false);
      expect(d.hexId(id)).toBeNull();
    }
    d.close();
    expect(openFilesUnder(dir)).toEqual([]);
  });

  it('a small mount never creates the file: pages leave memory only past the window', () => {
    const dir = tempDir('ekv-digests-');
    const d = new DigestStore({ dir, maxPages: 4 });
    for (let id = 1; id < 4 * PER_PAGE; id++) d.setId(id, digest(id));
    expect(d.stats.pageWrites).toBe(0);
    expect(openFilesUnder(dir)).toEqual([]);
    expect(d.hexId(PER_PAGE + 5)).toBe(digest(PER_PAGE + 5).toString('hex'));
    d.close();
  });

  it('when the file cannot be made, digests that leave memory are lost (unknown, never wrong) and the failure is logged once', () => {
    const dir = tempDir('ekv-digests-');
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => lines.push(l) });
    // Tests run as root, which directory permissions do not stop: a parent that does not exist does.
    const d = new DigestStore({ dir: join(dir, 'missing', 'deeper'), maxPages: 1, log });
    for (const id of [1, PER_PAGE, 2 * PER_PAGE, 3 * PER_PAGE]) d.setId(id, digest(id));
    expect(d.stats.ioErrors).toBe(3);
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0]!).msg).toMatch(/digest file: I\/O failed/);
    for (const id of [1, PER_PAGE, 2 * PER_PAGE]) expect(d.hexId(id)).toBeNull();
    expect(d.hexId(3 * PER_PAGE)).toBe(digest(3 * PER_PAGE).toString('hex'));
    d.close();
  });
});

describe('Tree: CHECKSUMS with most digests on disk', () => {
  it('a full read then CHECKSUMS: every line right, no file read again, though the digest window holds one page', async () => {
    const n = 3 * PER_PAGE + 100;
    const bodies = Array.from({ length: n }, (_, i) => Buffer.from(`{"i":${i}}\n`));
    let reads = 0;
    const files = new Map<string, FileNode>(
      bodies.map((b, i) => [
        `f${String(i).padStart(5, '0')}.json`,
        {
          kind: 'file' as const,
          size: async () => b.length,
          read: async (o: number, l: number) => (reads++, b.subarray(o, o + l)),
        },
      ]),
    );
    const adapter: Adapter = { name: 'redis', root: async () => new StaticDir(new Map([['d', new StaticDir(files)]])) };
    const spill = tempDir('ekv-digests-');
    const tree = new Tree({
      view: new SnapshotView(new MemorySource(), 1n),
      options: defaultDecodeOptions(),
      adapters: [adapter],
      log: pino({ level: 'silent' }),
      cacheBytes: 1 << 20,
      spillDir: spill,
      digestPages: 1,
      manifest: () => Buffer.from('{}\n'),
    });
    try {
      for (const name of await tree.readdir('/redis/d')) await tree.read(`/redis/d/${name}`, 0, 1 << 10);
      const readsBefore = reads;
      expect(readsBefore).toBe(n);
      const size = (await tree.getattr('/CHECKSUMS')).size;
      const lines = (await tree.read('/CHECKSUMS', 0, size)).toString().trimEnd().split('\n');
      expect(reads).toBe(readsBefore);
      const want = bodies.map((b, i) => `${createHash('sha256').update(b).digest('hex')}  redis/d/f${String(i).padStart(5, '0')}.json`);
      expect(lines.filter((l) => l.includes('redis/'))).toEqual(want);
      expect(readdirSync(spill).filter((e) => e.startsWith('ekv-mount-digests-'))).toEqual([]);
    } finally {
      await tree.close();
    }
  });
});
