/**
 * Directory read-ahead: a walk through many small directories (`items/<pk>/`) finds the next
 * few listings made, and their files rendered, before it asks; big listings read nothing ahead.
 */
import { describe, expect, it } from 'vitest';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import type { SnapshotSource } from '../src/source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../src/source/types.js';
import { SIBLING_PREFETCH_DIRS as AHEAD, type Tree } from '../src/tree/tree.js';
import { demoEntries } from '../src/demo/data.js';
import { openTree } from './helpers/render.js';
import { Slow } from './helpers/slow.js';

/** Counts the source's scans and gets. */
class Counting implements PageSource {
  scans = 0;
  gets = 0;
  readonly label: string;
  constructor(private readonly inner: SnapshotSource) {
    this.label = inner.label;
  }
  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    this.scans++;
    return this.inner.scanPage(start, end, ts, opts);
  }
  get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    this.gets++;
    return this.inner.get(key, ts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const ITEMS = '/dynamodb/bench/items';
const listed = (tree: Tree, path: string): boolean => tree.paths.listing(tree.paths.lookup(path)) !== null;

async function settle(tree: Tree, path: string): Promise<void> {
  for (let i = 0; i < 200 && !listed(tree, path); i++) await new Promise((r) => setTimeout(r, 5));
}

describe('directory read-ahead', () => {
  it('listing one small directory lists the next few siblings, with their files, before they are asked for', async () => {
    const t = await openTree(ddbBenchEntries(300, { perHash: 3 }), { wrap: (s) => new Counting(s) });
    try {
      const pks = await t.tree.readdir(ITEMS);
      expect(pks).toHaveLength(100);
      const dir = (i: number): string => `${ITEMS}/${pks[i]}`;
      expect(await t.tree.readdir(dir(0))).toEqual(['0.json', '1.json', '2.json']);
      await settle(t.tree, dir(AHEAD));
      for (let i = 1; i <= AHEAD; i++) expect(listed(t.tree, dir(i)), dir(i)).toBe(true);
      expect(listed(t.tree, dir(AHEAD + 1))).toBe(false);
      // The walk's next directory and its files cost the source nothing now.
      const before = { scans: t.src.scans, gets: t.src.gets };
      expect(await t.tree.readdir(dir(1))).toEqual(['0.json', '1.json', '2.json']);
      const item = JSON.parse((await t.tree.read(`${dir(1)}/2.json`, 0, 1 << 16)).toString()) as Record<string, { N?: string; S?: string }>;
      expect(item.sk).toEqual({ N: '2' });
      expect(item.pk).toEqual({ S: pks[1] });
      expect(t.src.gets).toBe(before.gets);
      // ... beyond the scans that keep as many directories listed ahead of it.
      await settle(t.tree, dir(AHEAD + 1));
      expect(listed(t.tree, dir(AHEAD + 1))).toBe(true);
      expect(listed(t.tree, dir(AHEAD + 2))).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('keptListing answers a listing made before at once, and starts the read-ahead only after the caller is done', async () => {
    const t = await openTree(ddbBenchEntries(60, { perHash: 3 }), { wrap: (s) => new Counting(s) });
    try {
      const pks = await t.tree.readdir(ITEMS);
      const dir = (i: number): string => `${ITEMS}/${pks[i]}`;
      // Not listed yet: null, and nothing is read for it.
      const scans = t.src.scans;
      expect(t.tree.keptListing(dir(0))).toBeNull();
      expect(t.src.scans).toBe(scans);
      await t.tree.readdir(dir(0));
      await settle(t.tree, dir(AHEAD));
      const kept = t.tree.keptListing(dir(1));
      expect(kept?.names).toEqual(['0.json', '1.json', '2.json']);
      expect(kept?.ids).toHaveLength(3);
      expect(t.tree.paths.name(kept!.ids[2]!)).toBe('2.json');
      // Its read-ahead (one more directory) has not started in this callback: the caller's reply goes first.
      expect(t.tree['listingsInFlight'].has(dir(AHEAD + 1))).toBe(false);
      await settle(t.tree, dir(AHEAD + 1));
      expect(listed(t.tree, dir(AHEAD + 1))).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('a big listing reads no sibling ahead', async () => {
    // Two partition keys of 1100 items each: a listing past the read-ahead's bound.
    const t = await openTree(ddbBenchEntries(2200, { perHash: 1100 }));
    try {
      const pks = await t.tree.readdir(ITEMS);
      expect(pks).toHaveLength(2);
      expect(await t.tree.readdir(`${ITEMS}/${pks[0]}`)).toHaveLength(1100);
      await new Promise((r) => setTimeout(r, 100));
      expect(listed(t.tree, `${ITEMS}/${pks[1]}`)).toBe(false);
    } finally {
      await t.close();
    }
  });
});

describe('root listing', () => {
  it("asks every adapter's root, and every S3 key family for buckets, at once: one round trip, not one after another; same names in adapter order", async () => {
    const t = await openTree(demoEntries(), { wrap: (s) => new Slow(s) });
    try {
      expect(await t.tree.readdir('/')).toEqual(['dynamodb', 's3', 'redis', 'sqs', 'MANIFEST.json', 'CHECKSUMS']);
      expect(t.src.maxInFlight).toBeGreaterThanOrEqual(7); // DynamoDB's, Redis' and SQS' roots beside S3's 4 family scans
      expect(t.src.rounds).toBe(1);
    } finally {
      await t.close();
    }
  });
});
