/**
 * The native backend's remembered listings (cross-file read-ahead, prepared listings) are
 * bounded in number and in entries: a big listing is let go once another one is remembered
 * and its reader has moved on, so it is not carried through the rest of a copy, nor taken
 * from a copy still in it.
 */
import { describe, expect, it } from 'vitest';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import { LISTING_IN_USE_MS, NativeFuseMount } from '../src/fuse/native.js';
import type { DirListing } from '../src/tree/tree.js';
import { openTree } from './helpers/render.js';

const listing = (n: number): DirListing => ({ names: Array.from({ length: n }, (_, i) => `f${i}`), ids: new Uint32Array(n) });

describe('native backend: remembered listings', () => {
  it('keep at most 16, and let a big one go once another is remembered and no reader is in it', async () => {
    const t = await openTree(ddbBenchEntries(10, { perHash: 5 }));
    try {
      const m = new NativeFuseMount({ mountpoint: '/nonexistent', tree: t.tree, log: t.tree['log'] });
      const remember = (dir: string, l: DirListing): unknown => m['remember'](dir, l);
      const listings = (): Map<string, { used: number }> => m['listings'] as Map<string, { used: number }>;
      const kept = (): string[] => [...listings().keys()];
      const idle = (dir: string): void => void (listings().get(dir)!.used -= LISTING_IN_USE_MS);
      // A big listing alone is kept (its reader is in it) ...
      remember('/big', listing(70000));
      expect(kept()).toEqual(['/big']);
      // ... and so it stays while it is used, past the entry bound, when another one comes ...
      remember('/d0', listing(10));
      expect(kept()).toEqual(['/big', '/d0']);
      // ... and is let go when the next one comes once it has not been used for a while.
      idle('/big');
      remember('/d1', listing(10));
      expect(kept()).toEqual(['/d0', '/d1']);
      expect(m['listedEntries']).toBe(20);
      // The count bound holds regardless; the least recently used go first.
      for (let i = 2; i < 20; i++) remember(`/d${i}`, listing(10));
      expect(kept()).toHaveLength(16);
      expect(kept()[15]).toBe('/d19');
      expect(kept()).not.toContain('/d0');
      // A listing used again (its files pushed) moves to the end of the order.
      m['pushAfter'](m['listings'].get('/d4')!, -1);
      remember('/d20', listing(10));
      expect(kept()).toContain('/d4');
      expect(kept()).not.toContain('/d5');
      expect(kept().slice(-2)).toEqual(['/d4', '/d20']);
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
