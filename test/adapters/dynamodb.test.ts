import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DecodeOptions } from '../../src/adapters/types.js';
import { ddbBenchEntries, ddbItemEntry, ddbItemValue, demoDynamodbEntries, ddbTableEntries, ddbTableWithItems, type DdbTable } from '../../src/fixture/dynamodb.js';
import type { FsmEntry } from '../../src/fixture/fsm.js';
import { dynamodbFixtures, dynamodbJsonlEntries } from '../golden/cases/dynamodb.js';
import { CountingSource } from '../helpers/counting.js';
import { openTree, renderEntries, text, type Rendered } from '../helpers/render.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;

/** Every file of the reference decoder's dynamodb/ tree: relative path -> bytes. */
function expectedTree(caseName: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const base = join(GOLDEN, caseName, 'expected');
  const walk = (rel: string): void => {
    const abs = join(base, rel);
    for (const name of readdirSync(abs)) {
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(join(base, r)).isDirectory()) walk(r);
      else if (r.startsWith('dynamodb/')) out.set(r, readFileSync(join(base, r)));
    }
  };
  walk('');
  return out;
}

const open: Rendered[] = [];
async function render(entries: FsmEntry[], opts: { options?: Partial<DecodeOptions>; pageSize?: number } = {}): Promise<Rendered> {
  const r = await renderEntries(entries, opts);
  open.push(r);
  return r;
}
afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
});

function dynamoFiles(r: Rendered): Map<string, Buffer> {
  return new Map([...r.files].filter(([p]) => p.startsWith('dynamodb/')));
}

describe('dynamodb: byte-identical to elastickv-snapshot-decode', () => {
  for (const f of dynamodbFixtures) {
    it(`${f.name}: every file matches the reference tree`, async () => {
      const r = await render(f.entries, { pageSize: 3 });
      expect(r.errors).toEqual(new Map());
      const want = expectedTree(f.name);
      const got = dynamoFiles(r);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [p, b] of want) expect(got.get(p)?.toString('latin1'), p).toBe(b.toString('latin1'));
    });
  }
});

describe('dynamodb: edge cases, exact bytes', () => {
  it('hash-only table: items/<pk>.json in GetItem wire JSON, HTML escaped, no trailing newline', async () => {
    const r = await render(dynamodbFixtures.find((f) => f.name === 'dynamodb-hash-only')!.entries);
    expect(text(r, 'dynamodb/sessions/items/sess%20def%2F456.json')).toBe(
      '{\n  "active": {\n    "BOOL": false\n  },\n  "note": {\n    "S": "line1\\nline2\\t\\"q\\""\n  },\n' +
        '  "session_id": {\n    "S": "sess def/456"\n  },\n  "user": {\n    "S": "bob \\u003cadmin\\u003e \\u0026 co"\n  }\n}',
    );
    expect(text(r, 'dynamodb/sessions/_schema.json')).toContain('"range_key": {}');
  });

  it('binary and numeric keys: b64. segments, big.Rat canonical numbers, sets/maps/lists/nulls/bools', async () => {
    const r = await render(dynamodbFixtures.find((f) => f.name === 'dynamodb-binary-numeric-keys')!.entries);
    expect([...r.files.keys()].filter((p) => p.startsWith('dynamodb/counters/items/')).sort()).toEqual(
      ['-7', '0', '1%2F1000000', '100', '314159%2F100000', '42'].map((n) => `dynamodb/counters/items/${n}.json`),
    );
    const odd = text(r, 'dynamodb/blobs/items/b64.AAH-_w/-1%2F4.json');
    expect(odd).toBe(
      '{\n  "chunk": {\n    "N": "-0.25"\n  },\n  "digest": {\n    "B": "AAH+/w=="\n  },\n  "empty_set": {\n    "SS": []\n  },\n  "nothing": {\n    "NULL": true\n  }\n}',
    );
    const sets = text(r, 'dynamodb/blobs/items/b64.AAH-_w/0.json');
    expect(sets).toContain('"BS": [\n      "YQ==",\n      "AA==",\n      "+/8="\n    ]');
    const nulls = text(r, 'dynamodb/blobs/items/b64.Pj9-/1000.json');
    expect(nulls).toContain('"L": [\n      {\n        "NULL": true\n      },\n      {\n        "NULL": false\n      },\n      {\n        "BOOL": false\n      }\n    ]');
    const nested = text(r, 'dynamodb/blobs/items/b64./-12345678901234567890123456789%2F1000000000.json');
    expect(nested).toContain('"z": {\n        "M": {}\n      }');
    expect(nested).toContain('"l": {\n        "L": []\n      }');
    expect(nested).toContain('"NS": [\n                  "1",\n                  "2.0"\n                ]');
  });

  it('1 KiB key: SHA-fallback file name; the owner writes no KEYMAP.jsonl for dynamodb', async () => {
    const r = await render(dynamodbFixtures.find((f) => f.name === 'dynamodb-long-key')!.entries);
    const names = [...r.files.keys()].filter((p) => p.startsWith('dynamodb/long-hash/items/'));
    expect(names).toContain('dynamodb/long-hash/items/5e8165c43ec32bd978263f17ada89836__' + 'k'.repeat(64) + '.json');
    expect([...r.files.keys()].some((p) => p.endsWith('KEYMAP.jsonl'))).toBe(false);
    // cat of the long item resolves by a scan bounded to the name's 64-byte key prefix.
    const p = '/' + names.find((n) => n.includes('__'))!;
    expect(JSON.parse((await r.tree.read(p, 0, 1 << 20)).toString()).v).toEqual({ S: 'long' });
  });

  it('generations: only the schema generation (plus a migration source) is shown; the active row wins', async () => {
    const r = await render(dynamodbFixtures.find((f) => f.name === 'dynamodb-generations')!.entries);
    const tree = [...dynamoFiles(r).keys()].sort();
    expect(tree).toEqual([
      'dynamodb/legacy/_schema.json',
      'dynamodb/legacy/items/1%2F2.json',
      'dynamodb/legacy/items/5.json',
      'dynamodb/legacy/items/7.json',
      'dynamodb/migrating/_schema.json',
      'dynamodb/migrating/items/a/1.json',
      'dynamodb/migrating/items/a/2.json',
      'dynamodb/migrating/items/b/3%2F2.json',
      'dynamodb/migrating/items/c/10.json',
      'dynamodb/recreated/_schema.json',
      'dynamodb/recreated/items/live-1/1.json',
      'dynamodb/recreated/items/shared/1.json',
    ]);
    expect(JSON.parse(text(r, 'dynamodb/migrating/items/a/2.json')).from).toEqual({ S: 'active' });
    expect(JSON.parse(text(r, 'dynamodb/recreated/items/shared/1.json')).gen).toEqual({ N: '3' });
    // Legacy keys "5" and "5.0" name one file; the later key wins, as in the owner.
    expect(JSON.parse(text(r, 'dynamodb/legacy/items/5.json')).x).toEqual({ S: 'five-point-oh' });
    expect(await r.tree.getattr('/dynamodb/recreated/items/stale-only').catch((e: { errno: string }) => e.errno)).toBe('ENOENT');
    expect(await r.tree.getattr('/dynamodb/gone').catch((e: { errno: string }) => e.errno)).toBe('ENOENT');
  });

  it('no tables -> no dynamodb/ directory; orphan items alone do not make one', async () => {
    const gone: DdbTable = { name: 'gone', hashKey: 'id', hashType: 'S' };
    const r = await render([ddbTableEntries(gone)[1]!, ddbItemEntry(gone, { id: { S: 'x' } })]);
    expect(await r.tree.readdir('/')).toEqual(['MANIFEST.json', 'CHECKSUMS']);
  });

  it('scope filter: --scope dynamodb=orders shows only that table', async () => {
    const r = await render(dynamodbJsonlEntries, { options: { scopes: new Map([['dynamodb', new Set(['orders'])]]) } });
    expect(await r.tree.readdir('/dynamodb')).toEqual(['orders']);
    expect(await r.tree.getattr('/dynamodb/sessions').catch((e: { errno: string }) => e.errno)).toBe('ENOENT');
  });
});

describe('dynamodb: jsonl bundle layout', () => {
  it('items/data-00001.jsonl: one compact item per line, in key order', async () => {
    const r = await render(dynamodbJsonlEntries, { options: { dynamodbBundleMode: 'jsonl' } });
    expect(await r.tree.readdir('/dynamodb/sessions/items')).toEqual(['data-00001.jsonl']);
    const lines = text(r, 'dynamodb/sessions/items/data-00001.jsonl');
    const want = expectedTree('dynamodb-hash-only');
    // Each line is the per-item JSON compacted (json.Marshal), in item key order.
    const perItem = ['sess def/456', 'sess-abc123', 'séance-ü'].map((k) =>
      JSON.stringify(JSON.parse(want.get(`dynamodb/sessions/items/${encodeURIComponent(k).replace(/[!'()*~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())}.json`)!.toString())),
    );
    expect(lines).toBe(perItem.map((l) => l.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026') + '\n').join(''));
    expect(text(r, 'MANIFEST.json')).toContain('"dynamodb_layout": "jsonl"');
  });

  it('--dynamodb-bundle-size splits parts at line boundaries; an oversized item gets its own part', async () => {
    const t: DdbTable = { name: 'big', hashKey: 'id', hashType: 'N' };
    const items = Array.from({ length: 7 }, (_, i) => ({ id: { N: String(i) }, pad: { S: 'x'.repeat(i === 3 ? 200 : 10) } }));
    const r = await render(ddbTableWithItems(t, items), { options: { dynamodbBundleMode: 'jsonl', dynamodbBundleSize: 100 } });
    const names = await r.tree.readdir('/dynamodb/big/items');
    const parts = names.map((n) => text(r, `dynamodb/big/items/${n}`));
    expect(parts.join('')).toBe(items.map((i) => `{"id":{"N":"${i.id.N}"},"pad":{"S":"${i.pad.S}"}}\n`).join(''));
    for (const p of parts) expect(p.length <= 100 || p.split('\n').length === 2).toBe(true);
    expect(names[0]).toBe('data-00001.jsonl');
    expect(names.length).toBeGreaterThan(2);
  });
});

describe('dynamodb: corrupt records', () => {
  const t: DdbTable = { name: 't', hashKey: 'id', hashType: 'S' };
  const good = ddbItemEntry(t, { id: { S: 'good' }, v: { N: '1' } });
  const badKey = ddbItemEntry(t, { id: { S: 'bad' } }).key;

  for (const [what, value] of [
    ['bad magic', Buffer.from('not an item')],
    ['bad protobuf', Buffer.concat([ddbItemValue({ id: { S: 'bad' } }).subarray(0, 4), Buffer.from([0x0a, 0x7f, 0x01])])],
    ['invalid UTF-8 in a string', Buffer.concat([ddbItemValue({}).subarray(0, 4), Buffer.from([0x0a, 0x09, 0x0a, 0x02, 0x69, 0x64, 0x12, 0x03, 0x0a, 0x01, 0xff])])],
  ] as const) {
    it(`${what}: that item's file is EIO with one log line naming the key; other files render`, async () => {
      const r = await render([...ddbTableEntries(t), good, { key: badKey, value }]);
      // CHECKSUMS needs every file's bytes, so it fails too.
      expect(r.errors).toEqual(new Map([['dynamodb/t/items/bad.json', 'EIO'], ['CHECKSUMS', 'EIO']]));
      expect(JSON.parse(text(r, 'dynamodb/t/items/good.json')).v).toEqual({ N: '1' });
      const logged = r.logs.filter((l) => l.key !== undefined && l.path === '/dynamodb/t/items/bad.json');
      expect(logged).toHaveLength(1);
      expect(String(logged[0]!.key)).toContain('!ddb|item|');
    });
  }

  it('item whose attributes disagree with its key: EIO', async () => {
    const r = await render([...ddbTableEntries(t), good, { key: badKey, value: ddbItemValue({ id: { S: 'other' } }) }]);
    expect(r.errors.get('dynamodb/t/items/bad.json')).toBe('EIO');
  });

  it('corrupt schema: _schema.json is EIO, other tables render', async () => {
    const u: DdbTable = { name: 'u', hashKey: 'id', hashType: 'S' };
    const [meta, gen] = ddbTableEntries(t);
    const r = await render([{ ...meta!, value: Buffer.from([0, 0x44, 0x53, 0x01, 0xff]) }, gen!, good, ...ddbTableWithItems(u, [{ id: { S: 'x' } }])]);
    expect(r.errors.get('dynamodb/t/_schema.json')).toBe('EIO');
    expect(text(r, 'dynamodb/u/items/x.json')).toBe('{\n  "id": {\n    "S": "x"\n  }\n}');
  });

  it('jsonl: a corrupt item fails only its own part', async () => {
    const items = Array.from({ length: 6 }, (_, i) => ddbItemEntry(t, { id: { S: `i${i}` }, pad: { S: 'y'.repeat(20) } }));
    items[4] = { ...items[4]!, value: Buffer.from('garbage') };
    const r = await render([...ddbTableEntries(t), ...items], { options: { dynamodbBundleMode: 'jsonl', dynamodbBundleSize: 80 } });
    const names = await r.tree.readdir('/dynamodb/t/items');
    expect(names.length).toBeGreaterThan(2);
    expect([...r.errors.keys()].filter((p) => p !== 'CHECKSUMS')).toHaveLength(1);
    expect(names.filter((n) => r.files.has(`dynamodb/t/items/${n}`))).toHaveLength(names.length - 1);
  });
});

describe('dynamodb: laziness', () => {
  function counting(r: Rendered): { gets: number; pages: number; keys: number } {
    const src = (r.tree as unknown as { ctx: { view: { source: { get: (...a: unknown[]) => unknown; scanPage: (...a: unknown[]) => Promise<unknown[]> } } } }).ctx.view.source;
    const c = { gets: 0, pages: 0, keys: 0 };
    const get = src.get.bind(src);
    const scanPage = src.scanPage.bind(src);
    src.get = (...a: unknown[]) => {
      c.gets++;
      return get(...a);
    };
    src.scanPage = async (...a: unknown[]) => {
      c.pages++;
      const p = await scanPage(...a);
      c.keys += p.length;
      return p;
    };
    return c;
  }

  it('cat of one item = point reads only; ls pages the item range', async () => {
    const t: DdbTable = { name: 'many', hashKey: 'pk', hashType: 'S', rangeKey: 'sk', rangeType: 'N' };
    const items = Array.from({ length: 200 }, (_, i) => ({ pk: { S: `p${i % 20}` }, sk: { N: String(i) } }));
    // A tree nothing was listed or read in (a rendered one has every listing kept).
    const fresh = await openTree(ddbTableWithItems(t, items), { pageSize: 16 });
    const r2: Rendered = { tree: fresh.tree, files: new Map(), errors: new Map(), logs: fresh.logs, close: fresh.close };
    open.push(r2);
    const c = counting(r2);
    const body = await r2.tree.read('/dynamodb/many/items/p7/127.json', 0, 4096);
    expect(JSON.parse(body.toString()).sk).toEqual({ N: '127' });
    expect(c.keys).toBeLessThanOrEqual(5);
    c.pages = 0;
    c.keys = 0;
    const hashes = await r2.tree.readdir('/dynamodb/many/items');
    expect(hashes).toHaveLength(20);
    expect(c.pages).toBeGreaterThan(200 / 16);
    expect(c.pages).toBeLessThan(200 / 16 + 4);
    // Listed once, kept: the same listing again costs no page.
    c.pages = 0;
    expect(await r2.tree.readdir('/dynamodb/many/items')).toEqual(hashes);
    expect(c.pages).toBe(0);
    // readdirplus looks up every listed pk directory: the listing answers, no probe each.
    c.pages = 0;
    c.gets = 0;
    for (const h of hashes) expect((await r2.tree.getattr(`/dynamodb/many/items/${h}`)).kind).toBe('dir');
    expect(c.pages + c.gets).toBe(0);
    c.pages = 0;
    c.keys = 0;
    expect(await r2.tree.readdir('/dynamodb/many/items/p3')).toHaveLength(10);
    expect(c.keys).toBeLessThanOrEqual(11);
    // Names no record can carry are refused without scanning.
    c.pages = 0;
    c.gets = 0;
    for (const p of ['/dynamodb/many/items/p3/x.json', '/dynamodb/many/items/p3/1.0.json', '/dynamodb/many/items/p3/1.json', '/dynamodb/many/items/nope']) {
      expect(await r2.tree.getattr(p).catch((e: { errno: string }) => e.errno)).toBe('ENOENT');
    }
    expect(c.pages).toBe(0); // "nope": not in the listing above, so no probe
    expect(c.gets).toBe(1); // p3/1.json: one point read
    // A fresh tree that never listed items/ probes: one keys-only page of limit 1 a name.
    const t3 = await openTree(ddbTableWithItems(t, items), { pageSize: 16, wrap: (s) => new CountingSource(s) });
    try {
      await t3.tree.getattr('/dynamodb/many/items');
      const before = t3.src.pages;
      expect(await t3.tree.getattr('/dynamodb/many/items/nope').catch((e: { errno: string }) => e.errno)).toBe('ENOENT');
      expect((await t3.tree.getattr('/dynamodb/many/items/p3')).kind).toBe('dir');
      expect(t3.src.pages - before).toBe(2);
      expect(t3.src.calls.slice(-2).map((x) => x.op)).toEqual(['scan', 'scan']);
    } finally {
      await t3.close();
    }
  });

  it('items/ of a hash+range table reads each pk directory\'s records in the same pass: walking them costs no page or get', async () => {
    const t: DdbTable = { name: 'many', hashKey: 'pk', hashType: 'S', rangeKey: 'sk', rangeType: 'N' };
    const items = Array.from({ length: 200 }, (_, i) => ({ pk: { S: `p${i % 20}` }, sk: { N: String(i) } }));
    const want = dynamoFiles(await render(ddbTableWithItems(t, items)));
    const w = await openTree(ddbTableWithItems(t, items), { pageSize: 16, wrap: (s) => new CountingSource(s) });
    try {
      const hashes = await w.tree.readdir('/dynamodb/many/items');
      expect(hashes).toHaveLength(20);
      // One pass over the item range, with values (before: keys only, then a scan a pk directory).
      expect(w.src.pages).toBeLessThan(200 / 16 + 4);
      expect(w.src.valueBytes).toBeGreaterThan(0);
      w.src.reset();
      let files = 0;
      for (const h of hashes) {
        for (const name of await w.tree.readdir(`/dynamodb/many/items/${h}`)) {
          const path = `/dynamodb/many/items/${h}/${name}`;
          const { size } = await w.tree.getattr(path);
          expect((await w.tree.read(path, 0, size)).toString('latin1'), path).toBe(want.get(path.slice(1))!.toString('latin1'));
          files++;
        }
      }
      expect(files).toBe(200);
      expect(w.src.pages + w.src.gets).toBe(0);
    } finally {
      await w.close();
    }
  });

  it('past the room\'s share of the cache the items/ pass goes on keys-only; the pk directories past it scan their own range', async () => {
    const t: DdbTable = { name: 'big', hashKey: 'pk', hashType: 'S', rangeKey: 'sk', rangeType: 'N' };
    // 8 MiB of items against a 4 MiB share (a 32 MiB cache).
    const pad = 'x'.repeat(40_000);
    const items = Array.from({ length: 200 }, (_, i) => ({ pk: { S: `p${String(i % 20).padStart(2, '0')}` }, sk: { N: String(i) }, pad: { S: pad } }));
    const want = dynamoFiles(await render(ddbTableWithItems(t, items)));
    const w = await openTree(ddbTableWithItems(t, items), { pageSize: 16, cacheBytes: 32 << 20, wrap: (s) => new CountingSource(s) });
    try {
      const hashes = await w.tree.readdir('/dynamodb/big/items');
      expect(hashes).toEqual(Array.from({ length: 20 }, (_, i) => `p${String(i).padStart(2, '0')}`));
      // Values stopped within a page past the share, and the page read ahead of it (16 items of ~40 KB each).
      expect(w.src.valueBytes).toBeGreaterThan(3 << 20);
      expect(w.src.valueBytes).toBeLessThan((4 << 20) + 2 * 16 * 41_000);
      w.src.reset();
      for (const h of hashes) {
        const names = await w.tree.readdir(`/dynamodb/big/items/${h}`);
        expect(names).toHaveLength(10);
        for (const name of names) {
          const path = `/dynamodb/big/items/${h}/${name}`;
          const { size } = await w.tree.getattr(path);
          expect((await w.tree.read(path, 0, size)).toString('latin1'), path).toBe(want.get(path.slice(1))!.toString('latin1'));
        }
      }
      // The first pk directories came with the pass; the later ones (and the one it stopped in)
      // scanned their range (the directory read-ahead lists them as the walk goes).
      const scanned = hashes.filter((h) => w.src.calls.some((c) => c.op === 'scan' && c.key.includes(h)));
      expect(scanned.length).toBeGreaterThan(5);
      expect(scanned.length).toBeLessThan(20);
      expect(scanned).toEqual(hashes.slice(20 - scanned.length));
    } finally {
      await w.close();
    }
  });

  it('a cold cat of one item reads the table schema once and the item once (a round trip each on a live cluster)', async () => {
    const want = (await render(demoDynamodbEntries())).files.get('dynamodb/orders/items/customer-7421/1714392000.json')!;
    const t = await openTree(demoDynamodbEntries(), { wrap: (s) => new CountingSource(s) });
    try {
      const path = '/dynamodb/orders/items/customer-7421/1714392000.json';
      const { size } = await t.tree.getattr(path);
      expect(await t.tree.read(path, 0, size)).toEqual(want);
      const gets = t.src.calls.filter((c) => c.op === 'get').map((c) => c.key);
      // Before: the schema was read by the table's lookup and again by items/'s, and the item by its lookup and again by its render.
      expect(gets.filter((k) => k.startsWith('!ddb|meta|table|'))).toHaveLength(1);
      expect(gets.filter((k) => k.startsWith('!ddb|item|'))).toHaveLength(1);
      expect(gets).toHaveLength(2);
    } finally {
      await t.close();
    }
  });

  it('demo data renders every file', async () => {
    const r = await render(demoDynamodbEntries());
    expect(r.errors).toEqual(new Map());
    expect([...r.files.keys()].filter((p) => p.startsWith('dynamodb/')).sort()).toEqual([
      'dynamodb/blobs/_schema.json',
      'dynamodb/blobs/items/b64.AAH-_w/0.json',
      'dynamodb/blobs/items/b64.AAH-_w/1.json',
      'dynamodb/orders/_schema.json',
      'dynamodb/orders/items/customer-7421/1714392000.json',
      'dynamodb/orders/items/customer-7421/3428793085%2F2.json',
      'dynamodb/orders/items/customer-7422/1714363200.json',
      'dynamodb/users/_schema.json',
      'dynamodb/users/items/alice.json',
      'dynamodb/users/items/bob%20smith.json',
      'dynamodb/users/items/carol%2F%C3%BC.json',
    ]);
  });
});

describe('dynamodb: benchmark generator', () => {
  it('ddbBenchEntries builds records the adapter renders like ordinary fixtures', async () => {
    const r = await render(ddbBenchEntries(25, { perHash: 10, payloadBytes: 3 }));
    expect(r.errors).toEqual(new Map());
    expect([...r.files.keys()].filter((p) => p.includes('/items/')).length).toBe(25);
    expect(text(r, 'dynamodb/bench/items/user-00000002/4.json')).toBe(
      '{\n  "payload": {\n    "S": "xxx"\n  },\n  "pk": {\n    "S": "user-00000002"\n  },\n  "seq": {\n    "N": "24"\n  },\n  "sk": {\n    "N": "4"\n  }\n}',
    );
  });
});
