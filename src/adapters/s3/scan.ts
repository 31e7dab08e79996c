/**
 * Bounded key-range walks over the S3 keyspace: skip-scans that visit one key
 * per bucket / generation / object / child name and jump over the rest.
 */
import { nextKey, prefixEnd, type SnapshotView } from '../../source/range.js';

/**
 * Walk [start, end) keys-only; `visit` returns the key to continue from (a skip
 * target past the current key) or null to go on with the next key.
 */
export async function skipScan(view: SnapshotView, start: Buffer, end: Buffer | null, visit: (key: Buffer) => Buffer | null | Promise<Buffer | null>, pageSize?: number): Promise<void> {
  const limit = pageSize ?? view.pageSize;
  let cursor = start;
  for (;;) {
    const page = await view.page(cursor, end, limit, true);
    let skipTo: Buffer | null = null;
    for (const kv of page) {
      if (skipTo && Buffer.compare(kv.key, skipTo) < 0) continue;
      const s = await visit(kv.key);
      if (s) {
        skipTo = s;
        // A skip past the page's end: fetch the next page from there.
      }
    }
    if (page.length < limit) return;
    const after = nextKey(page[page.length - 1]!.key);
    cursor = skipTo && Buffer.compare(skipTo, after) > 0 ? skipTo : after;
    if (end && Buffer.compare(cursor, end) >= 0) return;
  }
}

/** First key in [start, end) or null. */
export async function firstKey(view: SnapshotView, start: Buffer, end: Buffer | null): Promise<Buffer | null> {
  const page = await view.page(start, end, 1, true);
  return page.length ? page[0]!.key : null;
}

/** Any key with this prefix? */
export async function hasPrefix(view: SnapshotView, prefix: Buffer): Promise<boolean> {
  return (await firstKey(view, prefix, prefixEnd(prefix))) !== null;
}

/** prefixEnd that never returns null for our (non-0xFF-terminated) prefixes. */
export function endOf(prefix: Buffer): Buffer | null {
  return prefixEnd(prefix);
}
