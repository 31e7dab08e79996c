/**
 * The native backend's remembered listings (cross-file read-ahead, prepared listings) are
 * bounded in number and in entries: a big listing is let go once another one is remembered
 * and its reader has moved on, so it is not carried through the rest of a copy, nor taken
 * from a copy still in it.
 */
import { describe, expect, it } from 'vitest';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import { LISTING_IN_USE_MS, LISTINGS_MAX, NativeFuseMount } from '../src/fuse/native.js';
import type { DirListing } from '../src/tree/tree.js';
import { openTree } from './helpers/render.js';

const listing = (n: number): DirListing => ({ names: Array.from({ length: n }, (_, i) => `f${i}`), ids: new Uint32Array(n) });

describe('native backend: remembered listings', () => {
  it('keep at most 16, and let a big one go once another is remembered and no reader is in it', async () => {
    const t = await openTree(ddbBenchEntries(10, { perHash: 5 }));
    try {
      const m = new NativeFuseMount({ mountpoint: '/nonexistent', tree: t.tree, log: t.tree['log'] });
      type L = { used: number; pushedTo: number };
      const listings = (): Map<string, L> => m['listings'] as Map<string, L>;
      const remember = (dir: string, l: DirListing): unknown => m['remember'](dir, l);
      // A small listing whose files were all pushed (a directory the walk is done with).
      const done = (dir: string, n = 10): void => {
        remember(dir, listing(n));
        m['pushAfter'](listings().get(dir)!, -1);
        expect(listings().get(dir)!.pushedTo).toBe(n);
      };
      const kept = (): string[] => [...listings().keys()];
      const idle = (dir: string): void => void (listings().get(dir)!.used -= LISTING_IN_USE_MS);
      // A big listing alone is kept (its reader is in it) ...
      remember('/big', listing(70000));
      expect(kept()).toEqual(['/big']);
      // ... and so it stays while its reader is in it, past the entry bound: the listings done
      // with go instead, least recently used first, and one in use is kept beside it.
      done('/d0');
      expect(kept()).toEqual(['/big', '/d0']);
      remember('/u', listing(10));
      done('/d1');
      expect(kept()).toEqual(['/big', '/u', '/d1']);
      // Once its reader has not used it for a while, the next listing lets it go.
      idle('/big');
      done('/d2');
      expect(kept()).toEqual(['/u', '/d1', '/d2']);
      // The count bound: 16, the least recently used first.
      for (let i = 3; i < 20; i++) done(`/d${i}`);
      expect(kept()).toHaveLength(16);
      expect(kept()[15]).toBe('/d19');
      expect(kept()).not.toContain('/d2');
      expect(m['listedEntries']).toBe(160);
      // A listing used again (its files pushed) moves to the end of the order.
      const d5 = listings().get('/d5')!;
      m['pushAfter'](d5, -1);
      done('/d20');
      expect(kept()).toContain('/d5');
      expect(kept()).not.toContain('/d6');
      expect(kept().slice(-2)).toEqual(['/d5', '/d20']);
      // Listings in use are kept up to LISTINGS_MAX, then the least recently used go all the same.
      for (let i = 0; i < LISTINGS_MAX + 4; i++) remember(`/u${i}`, listing(10));
      expect(kept()).toHaveLength(LISTINGS_MAX);
      expect(kept()[LISTINGS_MAX - 1]).toBe(`/u${LISTINGS_MAX + 3}`);
      expect(m['listedEntries']).toBe(LISTINGS_MAX * 10);
      // The same listing again is the same remembered object; a new one for a path replaces it.
      const l = listing(3);
      expect(remember('/x', l)).toBe(remember('/x', l));
      remember('/x', listing(4));
      expect(m['listedEntries']).toBe((LISTINGS_MAX - 1) * 10 + 4);
    } finally {
      await t.close();
    }
  });
});
