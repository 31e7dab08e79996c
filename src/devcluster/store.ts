/**
 * The dev cluster's store: what RawKV reads and RawPut/RawDelete write.
 *
 * Serving an .fsm, the data stays in the file: the snapshot reader's index is the
 * base, and writes made while serving go to a small in-memory overlay above it.
 * Loading every entry into a MemorySource instead kept ~1.7M objects on the heap
 * (344k keys of the bench's live.fsm), and every major collection marked them: a
 * copy through the mount set off one every ~200 ms, each ~60-80 ms of marking,
 * and the server's CPU for the same copy swung between 3 and 12 s.
 */
import { compareKeys, isLive, type Version } from '../source/mvcc.js';
import { MemorySource } from '../source/memory.js';
import { nextKey } from '../source/range.js';
import { SnapshotSource } from '../source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../source/types.js';

export interface DevStore extends PageSource {
  /** Insert one version. */
  put(key: Buffer, value: Buffer, commitTS: bigint, opts?: { tombstone?: boolean; expireAt?: bigint }): void;
  /** Drop versions that no reader at or above `watermark` can see. */
  compact(watermark: bigint): void;
  /** Keys (or entries) held, for logs. */
  readonly size: number;
}

const EMPTY = Buffer.alloc(0);
/** What the overlay says of a key at a ts: its visible version, hidden (a tombstone or expired), or nothing (ask the base). */
const BASE = Symbol('base');
const HIDDEN = Symbol('hidden');

function overlayAt(versions: readonly Version[], ts: bigint): Version | typeof BASE | typeof HIDDEN {
  for (const v of versions) if (v.commitTS <= ts) return isLive(v, ts) ? v : HIDDEN;
  return BASE;
}

/**
 * An immutable base source with a MemorySource overlay of later writes. Overlay
 * versions are newer than anything in the base (they are written at the cluster's
 * HLC, which starts past the base's newest commit), so for a key the overlay
 * holds a version at or below ts, the overlay decides; otherwise the base does.
 */
export class LayeredStore implements DevStore {
  readonly label: string;
  private readonly overlay = new MemorySource('overlay');

  constructor(
    private readonly base: PageSource,
    private readonly baseEntries: number,
  ) {
    this.label = base.label;
  }

  /** Serve an .fsm file: its index as the base; returns the newest commit ts in it. */
  static async openSnapshot(path: string): Promise<{ store: LayeredStore; lastCommitTS: bigint }> {
    const src = await SnapshotSource.open(path);
    return { store: new LayeredStore(src, src.stats.entries), lastCommitTS: src.maxCommitTS };
  }

  get size(): number {
    return this.baseEntries + this.overlay.size;
  }

  put(key: Buffer, value: Buffer, commitTS: bigint, opts: { tombstone?: boolean; expireAt?: bigint } = {}): void {
    this.overlay.put(key, value, commitTS, opts);
  }

  compact(watermark: bigint): void {
    // The base's older versions stay: reads below the watermark are refused before they get here.
    this.overlay.compact(watermark);
  }

  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    const o = overlayAt(this.overlay.versionsOf(key), ts);
    if (o === BASE) return this.base.get(key, ts);
    return o === HIDDEN ? null : o.value;
  }

  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    if (this.overlay.size === 0) return this.base.scanPage(start, end, ts, opts);
    const keysOnly = opts.keysOnly ?? false;
    const out: KV[] = [];
    for (let cursor = start; out.length < opts.limit; ) {
      const want = opts.limit - out.length;
      const page = await this.base.scanPage(cursor, end, ts, { limit: want, keysOnly });
      const exhausted = page.length < want;
      // The range this base page answers for: to `end` when short, else through its last key.
      const covered = exhausted ? end : nextKey(page[page.length - 1]!.key);
      const rows = this.overlay.versionsIn(cursor, covered);
      let i = 0;
      let j = 0;
      while ((i < page.length || j < rows.length) && out.length < opts.limit) {
        const c = i >= page.length ? 1 : j >= rows.length ? -1 : compareKeys(page[i]!.key, rows[j]!.key);
        if (c < 0) {
          out.push(page[i++]!);
          continue;
        }
        const row = rows[j++]!;
        const baseKv = c === 0 ? page[i++]! : null;
        const o = overlayAt(row.versions, ts);
        if (o === BASE) {
          if (baseKv) out.push(baseKv);
        } else if (o !== HIDDEN) out.push({ key: row.key, value: keysOnly ? EMPTY : o.value });
      }
      if (exhausted || out.length >= opts.limit) break;
      cursor = covered!;
    }
    return out;
  }

  close(): Promise<void> {
    return this.base.close();
  }
}
