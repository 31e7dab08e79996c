import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { ALL_ADAPTERS } from '../../src/adapters/index.js';
import { defaultDecodeOptions } from '../../src/adapters/types.js';
import { writeFsm } from '../../src/fixture/fsm.js';
import { SnapshotView } from '../../src/source/range.js';
import { SnapshotSource } from '../../src/source/snapshot.js';
import { Tree } from '../../src/tree/tree.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoS3Entries, hlc, s3BucketEntries, s3ObjectEntries } from '../../src/fixture/s3.js';
import type { FsmEntry } from '../../src/fixture/fsm.js';
import type { DecodeOptions } from '../../src/adapters/types.js';
import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';
import { manifestKey } from '../../src/adapters/s3/keys.js';
import { decodeManifest, formatHlcRfc3339Nano } from '../../src/adapters/s3/model.js';
import { s3Fixtures } from '../golden/cases/s3.js';
import { CountingSource } from '../helpers/counting.js';
import { openTree, renderEntries, text, type Rendered } from '../helpers/render.js';
import { Slow } from '../helpers/slow.js';
import { ReadAheadSource } from '../../src/source/readahead.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;

/** Every regular file under dir, relative path -> bytes. */
function readTree(dir: string, rel = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(join(dir, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const p = join(dir, r);
    if (statSync(p).isDirectory()) for (const [k, v] of readTree(dir, r)) out.set(k, v);
    else out.set(r, readFileSync(p));
  }
  return out;
}

function s3Files(r: Rendered): Map<string, Buffer> {
  return new Map([...r.files].filter(([k]) => k.startsWith('s3/')));
}

function optionsFromFlags(flags: string[] = []): Partial<DecodeOptions> {
  return {
    renameCollisions: flags.includes('--rename-collisions'),
    includeOrphans: flags.includes('--include-orphans'),
    includeIncompleteUploads: flags.includes('--include-incomplete-uploads'),
  };
}

async function withRender<T>(entries: FsmEntry[], opts: Parameters<typeof renderEntries>[1], f: (r: Rendered) => Promise<T> | T): Promise<T> {
  const r = await renderEntries(entries, opts);
  try {
    return await f(r);
  } finally {
    await r.close();
  }
}

describe('s3 golden cases render byte-identical to elastickv-snapshot-decode (in-process)', () => {
  for (const fx of s3Fixtures) {
    it(fx.name, async () => {
      const expected = new Map([...readTree(join(GOLDEN, fx.name, 'expected'))].filter(([k]) => k.startsWith('s3/')));
      await withRender(fx.entries, { options: optionsFromFlags(fx.flags), lastCommitTS: fx.lastCommitTS }, (r) => {
        expect(r.errors).toEqual(new Map());
        const got = s3Files(r);
        expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
        for (const [k, v] of expected) expect(got.get(k)?.equals(v), k).toBe(true);
      });
    });
  }
});

describe('s3 rendering details', () => {
  it('basic: _bucket.json, sidecar with content-type/user metadata (HTML-escaped like MarshalIndent)', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-basic')!;
    await withRender(fx.entries, {}, (r) => {
      expect(text(r, 's3/photos/_bucket.json')).toBe('{\n  "format_version": 1,\n  "name": "photos",\n  "owner": "alice",\n  "region": "us-east-1",\n  "acl": "private"\n}');
      expect(text(r, 's3/empty-bucket/_bucket.json')).toBe('{\n  "format_version": 1,\n  "name": "empty-bucket"\n}');
      expect(text(r, 's3/photos/README.txt')).toBe('hello <s3> & friends\n');
      expect(text(r, 's3/photos/2026/01/beach.jpg.elastickv-meta.json')).toBe(
        [
          '{',
          '  "format_version": 1,',
          '  "etag": "7496cac5ac164e11c6798f950cbaa0c5",',
          '  "size_bytes": 700,',
          '  "last_modified": "2026-01-01T00:00:00Z",',
          '  "content_type": "image/jpeg",',
          '  "cache_control": "max-age=60",',
          '  "content_disposition": "inline; filename=\\"beach.jpg\\"",',
          '  "user_metadata": {',
          '    "author": "Ålice",',
          '    "x-camera": "pixel"',
          '  }',
          '}',
        ].join('\n'),
      );
      expect(r.files.get('s3/photos/2026/01/beach.jpg')).toEqual(Buffer.from(Array.from({ length: 700 }, (_, i) => i % 251)));
    });
  });

  it('multipart: parts in order, chunks in order, offloaded chunkref parts, stale part versions and uploads left out', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-multipart')!;
    await withRender(fx.entries, {}, (r) => {
      expect(text(r, 's3/media/videos/movie.mp4')).toBe('part1-chunk0|part1-chunk1|p1c2|part2-chunk0|part2-c1|part3-offloaded-chunk0|part3-offloaded-chunk1|part4-only|');
      expect(text(r, 's3/media/legacy.bin')).toBe('legacy-a|legacy-bb|');
    });
  });

  it('reads at any offset are served chunk by chunk (binary search), never the whole object', async () => {
    const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 256));
    const entries = [...s3BucketEntries({ name: 'b', generation: 1n }), ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'big.bin', body, chunkSize: 1000 })];
    await withRender(entries, {}, async (r) => {
      const gets: string[] = [];
      const src = (r.tree as unknown as { opts: { view: { source: PageSource } } }).opts.view.source;
      const orig = src.get.bind(src);
      src.get = async (k: Buffer, ts: bigint) => {
        gets.push(k.toString('latin1'));
        return orig(k, ts);
      };
      // A fresh tree path: the rendered map already read it; read ranges directly.
      const slice = await r.tree.read('/s3/b/big.bin', 4_500, 1_200);
      expect(slice.equals(body.subarray(4_500, 5_700))).toBe(true);
      const tail = await r.tree.read('/s3/b/big.bin', 9_990, 100);
      expect(tail.equals(body.subarray(9_990))).toBe(true);
      expect((await r.tree.getattr('/s3/b/big.bin')).size).toBe(10_000);
      // At most the chunks spanned (4,5 and 9) were fetched, possibly from cache (0 gets).
      expect(gets.filter((k) => k.startsWith('!s3|blob|')).length).toBeLessThanOrEqual(3);
    });
  });

  it('empty object: zero-byte body plus sidecar; last_modified omitted for HLC 0', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-empty-object')!;
    await withRender(fx.entries, {}, (r) => {
      expect(r.files.get('s3/b/empty')).toEqual(Buffer.alloc(0));
      expect(text(r, 's3/b/dir/empty.dat.elastickv-meta.json')).toBe(
        '{\n  "format_version": 1,\n  "etag": "d41d8cd98f00b204e9800998ecf8427e",\n  "size_bytes": 0,\n  "content_type": "application/octet-stream"\n}',
      );
    });
  });

  it('leaf collision: `a` and `a/b` -> a.elastickv-leaf-data + KEYMAP record; lookups without a listing agree', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-leaf-collision')!;
    await withRender(fx.entries, {}, async (r) => {
      expect(text(r, 's3/col/KEYMAP.jsonl')).toBe('{"encoded":"a.elastickv-leaf-data","original":"YQ","kind":"s3-leaf-data"}\n');
      expect(text(r, 's3/col/a.elastickv-leaf-data')).toBe('I am a\n');
      expect(text(r, 's3/col/a/b')).toBe('I am a/b\n');
    });
    // Fresh tree: direct lookups (no readdir first).
    await withRender(fx.entries, {}, async (r) => {
      const t = r.tree;
      expect((await t.getattr('/s3/col/a')).kind).toBe('dir');
      expect((await t.getattr('/s3/col/a.elastickv-leaf-data')).size).toBe(7);
      expect((await t.getattr('/s3/col/a.elastickv-leaf-data.elastickv-meta.json')).kind).toBe('file');
      expect((await t.getattr('/s3/col/a!')).size).toBe(23);
      await expect(t.getattr('/s3/col/a.elastickv-meta.json')).rejects.toMatchObject({ errno: 'ENOENT' });
    });
  });

  it('a blob-only (in-flight) `a/b` still makes `a` a leaf-data rename, as the owner does, but no `a/` directory', async () => {
    const entries = [
      ...s3BucketEntries({ name: 'c', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'c', generation: 1n, key: 'a', body: 'A' }),
      ...s3ObjectEntries({ bucket: 'c', generation: 1n, key: 'a/b', body: 'B', noManifest: true }),
    ];
    await withRender(entries, {}, (r) => {
      expect([...s3Files(r).keys()].sort()).toEqual(['s3/c/KEYMAP.jsonl', 's3/c/_bucket.json', 's3/c/a.elastickv-leaf-data', 's3/c/a.elastickv-leaf-data.elastickv-meta.json']);
    });
  });

  it('meta suffix without --rename-collisions: the owner fails the decode; the mount fails that one name with EIO', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-meta-suffix')!;
    await withRender(fx.entries, {}, (r) => {
      expect(r.errors.get('s3/m/notes.txt.elastickv-meta.json')).toBe('EIO');
      // The owner writes no CHECKSUMS for a failed decode; the mount's CHECKSUMS fails too.
      expect(r.errors.get('CHECKSUMS')).toBe('EIO');
      expect(text(r, 's3/m/notes.txt')).toBe('plain\n');
      expect(r.files.has('s3/m/KEYMAP.jsonl')).toBe(false);
      expect(r.logs.some((l) => String(l.err).includes('reserved sidecar suffix'))).toBe(true);
    });
  });

  it('keys the owner refuses (backslash) or cannot place (file vs directory) fail with EIO; neighbours render', async () => {
    const entries = [
      ...s3BucketEntries({ name: 'b', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'win\\path.txt', body: 'x' }),
      // With --rename-collisions the meta-suffix object goes to m.elastickv-meta.json.user-data, which is also a directory here.
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'm.elastickv-meta.json', body: 'm' }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'm.elastickv-meta.json.user-data/child', body: 'c' }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'ok.txt', body: 'ok' }),
    ];
    await withRender(entries, { options: { renameCollisions: true } }, (r) => {
      expect(r.errors.get('s3/b/win\\path.txt')).toBe('EIO');
      expect(r.errors.get('s3/b/m.elastickv-meta.json.user-data')).toBe('EIO');
      expect(text(r, 's3/b/ok.txt')).toBe('ok');
    });
  });

  it('meta suffix with --rename-collisions: .user-data + KEYMAP meta-suffix-rename', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-meta-suffix')!;
    await withRender(fx.entries, { options: { renameCollisions: true } }, (r) => {
      expect(text(r, 's3/m/notes.txt.elastickv-meta.json.user-data')).toBe('{"user":"data"}\n');
      expect(text(r, 's3/m/KEYMAP.jsonl')).toBe(
        '{"encoded":"notes.txt.elastickv-meta.json.user-data","original":"bm90ZXMudHh0LmVsYXN0aWNrdi1tZXRhLmpzb24","kind":"meta-suffix-rename"}\n',
      );
    });
  });

  it('generations: only the live generation; stale rows, in-flight blobs and uploads excluded; no-meta bucket shows its objects', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-generations')!;
    await withRender(fx.entries, {}, (r) => {
      expect(text(r, 's3/gen/keep.txt')).toBe('live generation 5\n');
      expect(r.files.has('s3/gen/only-old.txt')).toBe(false);
      expect(r.files.has('s3/gen/inflight.bin')).toBe(false);
      expect(text(r, 's3/nometa/x.txt')).toBe('no bucket meta\n');
    });
  });

  it('--include-orphans / --include-incomplete-uploads put records where the owner does', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-orphans-uploads')!;
    await withRender(fx.entries, { options: optionsFromFlags(fx.flags) }, (r) => {
      const orphan = [...r.files.keys()].find((k) => k.startsWith('s3/gen/_orphans/keep.txt/gen-4/') && k.endsWith('_0000000000000001_0000000000000001_0000000000000000.bin'))!;
      expect(text(r, orphan)).toBe('neration');
      expect(r.files.has('s3/uploads-only/_incomplete_uploads/records.jsonl')).toBe(true);
    });
  });

  it('scopes filter buckets', async () => {
    const fx = s3Fixtures.find((f) => f.name === 's3-basic')!;
    await withRender(fx.entries, { options: { scopes: new Map([['s3', new Set(['logs'])]]) } }, (r) => {
      expect([...s3Files(r).keys()].sort()).toEqual(['s3/logs/_bucket.json', 's3/logs/app/2026-01-01.log', 's3/logs/app/2026-01-01.log.elastickv-meta.json']);
    });
  });

  it('no S3 records: no s3/ directory', async () => {
    await withRender([{ key: '!redis|str|k', value: 'v' }], {}, async (r) => {
      expect(await r.tree.readdir('/')).not.toContain('s3');
    });
  });

  it('corrupt manifest: that object and its sidecar fail with EIO, a log line names the key, others still render', async () => {
    const entries = [
      ...s3BucketEntries({ name: 'b', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'good.txt', body: 'ok' }),
      { key: manifestKey(Buffer.from('b'), 1n, Buffer.from('bad.txt')), value: '{"upload_id":"x","size_bytes":"nope"}' },
      { key: manifestKey(Buffer.from('b'), 1n, Buffer.from('trunc.txt')), value: '{"upload_id":' },
    ];
    await withRender(entries, {}, (r) => {
      expect(r.errors.get('s3/b/bad.txt')).toBe('EIO');
      expect(r.errors.get('s3/b/bad.txt.elastickv-meta.json')).toBe('EIO');
      expect(r.errors.get('s3/b/trunc.txt')).toBe('EIO');
      expect(text(r, 's3/b/good.txt')).toBe('ok');
      expect(r.logs.some((l) => typeof l.key === 'string' && l.key.includes('bad.txt'))).toBe(true);
    });
  });

  it('missing chunk or corrupt chunkblob: EIO for that object only', async () => {
    const entries = [
      ...s3BucketEntries({ name: 'b', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'nochunks', body: 'data', noChunks: true }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'off', parts: [{ chunks: ['abc'], offloaded: true }] }).map((e) =>
        String(e.key).startsWith('!s3|chunkblob|') ? { ...e, value: 'abd' } : e,
      ),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'fine', body: 'fine' }),
    ];
    await withRender(entries, {}, (r) => {
      expect(r.errors.get('s3/b/nochunks')).toBe('EIO');
      expect(r.errors.get('s3/b/off')).toBe('EIO');
      expect(text(r, 's3/b/fine')).toBe('fine');
      expect(text(r, 's3/b/nochunks.elastickv-meta.json')).toContain('"size_bytes": 4');
    });
  });

  it('laziness: cat of one object is point reads; ls of a dir skips over subdirectories', async () => {
    const entries: FsmEntry[] = [...s3BucketEntries({ name: 'b', generation: 1n })];
    for (let i = 0; i < 2000; i++) entries.push(...s3ObjectEntries({ bucket: 'b', generation: 1n, key: `deep/sub${i % 10}/o${i}`, body: `body${i}` }));
    entries.push(...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'top.txt', body: 'top' }));
    const { tree, counts, close } = await lazyTree(entries, 8);
    try {
      expect((await tree.readdir('/s3/b/deep')).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `sub${i}`).sort());
      // One skip per subdirectory per family: far fewer keys than the 4000 records under deep/.
      expect(counts.scanned).toBeLessThan(300);
      counts.rows = 0;
      counts.pages = 0;
      const size = (await tree.getattr('/s3/b/deep/sub3/o13')).size;
      expect((await tree.read('/s3/b/deep/sub3/o13', 0, size)).toString()).toBe('body13');
      // Lookups probe with one-key pages; no page walks the bucket.
      expect(counts.scanned).toBeLessThan(30);
      expect(counts.maxLimit).toBeLessThanOrEqual(8);
    } finally {
      await close();
    }
  });

  it('demo entries render without errors', async () => {
    await withRender(demoS3Entries(), { options: { includeOrphans: true, includeIncompleteUploads: true } }, (r) => {
      expect(r.errors).toEqual(new Map());
      expect(text(r, 's3/photos/2026.elastickv-leaf-data')).toBe('index of 2026\n');
      expect(text(r, 's3/photos/2026/01/video.mp4')).toBe('part-one-chunk-a|part-one-chunk-b|part-two-offloaded|');
    });
  });
});

async function lazyTree(entries: FsmEntry[], pageSize: number): Promise<{ tree: Tree; counts: CountingSource; close: () => Promise<void> }> {
  const t = await openTree(entries, { pageSize, cacheBytes: 1 << 20, wrap: (s) => new CountingSource(s) });
  return { tree: t.tree, counts: t.src, close: t.close };
}

describe('s3 record decoding', () => {
  it('keeps uint64 HLCs exact and formats last_modified like Go RFC3339Nano', () => {
    const m = decodeManifest(Buffer.from('{"upload_id":"u","size_bytes":1,"last_modified_hlc":115794032238231551,"PARTS":[{"part_no":1,"chunk_count":1,"part_version":18446744073709551615}]}'));
    expect(m.lastModifiedHLC).toBe(115794032238231551n);
    expect(m.parts[0]!.partVersion).toBe(18446744073709551615n);
    expect(formatHlcRfc3339Nano(hlc(1767225600120))).toBe('2026-01-01T00:00:00.12Z');
    expect(formatHlcRfc3339Nano(hlc(1767225600000, 65535))).toBe('2026-01-01T00:00:00Z');
    expect(() => decodeManifest(Buffer.from('{"size_bytes":1.5}'))).toThrow();
    expect(() => decodeManifest(Buffer.from('{"etag":"x"} x'))).toThrow();
  });
});

describe('s3: a cold lookup by path', () => {
  it('resolves an object in one round trip once its directory is known, and reads its manifest once', async () => {
    const want = (await renderEntries(demoS3Entries())).files.get('s3/logs/app/2026-01-01.log')!;
    const t = await openTree(demoS3Entries(), { wrap: (src) => new Slow(src) });
    try {
      expect((await t.tree.getattr('/s3/logs/app')).kind).toBe('dir');
      t.src.reset();
      const path = '/s3/logs/app/2026-01-01.log';
      const { size } = await t.tree.getattr(path);
      // Before: the directory probe, the manifest read, each object family's probe for keys below
      // it, and the manifest again for the size, one after another (6 round trips).
      expect(t.src.rounds).toBe(1);
      expect(await t.tree.read(path, 0, size)).toEqual(want);
      expect(t.src.gets.filter((k) => k.startsWith('!s3|obj|head|'))).toHaveLength(1);
      // The sidecar beside it reads only the manifest of an object named like the sidecar itself.
      t.src.reset();
      expect((await t.tree.getattr(path + '.elastickv-meta.json')).kind).toBe('file');
      expect(t.src.gets.filter((k) => k.startsWith('!s3|obj|head|'))).toEqual([manifestKey(Buffer.from('logs'), 1n, Buffer.from('app/2026-01-01.log.elastickv-meta.json')).toString('latin1')]);
    } finally {
      await t.close();
    }
  });
});

/** Bucket `b` holding `smallObjects` small objects a/0000.txt…, then `big` at `bigKey`. */
function mixedBucket(smallObjects: number, bigKey: string, big: Buffer): { entries: FsmEntry[]; bodies: Map<string, Buffer> } {
  const entries: FsmEntry[] = [...s3BucketEntries({ name: 'b', generation: 1n })];
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < smallObjects; i++) bodies.set(`a/${String(i).padStart(4, '0')}.txt`, Buffer.from(`small object ${i}\n`));
  bodies.set(bigKey, big);
  for (const [key, body] of bodies) entries.push(...s3ObjectEntries({ bucket: 'b', generation: 1n, key, body }));
  return { entries, bodies };
}

/**
 * A copy of bucket `b`'s directories `dirs`, one after another as tar makes it: each listed
 * with its sizes (readdirplus: every object's manifest read, large chunk sizes announced),
 * then its objects read in order, 1 MiB at a time; every byte checked.
 */
async function copyDirs(t: { tree: Tree }, bodies: Map<string, Buffer>, dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    const names = await t.tree.readdir(`/s3/b/${dir}`);
    const sizes = await Promise.all(names.map(async (n) => (await t.tree.getattr(`/s3/b/${dir}/${n}`)).size));
    for (let i = 0; i < names.length; i++) {
      if (names[i]!.endsWith('.elastickv-meta.json')) continue;
      const got: Buffer[] = [];
      for (let off = 0; off < sizes[i]!; off += 1 << 20) got.push(await t.tree.read(`/s3/b/${dir}/${names[i]}`, off, 1 << 20));
      expect(Buffer.concat(got).equals(bodies.get(`${dir}/${names[i]}`)!), names[i]).toBe(true);
    }
  }
}

describe('s3: read-ahead over a live source', () => {
  it('small objects, then one of 1 MiB chunks in the same directory: no page carries more than a few MiB, and every byte is right', async () => {
    const { entries, bodies } = mixedBucket(600, 'a/zz-big.bin', Buffer.alloc(24 << 20, 0x5a));
    const t = await openTree(entries, { wrap: (s) => new ReadAheadSource(new CountingSource(s)) });
    try {
      const counting = (t.src as unknown as { inner: CountingSource }).inner;
      await copyDirs(t, bodies, ['a']);
      const pages = counting.calls.filter((c) => c.op === 'scan');
      // The small objects still came many to a page.
      expect(pages.filter((c) => c.limit! >= 64).length).toBeGreaterThan(0);
      // Before: the page after the small objects ran on into the big one's chunks (the stream's
      // window had grown to 512 keys): 24 MiB in one page.
      expect(Math.max(...pages.map((c) => c.valueBytes ?? 0))).toBeLessThanOrEqual(8 << 20);
    } finally {
      await t.close();
    }
  });
});

describe('s3: read-ahead into a directory not listed yet', () => {
  it('small objects, then a big one in a directory listed only after they were read: pages of chunks no manifest announced stay bounded', async () => {
    const { entries, bodies } = mixedBucket(1200, 'b/big.bin', Buffer.alloc(48 << 20, 0x5a));
    // Pages aim at 512 KiB: chunks assumed 32 KiB, unannounced pages ask for at most 16 keys.
    const t = await openTree(entries, { wrap: (s) => new ReadAheadSource(new CountingSource(s), { targetBytes: 512 << 10, cacheBytes: 64 << 20 }) });
    try {
      const counting = (t.src as unknown as { inner: CountingSource }).inner;
      expect(await t.tree.readdir('/s3/b')).toEqual(['_bucket.json', 'a', 'b']);
      // tar: a/ listed and read in order, and only then b/.
      await copyDirs(t, bodies, ['a', 'b']);
      const pages = counting.calls.filter((c) => c.op === 'scan');
      // Before: the page after the small objects ran on into the big object's chunks (the
      // stream's window had grown past 16 keys): its whole 48 MiB in one page.
      expect(Math.max(...pages.map((c) => c.valueBytes ?? 0))).toBeLessThanOrEqual(17 << 20);
    } finally {
      await t.close();
    }
  });
});
