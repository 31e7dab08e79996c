/**
 * The native backend's remembered listings (cross-file read-ahead, prepared listings) are
 * bounded in number and in entries: a big listing is let go once another one is remembered,
 * so it is not carried through the rest of a copy.
 */
import { describe, expect, it } from 'vitest';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import { NativeFuseMount } from '../src/fuse/native.js';
import type { DirListing } from '../src/tree/tree.js';
import { openTree } from './helpers/render.js';

const listing = (n: number): DirListing => ({ names: Array.from({ length: n }, (_, i) => `f${i}`), ids: new Uint32Array(n) });

describe('native backend: remembered listings', () => {
  it('keep at most 16, and let a big one go once another is remembered', async () => {
    const t = await openTree(ddbBenchEntries(10, { perHash: 5 }));
    try {
      const m = new NativeFuseMount({ mountpoint: '/nonexistent', tree: t.tree, log: t.tree['log'] });
      const remember = (dir: string, l: DirListing): unknown => m['remember'](dir, l);
      const kept = (): string[] => [...(m['listings'] as Map<string, unknown>).keys()];
      // A big listing alone is kept (its reader is in it) ...
      remember('/big', listing(70000));
      expect(kept()).toEqual(['/big']);
      // ... and let go when the next one comes, as are the oldest past 16.
      remember('/d0', listing(10));
      expect(kept()).toEqual(['/d0']);
      for (let i = 1; i < 20; i++) remember(`/d${i}`, listing(10));
      expect(kept()).toHaveLength(16);
      expect(kept()).not.toContain('/big');
      expect(kept()[15]).toBe('/d19');
      expect(m['listedEntries']).toBe(160);
      // The same listing again is the same remembered object; a new one for a path replaces it.
      const l = listing(3);
      expect(remember('/d19x', l)).toBe(remember('/d19x', l));
      remember('/d19x', listing(4));
      expect(m['listedEntries']).toBe(15 * 10 + 4);
    } finally {
      await t.close();
    }
  });
});
