/**
 * Read-ahead for point reads over a remote source. `cp -r`/`tar` walk the tree in
 * key order, so their point reads ascend: after a few ascending gets, a miss
 * fetches a scan page of the next keys (with values) instead of one key, and the
 * following gets are answered from it. Random access keeps plain point reads.
 *
 * The window doubles while gets ascend (up to maxWindow keys) and is sized so
 * one page carries about targetBytes of values; cached pages are bounded in
 * bytes. A page answers exactly what a get would: it is a scan of [key, …) at
 * the same ts, so a key inside its range that is not in it does not exist.
 */
import { LRUCache } from 'lru-cache';
import { compareKeys, lowerBound } from './mvcc.js';
import { nextKey } from './range.js';
import type { KV, PageSource, ScanPageOptions } from './types.js';

interface Run {
  ts: bigint;
  start: Buffer;
  /** Exclusive end of the covered range; null = to the end of the keyspace. */
  end: Buffer | null;
  kvs: KV[];
  bytes: number;
}

interface Stream {
  lastKey: Buffer;
  /** Keys the next miss fetches (1 = a plain point read). */
  window: number;
  /** Gets answered from this stream's pages since its last miss. */
  hits: number;
  used: number;
}

/** Concurrent ascending readers tracked (cp -r, tar, rsync run one; parallel copies several). */
const MAX_STREAMS = 16;

export interface ReadAheadOptions {
  /** Largest page a get may turn into (keys). Default 128. */
  maxWindow?: number;
  /** Aim for pages of about this many value bytes. Default 2 MiB. */
  targetBytes?: number;
  /** Bytes of read-ahead pages kept. Default 32 MiB. */
  cacheBytes?: number;
}

export class ReadAheadSource implements PageSource {
  readonly label: string;
  readonly stats = { hits: 0, pages: 0, plainGets: 0 };
  private readonly runs: LRUCache<number, Run>;
  private runSeq = 0;
  /** Recent readers, each an ascending stream of gets (interleaved readers keep their own). */
  private readonly streams: Stream[] = [];
  private tick = 0;
  private readonly maxWindow: number;
  private readonly targetBytes: number;

  constructor(
    private readonly inner: PageSource,
    opts: ReadAheadOptions = {},
  ) {
    this.label = inner.label;
    this.maxWindow = opts.maxWindow ?? 128;
    this.targetBytes = opts.targetBytes ?? 2 << 20;
    const cacheBytes = opts.cacheBytes ?? 32 << 20;
    this.runs = new LRUCache<number, Run>({ maxSize: cacheBytes, sizeCalculation: (r) => Math.max(1, r.bytes), maxEntrySize: cacheBytes });
  }

  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    return this.inner.scanPage(start, end, ts, opts);
  }

  /** The covering page among the most recently used few (sequential readers hit the newest). */
  private find(key: Buffer, ts: bigint): Run | null {
    let looked = 0;
    for (const r of this.runs.values()) {
      if (r.ts === ts && compareKeys(r.start, key) <= 0 && (r.end === null || compareKeys(key, r.end) < 0)) return r;
      if (++looked >= 16) break;
    }
    return null;
  }

  /** The stream this get continues: the one whose last key is the closest below it. */
  private stream(key: Buffer): Stream {
    let best: Stream | null = null;
    for (const st of this.streams) {
      if (compareKeys(st.lastKey, key) < 0 && (!best || compareKeys(st.lastKey, best.lastKey) > 0)) best = st;
    }
    if (!best) {
      best = { lastKey: key, window: 1, hits: 0, used: 0 };
      if (this.streams.length >= MAX_STREAMS) this.streams.sort((a, b) => b.used - a.used).pop();
      this.streams.push(best);
    } else {
      // Grow only while read-ahead pays off: the last page was used (or this is the first step).
      best.window = best.hits > 0 || best.window === 1 ? Math.min(this.maxWindow, best.window * 2) : 1;
    }
    best.hits = 0;
    best.lastKey = Buffer.from(key);
    best.used = ++this.tick;
    return best;
  }

  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    const run = this.find(key, ts);
    if (run) {
      const st = this.streamFor(key);
      if (st) {
        st.lastKey = Buffer.from(key);
        st.used = ++this.tick;
        st.hits++;
      }
      this.stats.hits++;
      const kv = run.kvs[lowerBound(run.kvs.length, (i) => compareKeys(run.kvs[i]!.key, key) < 0)];
      return kv && compareKeys(kv.key, key) === 0 ? Buffer.from(kv.value) : null;
    }
    const st = this.stream(key);
    if (st.window <= 1) {
      this.stats.plainGets++;
      return this.inner.get(key, ts);
    }
    const limit = st.window;
    const kvs = await this.inner.scanPage(key, null, ts, { limit, keysOnly: false });
    this.stats.pages++;
    let bytes = 0;
    for (const kv of kvs) bytes += kv.key.length + kv.value.length + 64;
    // Large values: shrink the window so a page stays near targetBytes.
    if (kvs.length > 0 && bytes > this.targetBytes) st.window = Math.max(1, Math.floor((st.window * this.targetBytes) / bytes));
    const r: Run = { ts, start: Buffer.from(key), end: kvs.length < limit ? null : nextKey(kvs[kvs.length - 1]!.key), kvs, bytes };
    this.runs.set(++this.runSeq, r);
    const first = kvs[0];
    return first && compareKeys(first.key, key) === 0 ? first.value : null;
  }

  /** The stream whose last key is the closest below `key` (no new stream). */
  private streamFor(key: Buffer): Stream | null {
    let best: Stream | null = null;
    for (const st of this.streams) if (compareKeys(st.lastKey, key) < 0 && (!best || compareKeys(st.lastKey, best.lastKey) > 0)) best = st;
    return best;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
