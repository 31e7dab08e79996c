/**
 * DirNode.entries() (a listing with each small file rendered in the same scan) must agree
 * with list() and with lookup + read of each file on its own: same names in the same order,
 * the same bytes, the same failures. Checked over every golden fixture and over corrupt
 * records, against a fresh tree that never lists (every read there takes the lookup path).
 */
import { describe, expect, it } from 'vitest';
import type { FsmEntry } from '../src/fixture/fsm.js';
import { ddbItemEntry, ddbItemValue, ddbTableWithItems, type DdbTable } from '../src/fixture/dynamodb.js';
import { redisString } from '../src/fixture/redis.js';
import { TreeError, type Tree } from '../src/tree/tree.js';
import { GOLDEN_FIXTURES } from './golden/fixtures.js';
import { openTree } from './helpers/render.js';

type Outcome = { bytes: string } | { errno: string };

async function readWhole(tree: Tree, path: string): Promise<Outcome> {
  try {
    const { size } = await tree.getattr(path);
    return { bytes: (size === 0 ? Buffer.alloc(0) : await tree.read(path, 0, size)).toString('hex') };
  } catch (e) {
    if (e instanceof TreeError) return { errno: e.errno };
    throw e;
  }
}

/** Every directory's listing and every file's outcome, walking with readdir (the entries() path where a directory has it). */
async function walk(tree: Tree): Promise<{ dirs: Map<string, string[]>; files: Map<string, Outcome> }> {
  const dirs = new Map<string, string[]>();
  const files = new Map<string, Outcome>();
  const visit = async (dir: string): Promise<void> => {
    const names = await tree.readdir(dir);
    dirs.set(dir, names);
    for (const n of names) {
      const p = dir === '/' ? `/${n}` : `${dir}/${n}`;
      const node = await tree.resolve(p).catch(() => null);
      if (node?.kind === 'dir') await visit(p);
      else files.set(p, await readWhole(tree, p));
    }
  };
  await visit('/');
  return { dirs, files };
}

async function checkAgreement(entries: FsmEntry[], flags: string[] = []): Promise<number> {
  const options = flagOptions(flags);
  const listed = await openTree(entries, { options });
  const fresh = await openTree(entries, { options });
  const plain = await openTree(entries, { options });
  let bulkDirs = 0;
  try {
    const { dirs, files } = await walk(listed.tree);
    for (const [dir, names] of dirs) {
      const node = await plain.tree.resolve(dir);
      if (node?.kind !== 'dir' || !node.entries) continue;
      bulkDirs++;
      expect(await node.list(), `list() of ${dir}`).toEqual(names);
    }
    for (const [path, outcome] of files) {
      if (path === '/CHECKSUMS' || path === '/MANIFEST.json') continue;
      expect(await readWhole(fresh.tree, path), path).toEqual(outcome);
    }
  } finally {
    await listed.close();
    await fresh.close();
    await plain.close();
  }
  return bulkDirs;
}

function flagOptions(flags: string[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of flags) {
    if (f === '--include-orphans') o.includeOrphans = true;
    else if (f === '--include-incomplete-uploads') o.includeIncompleteUploads = true;
    else if (f === '--preserve-sqs-visibility') o.preserveSqsVisibility = true;
    else if (f === '--include-sqs-side-records') o.includeSqsSideRecords = true;
    else if (f === '--rename-collisions') o.renameCollisions = true;
    else if (f === '--dynamodb-bundle-mode') o.dynamodbBundleMode = 'jsonl';
  }
  return o;
}

describe('DirNode.entries() agrees with list() and with lookup + read', () => {
  let bulk = 0;
  for (const f of GOLDEN_FIXTURES) {
    it(`${f.name}`, async () => {
      bulk += await checkAgreement(f.entries, f.flags);
    });
  }

  it('the fixtures exercise listings made by entries()', () => {
    expect(bulk).toBeGreaterThan(5);
  });

  it('corrupt strings and items: listed, failing alone, the same way on both paths', async () => {
    const table: DdbTable = { name: 't', hashKey: 'pk', hashType: 'S', rangeKey: 'sk', rangeType: 'N' };
    const bad = ddbItemEntry(table, { pk: { S: 'a' }, sk: { N: '2' } }).key;
    const entries: FsmEntry[] = [
      ...redisString('good', 'v1'),
      { key: Buffer.from('!redis|str|bad'), value: Buffer.from([0xff, 0x01, 0x01, 0x00]) }, // its TTL section is truncated
      ...redisString('later', 'v2'),
      ...ddbTableWithItems(table, [
        { pk: { S: 'a' }, sk: { N: '1' }, v: { S: 'x' } },
        { pk: { S: 'a' }, sk: { N: '3' }, v: { S: 'z' } },
      ]),
      { key: bad, value: ddbItemValue({ pk: { S: 'a' }, sk: { N: '7' } }) }, // attributes disagree with the key
    ];
    expect(await checkAgreement(entries)).toBeGreaterThan(0);
    const t = await openTree(entries);
    try {
      expect(await t.tree.readdir('/redis/db_0/strings')).toEqual(['bad.bin', 'good.bin', 'later.bin']);
      await expect(t.tree.read('/redis/db_0/strings/bad.bin', 0, 10)).rejects.toMatchObject({ errno: 'EIO' });
      expect((await t.tree.read('/redis/db_0/strings/later.bin', 0, 10)).toString()).toBe('v2');
      expect(await t.tree.readdir('/dynamodb/t/items/a')).toEqual(['1.json', '2.json', '3.json']);
      await expect(t.tree.read('/dynamodb/t/items/a/2.json', 0, 10)).rejects.toMatchObject({ errno: 'EIO' });
      expect((await t.tree.getattr('/dynamodb/t/items/a/3.json')).size).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });
});
