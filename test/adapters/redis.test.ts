import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { redisFixtures } from '../golden/cases/redis.js';
import { CountingSource } from '../helpers/counting.js';
import { openTree, renderEntries, type OpenTree, text, type Rendered } from '../helpers/render.js';
import {
  demoRedisEntries,
  benchRedisEntries,
  encodeStreamEntry,
  redisHash,
  redisHll,
  redisList,
  redisSet,
  redisStream,
  redisString,
  redisZSet,
  redisZSetLegacy,
  wide,
} from '../../src/fixture/redis.js';
import { encodeFsm, type FsmEntry } from '../../src/fixture/fsm.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { ALL_ADAPTERS } from '../../src/adapters/index.js';
import { defaultDecodeOptions } from '../../src/adapters/types.js';
import { SnapshotView } from '../../src/source/range.js';
import { SnapshotSource } from '../../src/source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';
import { Tree } from '../../src/tree/tree.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CollectionRows } from '../../src/adapters/redis/db.js';
import { P, wideKey } from '../../src/adapters/redis/keys.js';
import type { DirNode, FileNode } from '../../src/tree/node.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;

/** Every file under expected/redis as relative path -> bytes. */
function expectedRedis(caseName: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const base = join(GOLDEN, caseName, 'expected');
  const walk = (rel: string): void => {
    const abs = join(base, rel);
    for (const name of readdirSync(abs)) {
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(join(base, r)).isDirectory()) walk(r);
      else out.set(r, readFileSync(join(base, r)));
    }
  };
  try {
    walk('redis');
  } catch {
    /* no redis dir */
  }
  return out;
}

function redisFiles(r: Rendered): Map<string, Buffer> {
  return new Map([...r.files].filter(([p]) => p.startsWith('redis/')));
}

function fixture(name: string): FsmEntry[] {
  const f = redisFixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.entries;
}

async function expectGolden(name: string, pageSize?: number): Promise<Rendered> {
  const r = await renderEntries(fixture(name), { pageSize });
  const want = expectedRedis(name);
  const got = redisFiles(r);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [p, b] of want) expect(got.get(p)?.toString('latin1'), p).toBe(b.toString('latin1'));
  expect(r.errors.size).toBe(0);
  return r;
}

describe('redis strings', () => {
  it('redis-strings renders byte-identical to the owner (empty value, 1 KiB key, TTL sidecar, KEYMAP)', async () => {
    const r = await expectGolden('redis-strings');
    try {
      expect(r.files.get('redis/db_0/strings/empty.bin')).toEqual(Buffer.alloc(0));
      expect(text(r, 'redis/db_0/strings_ttl.jsonl')).toContain('{"key":"session%3Aabc","expire_at_ms":1900000000000}\n');
      expect(r.files.has('redis/db_0/hll_ttl.jsonl')).toBe(false);
    } finally {
      await r.close();
    }
  });

  it('a corrupt string value fails only its own file with EIO', async () => {
    const r = await renderEntries([
      ...redisString('good', 'ok', { ttlMs: 5 }),
      { key: '!redis|str|bad', value: Buffer.from([0xff, 0x01, 0x01, 0x00]) },
    ]);
    try {
      expect(r.errors.get('redis/db_0/strings/bad.bin')).toBe('EIO');
      expect(text(r, 'redis/db_0/strings/good.bin')).toBe('ok');
      expect(text(r, 'redis/db_0/strings_ttl.jsonl')).toBe('{"key":"good","expire_at_ms":5}\n');
      expect(r.logs.some((l) => l.key === '!redis|str|bad')).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('no redis records: no redis directory; scope filter hides db_0', async () => {
    const r = await renderEntries([{ key: '!txn|x', value: 'y' }]);
    try {
      expect([...r.files.keys()].some((p) => p.startsWith('redis/'))).toBe(false);
    } finally {
      await r.close();
    }
    const s = await renderEntries(redisString('a', 'b'), { options: { scopes: new Map([['redis', new Set(['1'])]]) } });
    try {
      expect([...s.files.keys()].some((p) => p.startsWith('redis/'))).toBe(false);
    } finally {
      await s.close();
    }
  });
});

describe('redis golden cases render byte-identical in process', () => {
  for (const name of ['redis-hash', 'redis-list', 'redis-set', 'redis-zset', 'redis-stream', 'redis-hll', 'redis-hll-nottl', 'redis-ttl-routing', 'redis-stateless-rows', 'redis-edge-keys']) {
    it(name, async () => {
      const r = await expectGolden(name);
      await r.close();
    });
  }
});


describe('redis golden cases with tiny pages (listing cursors, wide-column skip-scan)', () => {
  for (const name of ['redis-strings', 'redis-hash', 'redis-list', 'redis-set', 'redis-zset', 'redis-stream', 'redis-hll', 'redis-ttl-routing', 'redis-edge-keys']) {
    for (const pageSize of [1, 2, 3]) {
      it(`${name} pageSize=${pageSize}`, async () => {
        const r = await expectGolden(name, pageSize);
        await r.close();
      });
    }
  }
});

describe('redis exact bytes per type', () => {
  it('list built by LPUSH/RPUSH/LPOP/RPOP: items in sequence order, claims and deltas carry no state', async () => {
    const r = await renderEntries(
      redisList('q', [['rpush', 'a', 'b'], ['lpush', 'z'], ['lpop', 1], ['rpush', Buffer.from([0xff])], ['rpop', 1], ['lpush', 'y']], { compactAfter: 2 }),
    );
    try {
      expect(text(r, 'redis/db_0/lists/q.json')).toBe('{\n  "format_version": 1,\n  "items": [\n    "y",\n    "a",\n    "b"\n  ],\n  "expire_at_ms": null\n}');
      expect(r.errors.size).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('legacy zset blob: members sorted by name, duplicate members last-wins; record TTL inlined', async () => {
    const r = await renderEntries(redisZSetLegacy('z', [['b', 2], ['a', 1e21], ['b', -0.5]], { ttlMs: 77 }));
    try {
      expect(text(r, 'redis/db_0/zsets/z.json')).toBe(
        '{\n  "format_version": 1,\n  "members": [\n    {\n      "member": "a",\n      "score": 1e+21\n    },\n    {\n      "member": "b",\n      "score": -0.5\n    }\n  ],\n  "expire_at_ms": 77\n}',
      );
    } finally {
      await r.close();
    }
  });

  it('streams: entries in ID order then the _meta line, with and without TTL', async () => {
    const r = await renderEntries([
      ...redisStream('s', [
        { ms: 10, seq: 0, fields: ['f', '<v>'] },
        { ms: 2, seq: 5, fields: ['g', 'w'] },
      ]),
      ...redisStream('t', [{ ms: 1, seq: 0, fields: [] }], { ttlMs: 1234 }),
    ]);
    try {
      expect(text(r, 'redis/db_0/streams/s.jsonl')).toBe(
        '{"id":"2-5","fields":[{"name":"g","value":"w"}]}\n{"id":"10-0","fields":[{"name":"f","value":"\\u003cv\\u003e"}]}\n{"_meta":true,"length":2,"last_ms":2,"last_seq":5,"expire_at_ms":null}\n',
      );
      expect(text(r, 'redis/db_0/streams/t.jsonl')).toBe('{"id":"1-0","fields":[]}\n{"_meta":true,"length":1,"last_ms":1,"last_seq":0,"expire_at_ms":1234}\n');
    } finally {
      await r.close();
    }
  });

  it('HLL: sketch bytes without the TTL envelope; hll_ttl.jsonl only when some HLL expires', async () => {
    const withTtl = await renderEntries([...redisHll('h', ['a'], { ttlMs: 9 }), ...redisHll('p', ['b'])]);
    try {
      expect(withTtl.files.get('redis/db_0/hll/h.bin')).toEqual(Buffer.from([0x00, 0x52, 0x53, 0x01, 0x0a, 0x01, 0x61]));
      expect(text(withTtl, 'redis/db_0/hll_ttl.jsonl')).toBe('{"key":"h","expire_at_ms":9}\n');
    } finally {
      await withTtl.close();
    }
    const noTtl = await renderEntries(redisHll('p', ['b']));
    try {
      expect([...noTtl.files.keys()].filter((p) => p.startsWith('redis/'))).toEqual(['redis/db_0/hll/p.bin']);
    } finally {
      await noTtl.close();
    }
  });

  it('demo data renders every type without errors', async () => {
    const r = await renderEntries(demoRedisEntries());
    try {
      expect(r.errors.size).toBe(0);
      const dirs = new Set([...r.files.keys()].filter((p) => p.startsWith('redis/db_0/')).map((p) => p.split('/')[2]));
      expect([...dirs].sort()).toEqual(['KEYMAP.jsonl', 'hashes', 'hll', 'hll_ttl.jsonl', 'lists', 'sets', 'streams', 'strings', 'strings_ttl.jsonl', 'zsets']);
    } finally {
      await r.close();
    }
  });
});

describe('redis sidecar edge cases', () => {
  it('a corrupt TTL record routed to strings_ttl.jsonl lists the file and fails only it', async () => {
    const r = await renderEntries([...redisString('legacy', 'v', { legacy: true }), { key: '!redis|ttl|legacy', value: Buffer.alloc(3) }, ...redisHash('h', [['f', 'v']])]);
    try {
      expect(r.errors.get('redis/db_0/strings_ttl.jsonl')).toBe('EIO');
      expect(text(r, 'redis/db_0/strings/legacy.bin')).toBe('v');
      expect(r.files.has('redis/db_0/hashes/h.json')).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('--scope redis=0 / redis=db_0 keep db_0', async () => {
    for (const name of ['0', 'db_0']) {
      const r = await renderEntries(redisString('a', 'b'), { options: { scopes: new Map([['redis', new Set([name])]]) } });
      try {
        expect(text(r, 'redis/db_0/strings/a.bin')).toBe('b');
      } finally {
        await r.close();
      }
    }
  });
});

describe('redis over MVCC versions (the view resolves the read timestamp)', () => {
  it('newest visible version wins; tombstoned fields and members disappear', async () => {
    const r = await renderEntries([
      ...redisString('s', 'old', { ts: 100n }),
      ...redisString('s', 'new', { ts: 200n }),
      ...redisHash('h', [['keep', '1'], ['drop', '2']], { ts: 100n }),
      { key: wide('!hs|fld|', 'h', 'drop'), value: '', ts: 200n, tombstone: true },
      ...redisString('gone', 'x', { ts: 100n }),
      { key: '!redis|str|gone', value: '', ts: 200n, tombstone: true },
    ]);
    try {
      expect(text(r, 'redis/db_0/strings/s.bin')).toBe('new');
      expect(r.files.has('redis/db_0/strings/gone.bin')).toBe(false);
      expect(text(r, 'redis/db_0/hashes/h.json')).toBe('{\n  "format_version": 1,\n  "fields": [\n    {\n      "name": "keep",\n      "value": "1"\n    }\n  ],\n  "expire_at_ms": null\n}');
    } finally {
      await r.close();
    }
  });
});

describe('redis rows that carry no restorable state', () => {
  it('meta deltas, list claims and the zset score index alone create no files or directories', async () => {
    const r = await renderEntries([
      { key: wide('!hs|meta|d|', 'h', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!st|meta|d|', 's', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!zs|meta|d|', 'z', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!lst|meta|d|', 'l', Buffer.alloc(12)), value: Buffer.alloc(16) },
      { key: wide('!lst|claim|', 'l', Buffer.alloc(8)), value: Buffer.alloc(0) },
      { key: wide('!zs|scr|', 'z', Buffer.alloc(9)), value: Buffer.alloc(0) },
      { key: '!redis|ttl|nobody', value: Buffer.alloc(8) },
      ...redisString('s', 'v'),
    ]);
    try {
      expect([...r.files.keys()].filter((p) => p.startsWith('redis/'))).toEqual(['redis/db_0/strings/s.bin']);
    } finally {
      await r.close();
    }
  });
});

describe('redis corrupt records fail only their own file', () => {
  const cases: [string, FsmEntry[], string][] = [
    ['hash meta of bad length', [{ key: wide('!hs|meta|', 'bad'), value: Buffer.alloc(5) }], 'redis/db_0/hashes/bad.json'],
    ['list meta of bad length', [{ key: '!lst|meta|bad', value: Buffer.alloc(20) }], 'redis/db_0/lists/bad.json'],
    ['set meta overflowing int64', [{ key: wide('!st|meta|', 'bad'), value: Buffer.from('ffffffffffffffff', 'hex') }], 'redis/db_0/sets/bad.json'],
    ['zset member score of bad length', [{ key: wide('!zs|mem|', 'bad', 'm'), value: Buffer.alloc(3) }], 'redis/db_0/zsets/bad.json'],
    ['zset NaN score', [{ key: wide('!zs|mem|', 'bad', 'm'), value: Buffer.from('7ff8000000000001', 'hex') }], 'redis/db_0/zsets/bad.json'],
    ['legacy zset blob without magic', [{ key: '!redis|zset|bad', value: Buffer.from('nope') }], 'redis/db_0/zsets/bad.json'],
    ['legacy zset blob with invalid UTF-8 member', [{ key: '!redis|zset|bad', value: Buffer.from('00525a01' + '0a03' + '0a01ff', 'hex') }], 'redis/db_0/zsets/bad.json'],
    ['stream meta of bad length', [{ key: wide('!stream|meta|', 'bad'), value: Buffer.alloc(25) }], 'redis/db_0/streams/bad.jsonl'],
    [
      'stream entry with bad protobuf',
      [...redisStream('bad', []), { key: wide('!stream|entry|', 'bad', Buffer.alloc(16)), value: Buffer.from([0x00, 0x52, 0x58, 0x45, 0x01, 0x12, 0x09]) }],
      'redis/db_0/streams/bad.jsonl',
    ],
    [
      'stream entry with odd field count',
      [...redisStream('bad', []), { key: wide('!stream|entry|', 'bad', Buffer.alloc(16)), value: encodeStreamEntry('0-0', ['lonely']) }],
      'redis/db_0/streams/bad.jsonl',
    ],
    ['HLL header truncated', [{ key: '!redis|hll|bad', value: Buffer.from([0xff, 0x02, 0x01, 0x00]) }], 'redis/db_0/hll/bad.bin'],
    ['TTL record of bad length for a legacy string', [...redisString('bad', 'v', { legacy: true }), { key: '!redis|ttl|bad', value: Buffer.alloc(3) }], 'redis/db_0/strings_ttl.jsonl'],
    ['TTL record of bad length for a hash', [...redisHash('bad', [['f', 'v']], { ttlIn: 'record' }), { key: '!redis|ttl|bad', value: Buffer.alloc(3) }], 'redis/db_0/hashes/bad.json'],
  ];
  for (const [what, bad, path] of cases) {
    it(what, async () => {
      const good = [...redisString('ok', 'fine', { ttlMs: 1 }), ...redisHash('ok', [['f', 'v']]), ...redisList('ok', [['rpush', 'i']]), ...redisSet('ok', ['m']), ...redisZSet('ok', [['m', 1]]), ...redisStream('ok', [{ ms: 1, seq: 1, fields: ['a', 'b'] }]), ...redisHll('ok', ['x'])];
      const r = await renderEntries([...good, ...bad]);
      try {
        expect(r.errors.get(path)).toBe('EIO');
        // CHECKSUMS cannot hash a file that fails; nothing else fails.
        expect([...r.errors.keys()].filter((p) => p !== 'CHECKSUMS')).toEqual([path]);
        expect(text(r, 'redis/db_0/strings/ok.bin')).toBe('fine');
        for (const f of ['hashes/ok.json', 'lists/ok.json', 'sets/ok.json', 'zsets/ok.json', 'streams/ok.jsonl', 'hll/ok.bin']) expect(r.files.has(`redis/db_0/${f}`), f).toBe(true);
        const line = r.logs.find((l) => l.path === '/' + path);
        expect(line?.cause).toBe('record');
        expect(typeof line?.key).toBe('string');
      } finally {
        await r.close();
      }
    });
  }
});

/** The JS heap and Buffers' memory after full collections (what a structure really holds). */
function heapInUse(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function countingTree(entries: FsmEntry[], pageSize = 64): Promise<OpenTree<CountingSource>> {
  return openTree(entries, { pageSize, cacheBytes: 1 << 20, wrap: (s) => new CountingSource(s) });
}

describe('redis laziness', () => {
  it('cat of one key costs point reads and scans bounded to that key, never the whole database', async () => {
    const entries = benchRedisEntries(4000);
    entries.push(...redisHash('target', [['a', '1'], ['b', '2']]), ...redisList('target', [['rpush', 'x']]), ...redisStream('target', [{ ms: 1, seq: 0, fields: ['k', 'v'] }]));
    const t = await countingTree(entries);
    try {
      for (const [path, want] of [
        ['/redis/db_0/hashes/target.json', '"name": "a"'],
        ['/redis/db_0/lists/target.json', '"x"'],
        ['/redis/db_0/streams/target.jsonl', '"id":"1-0"'],
        ['/redis/db_0/strings/key%3A000000004.bin', 'aaaa'],
      ] as const) {
        t.src.reset();
        const { size } = await t.tree.getattr(path);
        const body = (await t.tree.read(path, 0, size)).toString();
        expect(body).toContain(want);
        // Point reads plus a few bounded scans; rows touched stay tiny next to the 4000-key keyspace.
        expect(t.src.gets + t.src.pages, path).toBeLessThan(30);
        expect(t.src.rows, path).toBeLessThan(20);
      }
    } finally {
      await t.close();
    }
  });

  it('ls of db_0 reads each string and hash row once, rendering strings/ and hashes/ on the way: their listings and reads then cost nothing', async () => {
    const entries: FsmEntry[] = [];
    for (let i = 0; i < 50; i++) entries.push(...redisHash(`h${i}`, Array.from({ length: 40 }, (_, j): [string, string] => [`f${j}`, 'v'])));
    for (let i = 0; i < 2000; i++) entries.push(...redisString(`s${i}`, 'v'));
    const t = await countingTree(entries, 16);
    try {
      t.src.reset();
      expect(await t.tree.readdir('/redis')).toEqual(['db_0']);
      expect(await t.tree.readdir('/redis/db_0')).toEqual(['strings', 'hashes']);
      // db_0's sidecars (strings_ttl, KEYMAP) read each string once and each hash row once
      // (50 meta rows, 2000 field rows), rendering strings/ and hashes/ on the way.
      expect(t.src.rows).toBeLessThanOrEqual(2000 + 2050 + 20);
      t.src.reset();
      const names = await t.tree.readdir('/redis/db_0/hashes');
      expect(names.length).toBe(50);
      expect(t.src.rows + t.src.gets).toBe(0);
      expect((await t.tree.readdir('/redis/db_0/strings')).length).toBe(2000);
      expect(t.src.rows + t.src.gets).toBe(0);
      for (const n of names) expect((await t.tree.read(`/redis/db_0/hashes/${n}`, 0, 1 << 16)).toString()).toContain('"name": "f39"');
      expect(t.src.gets + t.src.pages).toBe(0);
    } finally {
      await t.close();
    }
  });

  it("a collection directory whose rows exceed the room's cache share lists its names by skip-scans, reading no values past the share", async () => {
    // 20 hashes of 40 fields with 8 KiB values: 6.4 MiB of rows against the 4 MiB share of a 1 MiB cache.
    const big = 'v'.repeat(8 << 10);
    const entries: FsmEntry[] = [];
    for (let i = 0; i < 20; i++) entries.push(...redisHash(`h${String(i).padStart(2, '0')}`, Array.from({ length: 40 }, (_, j): [string, string] => [`f${j}`, big])));
    const t = await countingTree(entries, 16);
    try {
      await t.tree.readdir('/redis/db_0');
      t.src.reset();
      const names = await t.tree.readdir('/redis/db_0/hashes');
      expect(names).toEqual(Array.from({ length: 20 }, (_, i) => `h${String(i).padStart(2, '0')}.json`));
      expect(t.src.valueBytes).toBeLessThan((4 << 20) + 2 * 16 * big.length);
      // The files still render, each from its own rows.
      const body = (await t.tree.read('/redis/db_0/hashes/h07.json', 0, 1 << 20)).toString();
      expect(body).toContain('"name": "f39"');
    } finally {
      await t.close();
    }
  });

  it("a census holds many small collections in what it counts against the room's share", () => {
    // 20k hashes of two fields. Held as a Buffer a row and a record a key, they cost 3.3x the
    // bytes plus 48 a row that were counted (16.6 MB against 5 MB, measured the same way).
    const before = heapInUse();
    const rows = new CollectionRows(1 << 30);
    const feed = (): void => {
      for (let i = 0; i < 20000; i += 500) {
        const metas: KV[] = [];
        const fields: KV[] = [];
        for (let j = i; j < i + 500; j++) {
          const uk = Buffer.from(`key:${String(j).padStart(9, '0')}`);
          metas.push({ key: wideKey(P.hashMeta, uk), value: Buffer.alloc(24, 1) });
          for (const f of ['f0', 'f1']) fields.push({ key: Buffer.concat([wideKey(P.hashField, uk), Buffer.from(f)]), value: Buffer.alloc(8, 2) });
        }
        expect(rows.wideMetas(metas, P.hashMeta)).toBe(true);
        expect(rows.memberPairs(fields, P.hashField)).toBe(true);
      }
    };
    feed();
    const real = heapInUse() - before;
    expect(real).toBeGreaterThan(0);
    expect(real).toBeLessThan(rows.heldBytes * 1.25);
    let seen = 0;
    rows.each((c) => {
      if (seen === 7) {
        expect(c.uk.toString()).toBe('key:000000007');
        expect(c.meta).toEqual(Buffer.alloc(24, 1));
        expect(c.rows.map((r) => r.toString('latin1'))).toEqual(['f0', Buffer.alloc(8, 2).toString('latin1'), 'f1', Buffer.alloc(8, 2).toString('latin1')]);
      }
      seen++;
    });
    expect(seen).toBe(20000);
  });

  it('files looked up and kept in the node cache do not pin pool slabs by their user keys', async () => {
    // Each node keeps its user key. A key of ~10 bytes made between other small Buffers (the
    // traffic of a walk) is a view of an 8 KiB pool slab: 3,000 nodes held 24 MiB of slabs.
    const n = 3000;
    const entries: FsmEntry[] = [];
    for (let i = 0; i < n; i++) entries.push(...redisString(`s${i}`, `v${i}`));
    const t = await countingTree(entries, 64);
    try {
      const before = heapInUse();
      let junk: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        expect((await t.tree.getattr(`/redis/db_0/strings/s${i}.bin`)).size).toBe(`v${i}`.length);
        junk = [Buffer.from('x'.repeat(3000)), Buffer.from('y'.repeat(3000))]; // fills the rest of the slab, then dropped
      }
      expect(junk.length).toBe(2);
      expect(heapInUse() - before).toBeLessThan(6 << 20);
    } finally {
      await t.close();
    }
  });

  it("12k small hashes fit the census of a 1 MiB cache's room share: hashes/ costs no read after db_0", async () => {
    // ~2.3 MiB held against the 4 MiB share (a Buffer a row and a record a key held ~11 MiB).
    const entries: FsmEntry[] = [];
    const n = 12000;
    for (let i = 0; i < n; i++) entries.push(...redisHash(`h${String(i).padStart(5, '0')}`, [['f', 'v']]));
    const t = await countingTree(entries, 1024);
    try {
      expect(await t.tree.readdir('/redis/db_0')).toEqual(['hashes']);
      t.src.reset();
      const names = await t.tree.readdir('/redis/db_0/hashes');
      expect(names.length).toBe(n);
      expect(names[n - 1]).toBe(`h${n - 1}.json`);
      expect(t.src.pages + t.src.gets).toBe(0);
      // (Their bytes outgrow a 1 MiB cache: a file evicted renders again from its own rows.)
      for (const i of [0, 6000, n - 1]) expect((await t.tree.read(`/redis/db_0/hashes/h${String(i).padStart(5, '0')}.json`, 0, 4096)).toString()).toContain('"name": "f"');
    } finally {
      await t.close();
    }
  });

  it("a list whose items sit on both sides of a longer key's in key order keeps its own items, in order", async () => {
    // `!lst|itm|a` + seq: -1 sorts as a 7f ff.. byte string, 0 and 1 as 80 00..; the key
    // a 7f ff ff ff ff ff ff ff 00 sorts between them, and so do its items.
    const other = Buffer.from([0x61, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    const t = await countingTree([...redisList('a', [['lpush', 'x0'], ['rpush', 'x1', 'x2']]), ...redisList(other, [['rpush', 'y1']])], 2);
    try {
      const names = await t.tree.readdir('/redis/db_0/lists');
      expect(names.length).toBe(2);
      const items = await Promise.all(names.map(async (n) => (JSON.parse((await t.tree.read(`/redis/db_0/lists/${n}`, 0, 4096)).toString()) as { items: string[] }).items));
      expect(items).toEqual([['x0', 'x1', 'x2'], ['y1']]);
    } finally {
      await t.close();
    }
  });

  it('a file looked up again once rendered (a copy: readdirplus, then the read, nodes evicted between) costs no existence read', async () => {
    const entries: FsmEntry[] = [...redisHash('h1', [['f', 'v']]), ...redisString('s1', 'hello'), ...redisString('s2', 'world')];
    const t = await countingTree(entries, 16);
    try {
      const strings = (await t.tree.resolve('/redis/db_0/strings')) as DirNode;
      const hashes = (await t.tree.resolve('/redis/db_0/hashes')) as DirNode;
      for (const [dir, name, want] of [
        [strings, 's1.bin', 'hello'],
        [hashes, 'h1.json', '"name": "f"'],
      ] as const) {
        t.src.reset();
        const first = (await dir.lookup(name)) as FileNode;
        expect(t.src.gets + t.src.pages, name).toBeGreaterThan(0);
        const body = (await first.read(0, await first.size())).toString();
        expect(body).toContain(want);
        t.src.reset();
        const again = (await dir.lookup(name)) as FileNode;
        expect(t.src.gets + t.src.pages, name).toBe(0);
        expect((await again.read(0, await again.size())).toString()).toBe(body);
      }
      // Not rendered yet: looked up as before (one read), and a missing key is still no file.
      t.src.reset();
      expect(await strings.lookup('s2.bin')).not.toBeNull();
      expect(t.src.gets + t.src.pages).toBeGreaterThan(0);
      expect(await strings.lookup('nope.bin')).toBeNull();
    } finally {
      await t.close();
    }
  });

  it('cat of list "q" skips the interleaved items of list "queue:jobs" (no length prefix on list keys)', async () => {
    const big = Array.from({ length: 600 }, (_, i) => `item-${i}`);
    const t = await countingTree([...redisList('queue:jobs', [['rpush', ...big]]), ...redisList('q', [['lpush', 'b', 'a'], ['rpush', 'c']])], 32);
    try {
      t.src.reset();
      const p = '/redis/db_0/lists/q.json';
      const { size } = await t.tree.getattr(p);
      expect((await t.tree.read(p, 0, size)).toString()).toBe('{\n  "format_version": 1,\n  "items": [\n    "a",\n    "b",\n    "c"\n  ],\n  "expire_at_ms": null\n}');
      expect(t.src.rows).toBeLessThan(100);
    } finally {
      await t.close();
    }
  });

  it('a SHA-fallback name resolves on a fresh tree without a prior readdir', async () => {
    const long = 'x'.repeat(500);
    const t = await countingTree([...redisString(long, 'long'), ...redisHash(long, [['f', 'v']])]);
    try {
      const r = await renderEntries([...redisString(long, 'long'), ...redisHash(long, [['f', 'v']])]);
      const names = [...r.files.keys()].filter((p) => p.includes('__'));
      await r.close();
      expect(names.length).toBe(2);
      for (const n of names) {
        const { size } = await t.tree.getattr('/' + n);
        expect(size).toBeGreaterThan(0);
      }
    } finally {
      await t.close();
    }
  });

  it('streams/ exists (empty) when the only stream rows are entries without meta, as the owner leaves it', async () => {
    const t = await countingTree([...redisStream('orphan', [{ ms: 1, seq: 0, fields: ['a', 'b'] }], { noMeta: true }), ...redisString('s', 'v')]);
    try {
      expect(await t.tree.readdir('/redis/db_0')).toEqual(['strings', 'streams']);
      expect(await t.tree.readdir('/redis/db_0/streams')).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
