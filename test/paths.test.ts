/** The tree's path table: ids for (parent, name) pairs, kept in typed arrays. */
import { pino } from 'pino';
import { defaultDecodeOptions } from '../src/adapters/types.js';
import { Metrics } from '../src/metrics.js';
import { MemorySource } from '../src/source/memory.js';
import { SnapshotView } from '../src/source/range.js';
import { BufferFile, StaticDir, type Node } from '../src/tree/node.js';
import { Tree } from '../src/tree/tree.js';
import { describe, expect, it } from 'vitest';
import { PathTable, ROOT_ID } from '../src/tree/paths.js';

describe('PathTable', () => {
  it('gives each path one stable id and turns it back into the path', () => {
    const t = new PathTable();
    expect(t.intern('/')).toBe(ROOT_ID);
    expect(t.path(ROOT_ID)).toBe('/');
    const a = t.intern('/dynamodb/orders/items/pk-1/sk-1.json');
    expect(t.intern('/dynamodb/orders/items/pk-1/sk-1.json')).toBe(a);
    expect(t.lookup('/dynamodb/orders/items/pk-1/sk-1.json')).toBe(a);
    expect(t.path(a)).toBe('/dynamodb/orders/items/pk-1/sk-1.json');
    expect(t.name(a)).toBe('sk-1.json');
    const dir = t.lookup('/dynamodb/orders/items/pk-1');
    expect(dir).not.toBe(0);
    expect(t.find(dir, 'sk-1.json')).toBe(a);
    expect(t.child(dir, 'sk-1.json')).toBe(a);
    expect(t.size).toBe(6);
  });

  it('interns a run of siblings by their directory, with the ids a walk from the root gives', () => {
    const paths = ['/r/db_0/strings/a.bin', '/r/db_0/strings/b.bin', '/r/db_0/stringsX/c.bin', '/r/db_0/strings/é.bin', '/r/db_0', '/r/db_0/strings/', '/r/db_0/strings/a.bin', '/r/db_0/s', '/r/db_0/s/t', '/top', '/r/db_0/strings/d.bin'];
    const t = new PathTable();
    const ids = paths.map((p) => t.intern(p));
    // The same ids as looking each path up from the root, element by element.
    for (let i = 0; i < paths.length; i++) expect(t.lookup(paths[i]!), paths[i]).toBe(ids[i]);
    expect(ids[6]).toBe(ids[0]);
    expect(ids[5]).toBe(t.lookup('/r/db_0/strings'));
    expect(t.path(ids[2]!)).toBe('/r/db_0/stringsX/c.bin');
    expect(t.path(ids[3]!)).toBe('/r/db_0/strings/é.bin');
    expect(t.find(t.lookup('/r/db_0/strings'), 'd.bin')).toBe(ids[10]);
    // No name is ever empty: a trailing slash names the directory itself.
    expect(t.lookup('/r/db_0/strings/')).toBe(t.lookup('/r/db_0/strings'));
  });

  it('answers 0 for what was never interned, without adding it', () => {
    const t = new PathTable();
    t.intern('/a/b');
    expect(t.lookup('/a/c')).toBe(0);
    expect(t.lookup('/x/b')).toBe(0);
    expect(t.find(ROOT_ID, 'b')).toBe(0); // b lives under /a, not /
    expect(t.size).toBe(3);
    expect(t.path(0)).toBeUndefined();
    expect(t.path(99)).toBeUndefined();
  });

  it('keeps names apart by parent and by every byte, across growth and a small directory-path cache', () => {
    const t = new PathTable(16);
    const ids = new Map<string, number>();
    const names = ['a', 'b', 'ä', 'a.b', 'a\\b', 'x'.repeat(400), '日本'.repeat(200), 'emoji-😀', 'long-'.repeat(900)]; // the last: a path past the scratch buffer
    for (let d = 0; d < 300; d++) {
      for (const n of names) {
        const p = `/d${d}/sub/${n}${d % 7}`;
        ids.set(p, t.intern(p));
      }
    }
    expect(new Set(ids.values()).size).toBe(ids.size);
    for (const [p, id] of ids) {
      expect(t.lookup(p)).toBe(id);
      expect(t.path(id)).toBe(p);
    }
    // 300 top dirs + 300 sub dirs + 2400 names + the root
    expect(t.size).toBe(300 + 300 + 300 * names.length + 1);
  });
});

describe('per-path state, as the metrics report it', () => {
  it('ekv_mount_paths and ekv_mount_path_state_bytes follow the paths a walk gave ids, at tens of bytes a path', async () => {
    const files = new Map<string, Node>();
    for (let i = 0; i < 20_000; i++) files.set(`key-${String(i).padStart(6, '0')}.json`, new BufferFile(Buffer.from(`{"i":${i}}\n`)));
    const tree = new Tree({
      view: new SnapshotView(new MemorySource(), 1n),
      options: defaultDecodeOptions(),
      adapters: [{ name: 'redis', root: async () => new StaticDir(new Map([['db', new StaticDir(files)]])) }],
      log: pino({ level: 'silent' }),
      cacheBytes: 1 << 20,
      manifest: () => Buffer.from('{}\n'),
    });
    const metrics = new Metrics(() => tree);
    const gauge = async (name: string): Promise<number> => {
      const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `));
      return Number(line!.split(' ')[1]);
    };
    try {
      const before = await gauge('ekv_mount_path_state_bytes');
      expect(await gauge('ekv_mount_paths')).toBe(tree.paths.size);
      for (const name of await tree.readdir('/redis/db')) await tree.getattr(`/redis/db/${name}`);
      const paths = await gauge('ekv_mount_paths');
      const bytes = await gauge('ekv_mount_path_state_bytes');
      expect(paths).toBe(tree.paths.size);
      expect(paths).toBeGreaterThan(20_000);
      expect(bytes).toBe(tree.pathStateBytes());
      // Arrays and arena as allocated: 16-char names, 4-byte ids; doubling leaves room, never 200 bytes a path.
      expect((bytes - before) / 20_000).toBeGreaterThan(16);
      expect(bytes / paths).toBeLessThan(200);
    } finally {
      await tree.close();
      await metrics.close();
    }
  });
});
