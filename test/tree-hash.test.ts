import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultDecodeOptions, type Adapter } from '../src/adapters/types.js';
import { MemorySource } from '../src/source/memory.js';
import { SnapshotView } from '../src/source/range.js';
import { BufferFile, StaticDir, type FileNode, type Node } from '../src/tree/node.js';
import { SPILL_QUEUE_BYTES } from '../src/tree/content.js';
import { Tree, type TreeOptions } from '../src/tree/tree.js';
import { DigestQueue, OFFTHREAD_MIN, type OffThreadSha256 } from '../src/tree/hashing.js';
import { loadAddon } from '../src/fuse/addon.js';

/** A tree of one adapter over an empty source. */
function treeOf(adapter: Adapter, more: Partial<TreeOptions> = {}): Tree {
  return new Tree({
    ...more,
    view: new SnapshotView(new MemorySource(), 1n),
    options: defaultDecodeOptions(),
    adapters: [adapter],
    log: pino({ level: 'silent' }),
    cacheBytes: 1 << 20,
    manifest: () => Buffer.from('{}\n'),
  });
}

async function checksumsOf(tree: Tree): Promise<string> {
  const size = (await tree.getattr('/CHECKSUMS')).size;
  return (await tree.read('/CHECKSUMS', 0, size)).toString();
}

/** A 3 MiB file whose reads are counted; CHECKSUMS must not read it again once it was read whole. */
function countedFile(data: Buffer): FileNode & { reads: number } {
  const f = {
    kind: 'file' as const,
    reads: 0,
    size: async () => data.length,
    read: async (off: number, len: number) => {
      f.reads++;
      return data.subarray(off, Math.min(data.length, off + len));
    },
  };
  return f;
}

describe('Tree: CHECKSUMS reuses hashes of files already read', () => {
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  const want = createHash('sha256').update(data).digest('hex');

  for (const [label, order] of [
    ['in order', [0, 1, 2]],
    ['out of order (parallel kernel read-ahead)', [0, 2, 1]],
  ] as const) {
    it(`reads ${label}: the file is not read again for CHECKSUMS, and its line is right`, async () => {
      const file = countedFile(data);
      const adapter: Adapter = { name: 'redis', root: async () => new StaticDir(new Map([['big.bin', file]])) };
      const tree = treeOf(adapter);
      try {
        for (const i of order) expect((await tree.read('/redis/big.bin', i << 20, 1 << 20)).equals(data.subarray(i << 20, (i + 1) << 20))).toBe(true);
        const reads = file.reads;
        const sums = await checksumsOf(tree);
        expect(sums).toContain(`${want}  redis/big.bin\n`);
        expect(file.reads).toBe(reads);
      } finally {
        await tree.close();
      }
    });
  }
});

describe('Tree: CHECKSUMS order', () => {
  it('is bytewise by whole path, though a directory "a" lists before "a-b", "a.b" and "aé" that sort ahead of "a/…"', async () => {
    const file = (s: string): FileNode => {
      const b = Buffer.from(s);
      return { kind: 'file', size: async () => b.length, read: async (o: number, l: number) => b.subarray(o, o + l) };
    };
    // Listing order on purpose not sorted: the walk must sort each directory itself.
    const sub = new StaticDir(new Map<string, FileNode | StaticDir>([['z', file('z')], ['b', file('b')]]));
    const root = new StaticDir(new Map<string, FileNode | StaticDir>([['aé', file('3')], ['a', sub], ['a.b', file('2')], ['a-b', file('1')], ['a0', file('4')], ['\u{1F600}', file('5')], ['\uFF01', file('6')]]));
    const adapter: Adapter = { name: 's3', root: async () => root };
    const tree = treeOf(adapter);
    try {
      const paths = (await checksumsOf(tree)).trimEnd().split('\n').map((l) => l.slice(66));
      // UTF-8 byte order: U+FF01 (EF BC 81) before U+1F600 (F0 9F 98 80), though UTF-16 order is the reverse.
      expect(paths).toEqual(['MANIFEST.json', 's3/a-b', 's3/a.b', 's3/a/b', 's3/a/z', 's3/a0', 's3/aé', 's3/\uFF01', 's3/\u{1F600}']);
    } finally {
      await tree.close();
    }
  });
});

describe('Tree: listings and kinds are kept once made', () => {
  /** A directory whose list() and lookup() calls are counted (each would be a scan on a live mount). */
  function countedDir(children: Map<string, FileNode | StaticDir>): StaticDir & { lists: number; lookups: number } {
    const d = new StaticDir(children) as StaticDir & { lists: number; lookups: number };
    d.lists = 0;
    d.lookups = 0;
    const list = d.list.bind(d);
    const lookup = d.lookup.bind(d);
    d.list = async () => (d.lists++, list());
    d.lookup = async (n: string) => (d.lookups++, lookup(n));
    return d;
  }

  it('a second readdir and the CHECKSUMS walk after a full copy ask the adapter nothing, and hash files read whole in one read', async () => {
    const files = new Map<string, FileNode & { reads: number }>();
    for (const n of ['b.json', 'a.json', 'é.json', 'c.json']) files.set(n, countedFile(Buffer.from(`{"name":"${n}"}\n`)));
    const inner = countedDir(new Map([...files].map(([n, f]) => [n, f] as [string, FileNode])));
    const top = countedDir(new Map([['sub', inner]]));
    const tree = treeOf({ name: 'redis', root: async () => top });
    try {
      expect(await tree.readdir('/redis')).toEqual(['sub']);
      const names = await tree.readdir('/redis/sub');
      expect(names).toEqual(['b.json', 'a.json', 'é.json', 'c.json']);
      for (const n of names) {
        const size = (await tree.getattr(`/redis/sub/${n}`)).size;
        await tree.read(`/redis/sub/${n}`, 0, size);
      }
      const before = { lists: inner.lists + top.lists, lookups: inner.lookups + top.lookups, reads: [...files.values()].map((f) => f.reads) };
      expect(await tree.readdir('/redis/sub')).toEqual(names);
      const sums = await checksumsOf(tree);
      for (const [n, f] of files) {
        const body = (await f.read(0, 1 << 10)).toString();
        f.reads--;
        expect(sums).toContain(`${createHash('sha256').update(body).digest('hex')}  redis/sub/${n}\n`);
      }
      expect({ lists: inner.lists + top.lists, lookups: inner.lookups + top.lookups, reads: [...files.values()].map((f) => f.reads) }).toEqual(before);
      // Bytewise path order: a, b, c, then é (0xc3…).
      expect(sums.trimEnd().split('\n').map((l) => l.slice(66)).filter((p) => p.startsWith('redis/'))).toEqual(['redis/sub/a.json', 'redis/sub/b.json', 'redis/sub/c.json', 'redis/sub/é.json']);
    } finally {
      await tree.close();
    }
  });
});

describe('Tree: CHECKSUMS order and escaping', () => {
  it('sorts by the UTF-8 bytes of whole paths (a directory as its name and "/"), escapes as sha256sum does, and hashes files read before and not', async () => {
    const body = (p: string): Buffer => Buffer.from(`content of ${p}\n`);
    const tree_: [string, string[]][] = [
      ['a', ['x', 'a']],
      ['a.d', ['r']],
      ['a0', []],
      ['a-b', []],
      ['ab', []],
      ['é', []],
      ['\u{1F600}', []],
      ['\uE000', []],
      ['z', ['new\nline', 'back\\slash', 'cr\rx']],
      ['~', []],
    ];
    // Each entry: a file when it has no children listed, else a directory of those files.
    const top = new Map<string, Node>();
    const all: string[] = [];
    for (const [name, kids] of tree_) {
      if (kids.length === 0) {
        const p = `redis/${name}`;
        all.push(p);
        top.set(name, new BufferFile(body(p)));
      } else {
        top.set(name, new StaticDir(new Map(kids.map((k) => [k, new BufferFile(body(`redis/${name}/${k}`))] as [string, Node]))));
        for (const k of kids) all.push(`redis/${name}/${k}`);
      }
    }
    const tree = treeOf({ name: 'redis', root: async () => new StaticDir(top) });
    try {
      // Half the files read first (their digests kept), the others hashed by the build.
      for (const p of all.filter((_, i) => i % 2 === 0)) {
        const size = (await tree.getattr(`/${p}`)).size;
        await tree.read(`/${p}`, 0, size);
      }
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      const want = [...all, 'MANIFEST.json']
        .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
        .map((p) => {
          const hex = sha(p === 'MANIFEST.json' ? Buffer.from('{}\n') : body(p));
          if (!/[\n\r\\]/.test(p)) return `${hex}  ${p}\n`;
          return `\\${hex}  ${p.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}\n`;
        })
        .join('');
      expect(await checksumsOf(tree)).toBe(want);
    } finally {
      await tree.close();
    }
  });
});

describe('Tree: a CHECKSUMS larger than the spill threshold', () => {
  it('is written to its spill file as it is built, never queued whole in memory; its lines are right', async () => {
    // 100k files: a CHECKSUMS of ~9 MB, built with no I/O to wait for but its own writes.
    const n = 100_000;
    const name = (i: number): string => `f${String(i).padStart(6, '0')}.bin`;
    const files = new Map<string, Node>(Array.from({ length: n }, (_, i) => [name(i), new BufferFile(Buffer.from(`v${i}\n`))]));
    const tree = treeOf({ name: 'redis', root: async () => new StaticDir(new Map([['d', new StaticDir(files)]])) }, { spillThreshold: 64 * 1024 });
    try {
      const sums = await checksumsOf(tree);
      expect(tree.content.stats.spilledFiles).toBe(1);
      expect(sums.length).toBeGreaterThan(2 * SPILL_QUEUE_BYTES);
      // Before: the whole file less its first block (~8.6 MB) was queued at once.
      expect(tree.content.stats.spillQueuedMax).toBeLessThanOrEqual(SPILL_QUEUE_BYTES + 128 * 1024);
      const lines = sums.trimEnd().split('\n');
      expect(lines.length).toBe(n + 1);
      const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      expect(lines[0]).toBe(`${sha(Buffer.from('{}\n'))}  MANIFEST.json`);
      for (const i of [0, 1, 4_999, 77_777, n - 1]) expect(lines[i + 1]).toBe(`${sha(Buffer.from(`v${i}\n`))}  redis/d/${name(i)}`);
    } finally {
      await tree.close();
    }
  });
});

describe('Tree: files read whole are hashed off the JS thread', () => {
  const A = loadAddon();
  it.each([
    ['WebCrypto (big files)', {}, [0, 4096, 8192, 12288, 16384, 20480]],
    ["the addon's hasher (big files; small ones hashed at once)", { offThreadSha256: ((data, cb) => A.sha256(data, cb)) as OffThreadSha256 }, [-OFFTHREAD_MIN + 3, 0, 4096, 1 - OFFTHREAD_MIN, 90_000, 200_000]],
  ] as const)('CHECKSUMS asked for while their digests are being taken (%s) waits for them: right lines, no file read again', async (_, more, extra) => {
    const files = new Map<string, FileNode & { reads: number }>();
    const want = new Map<string, string>();
    for (let k = 0; k < 6; k++) {
      const data = Buffer.alloc(OFFTHREAD_MIN + extra[k]!);
      for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(((i + k) * 2654435761) >>> 0, i);
      files.set(`f${k}.bin`, countedFile(data));
      want.set(`f${k}.bin`, createHash('sha256').update(data).digest('hex'));
    }
    const adapter: Adapter = { name: 's3', root: async () => new StaticDir(new Map(files)) };
    const tree = treeOf(adapter, { cacheBytes: 8 << 20, ...more });
    try {
      // Each read whole in one read, all before CHECKSUMS, which is asked for at once: its digests
      // are still being taken (no turn of the loop in between).
      const sizes = await Promise.all([...files.keys()].map(async (n) => (await tree.getattr(`/s3/${n}`)).size));
      await Promise.all([...files.keys()].map((n, i) => tree.read(`/s3/${n}`, 0, sizes[i]!)));
      const reads = [...files.values()].map((f) => f.reads);
      const sums = await checksumsOf(tree);
      for (const [n, h] of want) expect(sums).toContain(`${h}  s3/${n}\n`);
      expect([...files.values()].map((f) => f.reads)).toEqual(reads);
    } finally {
      await tree.close();
    }
  });
});

describe('DigestQueue', () => {
  const bytes = (n: number, seed: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(((i + seed) * 2654435761) >>> 0, i);
    return b;
  };
  const sink = () => {
    const got = new Map<number, string>();
    return { got, done: (id: number, d: Buffer) => void got.set(id, d.toString('hex')), failed: (id: number) => void got.set(id, 'failed') };
  };

  it('hashes a file below the threshold at once, a big one in the pool: the same digests', async () => {
    const s = sink();
    const q = new DigestQueue(s);
    const small = bytes(OFFTHREAD_MIN - 1, 1);
    const big = bytes(OFFTHREAD_MIN, 2);
    q.add(1, small);
    expect(s.got.get(1)).toBe(createHash('sha256').update(small).digest('hex'));
    q.add(2, big);
    expect(q.has(2)).toBe(true);
    expect(s.got.has(2)).toBe(false);
    await q.settled(2);
    expect(q.has(2)).toBe(false);
    expect(s.got.get(2)).toBe(createHash('sha256').update(big).digest('hex'));
    expect(q.stats).toEqual({ offThread: 1, here: 1 });
  });

  it('holds at most 16 MiB waiting for a slot: past it a file is hashed at once, and every digest is right', async () => {
    const s = sink();
    const q = new DigestQueue(s);
    const files = Array.from({ length: 24 }, (_, i) => bytes(1 << 20, i));
    files.forEach((f, i) => q.add(i + 1, f));
    // Two jobs running, then 16 MiB waiting; the rest were hashed here.
    expect(q.stats.offThread).toBe(2);
    expect(q.stats.here).toBe(24 - 2 - 16);
    await Promise.all(files.map((_, i) => q.settled(i + 1)));
    expect(q.stats.offThread).toBe(18);
    files.forEach((f, i) => expect(s.got.get(i + 1)).toBe(createHash('sha256').update(f).digest('hex')));
  });

  it('hashes here when there is no WebCrypto, and close() drops files still waiting (their waiters settle)', async () => {
    const s1 = sink();
    new DigestQueue(s1, null, null).add(1, bytes(OFFTHREAD_MIN, 3));
    expect(s1.got.has(1)).toBe(true);
    const s2 = sink();
    const q = new DigestQueue(s2);
    for (let i = 1; i <= 4; i++) q.add(i, bytes(OFFTHREAD_MIN, i));
    const waiting = q.settled(4)!;
    q.close();
    await waiting;
    expect(q.has(4)).toBe(false);
    await Promise.all([1, 2].map((i) => q.settled(i)));
    expect(s2.got.size).toBe(0); // closed: nothing recorded, not even the two that ran
  });
});

describe('DigestQueue with the addon\'s hasher', () => {
  const A = loadAddon();
  const hasher: OffThreadSha256 = (data, cb) => A.sha256(data, cb);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const sink = () => {
    const got = new Map<number, string>();
    return { got, done: (id: number, d: Buffer) => void got.set(id, d.toString('hex')), failed: (id: number) => void got.set(id, 'failed') };
  };
  const big = (n: number, seed: number): Buffer => Buffer.alloc(n, seed);

  it('the addon hashes as node:crypto does, the buffer read in place (a view of a bigger one included)', async () => {
    const bufs = [Buffer.alloc(0), Buffer.from('abc'), Buffer.alloc(4097, 2), Buffer.alloc(600_000, 3), Buffer.alloc(1 << 20).fill(7).subarray(77, 300_077)];
    const digests = await Promise.all(
      bufs.map(
        (b) =>
          new Promise<Buffer>((resolve, reject) => {
            expect(A.sha256(b, (err, d) => (err || !d ? reject(new Error(err ?? 'no digest')) : resolve(d)))).toBe(true);
          }),
      ),
    );
    bufs.forEach((b, i) => expect(digests[i]!.toString('hex')).toBe(sha(b)));
  });

  it('big files go to the addon (no WebCrypto needed), small ones are hashed here; the 16 MiB bound holds', async () => {
    const s = sink();
    const q = new DigestQueue(s, hasher, null);
    const small = Buffer.from('{"a":1}\n');
    q.add(1, small);
    expect(s.got.get(1)).toBe(sha(small));
    const files = Array.from({ length: 24 }, (_, i) => big(1 << 20, i));
    files.forEach((f, i) => q.add(i + 2, f));
    expect(q.stats).toEqual({ offThread: 2, here: 1 + 24 - 2 - 16 });
    expect(q.has(2)).toBe(true);
    await Promise.all(files.map((_, i) => q.settled(i + 2)));
    files.forEach((f, i) => expect(s.got.get(i + 2)).toBe(sha(f)));
    expect(q.stats.offThread).toBe(18);
  });

  it('a hasher that cannot take jobs: WebCrypto from then on (or here without it), digests right', async () => {
    for (const subtle of [globalThis.crypto.subtle, null]) {
      const s = sink();
      let calls = 0;
      const q = new DigestQueue(
        s,
        () => {
          calls++;
          return false;
        },
        subtle,
      );
      const files = [big(OFFTHREAD_MIN, 1), big(OFFTHREAD_MIN + 1, 2)];
      files.forEach((f, i) => q.add(i + 1, f));
      await Promise.all(files.map((_, i) => q.settled(i + 1)));
      files.forEach((f, i) => expect(s.got.get(i + 1)).toBe(sha(f)));
      expect(calls).toBe(1);
    }
  });

  it('a failed job leaves its file unknown (failed)', async () => {
    const s = sink();
    const q = new DigestQueue(
      s,
      (_data, cb) => {
        setImmediate(() => cb('boom', null));
        return true;
      },
      null,
    );
    q.add(1, big(OFFTHREAD_MIN, 1));
    await q.settled(1);
    expect(s.got.get(1)).toBe('failed');
    expect(q.has(1)).toBe(false);
  });
});
