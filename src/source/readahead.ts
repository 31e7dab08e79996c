/**
 * Read-ahead for point reads over a remote source. `cp -r`/`tar` walk the tree in
 * key order, so their point reads ascend: after a few ascending gets, a miss
 * fetches a scan page of the next keys (with values) instead of one key, and the
 * following gets are answered from it. Random access keeps plain point reads.
 *
 * FUSE asks in parallel (readdirplus, the kernel's multi-threaded lookups, the
 * cross-file read-ahead), so gets for the next keys arrive while the page that
 * will answer them is still on the wire: a get waits for an in-flight page that
 * starts at or below its key before it counts as a miss. And once a stream reads
 * past the first eighth of a page, the page after it is fetched in the background,
 * so a sequential reader does not stall on one round trip per page, and the source
 * makes the next page while the reader is in this one (see FOLLOW_AT_SHIFT).
 *
 * The window doubles while gets ascend (up to maxWindow keys) and is sized so
 * one page carries about targetBytes of values; cached pages are bounded in
 * bytes. A page answers exactly what a get would: it is a scan of [key, …) at
 * the same ts, so a key inside its range that is not in it does not exist.
 *
 * Scans use the pages too (see scanPage): the small per-directory and per-record
 * scans of a tree walk are answered from them. Small scans that ascend through
 * one key family (`!hs|fld|…` for one Redis hash after another) become pages of
 * their own, bounded to that family: see scanPage.
 */
import { LRUCache } from 'lru-cache';
import { compareKeys, lowerBound } from './mvcc.js';
import { nextKey, prefixEnd } from './range.js';
import { EMPTY_VALUE, type KV, type PageSource, type ScanPageOptions } from './types.js';

interface Run {
  ts: bigint;
  start: Buffer;
  /** A keys-only page (values empty): it answers keys-only scans only. */
  keysOnly: boolean;
  /** The scan stream whose page this is (its follow-on page is fetched to the same bound). */
  scans?: ScanStream;
  /** The bound the page was asked up to (null: the keyspace end). */
  bound: Buffer | null;
  /** Exclusive end of the covered range; null = to the end of the keyspace. */
  end: Buffer | null;
  kvs: KV[];
  bytes: number;
  /** The page after this one has been requested (by a reader past its first eighth). */
  followed: boolean;
  /** How far into kvs readers have got (index past the furthest key answered). */
  reached: number;
}

/** A page on the wire. */
interface Pending {
  ts: bigint;
  start: Buffer;
  keysOnly: boolean;
  done: Promise<Run>;
}

interface Stream {
  lastKey: Buffer;
  /** Keys the next miss fetches (1 = a plain point read). */
  window: number;
  /** Gets answered from this stream's pages since its last miss. */
  hits: number;
  used: number;
  /** The page this stream's last miss fetched. */
  lastRun?: Run;
}

/**
 * Small scans ascending through one key family: a Redis tree walk scans the members
 * of one collection after another (`!hs|fld|<k1>…`, `!hs|fld|<k2>…`), each scan
 * short and exhausted, one round trip per file.
 */
interface ScanStream {
  family: Buffer;
  /** The end of the family: pages of this stream never reach past it. */
  familyEnd: Buffer | null;
  lastStart: Buffer;
  /** Ascending small scans seen in a row (pages start after SCAN_STREAM_AFTER). */
  seen: number;
  /** Keys the next page asks for. */
  window: number;
  /** Bytes a key (and value) costs, from the scans and pages seen. */
  bytesPerKey: number;
  used: number;
}

/** Ascending small scans of one family before they turn into pages. */
const SCAN_STREAM_AFTER = 2;
/** The first page of a scan stream (keys); it doubles while pages are used, to maxWindow. */
const SCAN_FIRST_WINDOW = 64;
const MAX_SCAN_STREAMS = 16;
/**
 * Value bytes a page aims at. Each RPC costs the server a share of its own (a live tar of the
 * bench's S3 tree, 524 MB: the dev cluster spent 3.2-3.4 CPU-s on 2 MiB pages, 2.7-2.8 on
 * 4 MiB; 8 MiB pages saved no more and cost the mount 60-100 MiB more peak RSS).
 */
const TARGET_BYTES = 4 << 20;
/** Bytes of pages kept: a reader's page and the one fetched after it, for several readers. */
const CACHE_BYTES = 32 << 20;
/**
 * Pages are held to this share of the cache. A page past half of it was evicted under its
 * reader when the next one arrived, and fetched again: 3-4x the rows of a sequential walk.
 */
const PAGES_PER_CACHE = 8;

/**
 * A key's family: its bytes through the second '|' of an elastickv internal key
 * (`!hs|fld|`, `!ddb|item|`, `!redis|str|`), or null for a key without that shape.
 * Only a read-ahead hint: pages of a family are real scans of a bounded range.
 */
export function keyFamily(key: Buffer): Buffer | null {
  if (key.length === 0 || key[0] !== 0x21 /* '!' */) return null;
  const first = key.indexOf(0x7c, 1);
  if (first < 0 || first > 16) return null;
  const second = key.indexOf(0x7c, first + 1);
  if (second < 0 || second > 32) return null;
  return key.subarray(0, second + 1);
}

/**
 * A reader this far into a page (a 2^-n share of it) has the next page fetched. At half, a
 * source slower than the reader sat idle from handing over a page until the reader was
 * half through it: a live tar of the bench's S3 tree (4 MiB pages of 512 KiB objects) kept
 * the dev cluster 69-73 % busy; at an eighth (one object in), 74-76 %. Time, alternated on
 * this noisy machine: 3 rounds 3.68-4.20 -> 3.29-3.84 s, then 5 rounds (a fresh dev cluster
 * each) median 4.22 -> 4.04 s; the whole live tree, 4 rounds, 9.40-10.28 -> 9.33-9.68 s,
 * then 4 more with no difference. Peak RSS alike.
 */
const FOLLOW_AT_SHIFT = 3;
/**
 * Pages of fewer keys follow at half, as before: only a stream whose pages were used grows
 * its window to this many keys, and a random reader's one- or two-key pages must not turn
 * each get into a second fetch.
 */
const FOLLOW_EARLY_KEYS = 8;

/** Concurrent ascending readers tracked (cp -r, tar, rsync run one; parallel copies several). */
const MAX_STREAMS = 16;
/** In-flight pages tracked (older ones are still awaited by their own gets, just not findable). */
const MAX_PENDING = 32;

export interface ReadAheadOptions {
  /** Largest page a get may turn into (keys). Default 512. */
  maxWindow?: number;
  /** Aim for pages of about this many value bytes (at most cacheBytes / 8). Default 4 MiB. */
  targetBytes?: number;
  /** Bytes of read-ahead pages kept. Default 32 MiB. */
  cacheBytes?: number;
}

export class ReadAheadSource implements PageSource {
  readonly label: string;
  readonly stats = { hits: 0, pages: 0, plainGets: 0, waits: 0, prefetches: 0, scanHits: 0, scanMisses: 0, scanPages: 0 };
  private readonly runs: LRUCache<number, Run>;
  private runSeq = 0;
  private readonly pending = new Set<Pending>();
  /** Recent readers, each an ascending stream of gets (interleaved readers keep their own). */
  private readonly streams: Stream[] = [];
  private readonly scanStreams: ScanStream[] = [];
  /** Value-size hints, ascending by start (see expectValues). */
  private hints: ValueHint[] = [];
  private hintSeq = 0;
  /** Family defaults (expectValues over a whole family): bytes a key, by family prefix (latin1). */
  private readonly familyHints = new Map<string, number>();
  private tick = 0;
  private readonly maxWindow: number;
  private readonly targetBytes: number;

  constructor(
    private readonly inner: PageSource,
    opts: ReadAheadOptions = {},
  ) {
    this.label = inner.label;
    this.maxWindow = opts.maxWindow ?? 512;
    const cacheBytes = opts.cacheBytes ?? CACHE_BYTES;
    this.targetBytes = Math.max(1, Math.min(opts.targetBytes ?? TARGET_BYTES, Math.floor(cacheBytes / PAGES_PER_CACHE)));
    this.runs = new LRUCache<number, Run>({ maxSize: cacheBytes, sizeCalculation: (r) => Math.max(1, r.bytes), maxEntrySize: cacheBytes });
  }

  /**
   * Scans ride the same pages: a tree walk interleaves small scans (does this
   * directory exist, what is in it) with the gets that read its files, and on a
   * remote source each one is a round trip. A scan whose start a cached (or
   * in-flight) page covers is answered from it, chaining pages while they are
   * contiguous, and only the uncovered tail goes to the source. A scan that
   * misses is a plain scan: giving ascending scans value pages of their own cut
   * the Redis subtree's scan RPCs 19.4k -> 450 but made a whole-tree live tar
   * slower (24-26 -> 28.8 s) and its peak RSS grow (418-454 MiB -> 1.44 GiB).
   *
   * What does pay is narrower: small scans (each exhausted, shorter than its
   * limit) that ascend through one key family. After SCAN_STREAM_AFTER of them,
   * a miss fetches a page of the family from the scan's start (bounded to the
   * family, keys-only when the scan is), sized by the bytes a key has cost, and
   * the following scans ride it; a reader past a page's first eighth has the next
   * one fetched. Listings (full pages) and gets are untouched.
   */
  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    const keysOnly = opts.keysOnly ?? false;
    return this.withRun(
      start,
      ts,
      keysOnly,
      (run) => {
        this.stats.scanHits++;
        return this.scanFrom(run, start, end, ts, opts);
      },
      async () => {
        this.stats.scanMisses++;
        const st = this.scanStreamFor(start, end);
        if (st && st.seen >= SCAN_STREAM_AFTER) {
          st.lastStart = Buffer.from(start);
          st.used = ++this.tick;
          this.stats.scanPages++;
          const run = await this.fetch(start, st.familyEnd, ts, this.scanWindow(st), keysOnly, null, st).done;
          return this.scanFrom(run, start, end, ts, opts);
        }
        const page = await this.inner.scanPage(start, end, ts, opts);
        if (st) {
          if (page.length < opts.limit) {
            // Small and exhausted: one more step of an ascending walk through the family.
            st.seen++;
            let bytes = 0;
            for (const kv of page) bytes += kv.key.length + kv.value.length + 64;
            if (page.length > 0) st.bytesPerKey = Math.max(st.bytesPerKey, bytes / page.length);
          } else st.seen = 0;
          st.lastStart = Buffer.from(start);
          st.used = ++this.tick;
        }
        return page;
      },
    );
  }

  /**
   * The scan stream a bounded scan inside one key family continues (its last scan
   * started below this one), or a new one; null for a scan across families.
   */
  private scanStreamFor(start: Buffer, end: Buffer | null): ScanStream | null {
    const family = keyFamily(start);
    if (!family || end === null) return null;
    const familyEnd = prefixEnd(family);
    if (familyEnd !== null && compareKeys(end, familyEnd) > 0) return null;
    let st = this.scanStreams.find((s) => s.family.equals(family));
    if (st && compareKeys(st.lastStart, start) >= 0) st.seen = 0; // not ascending: start over
    if (!st) {
      st = { family: Buffer.from(family), familyEnd, lastStart: Buffer.from(start), seen: 0, window: SCAN_FIRST_WINDOW, bytesPerKey: 0, used: ++this.tick };
      if (this.scanStreams.length >= MAX_SCAN_STREAMS) this.scanStreams.sort((a, b) => b.used - a.used).pop();
      this.scanStreams.push(st);
    }
    return st;
  }

  /** Keys a page of `st` asks for: its window, held to about targetBytes by what a key has cost. */
  private scanWindow(st: ScanStream): number {
    const byBytes = st.bytesPerKey > 0 ? Math.floor(this.targetBytes / st.bytesPerKey) : this.maxWindow;
    return Math.max(1, Math.min(st.window, byBytes, this.maxWindow));
  }

  /** The scan answered from `run` on, chaining cached pages, the uncovered tail asked of the source. */
  private async scanFrom(first: Run, start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    const out: KV[] = [];
    for (let run = first, cursor = start; ; ) {
      let i = lowerBound(run.kvs.length, (j) => compareKeys(run.kvs[j]!.key, cursor) < 0);
      for (; i < run.kvs.length && out.length < opts.limit; i++) {
        const kv = run.kvs[i]!;
        if (end !== null && compareKeys(kv.key, end) >= 0) break;
        out.push(opts.keysOnly && kv.value.length > 0 ? { key: kv.key, value: EMPTY_VALUE } : kv);
      }
      if (i > run.reached) run.reached = i;
      if (run.scans) this.follow(run, i, null);
      if (i < run.kvs.length || out.length >= opts.limit || run.end === null || (end !== null && compareKeys(run.end, end) >= 0)) return out;
      cursor = run.end;
      const next = this.find(cursor, ts, opts.keysOnly ?? false);
      if (!next) {
        // The tail no page holds: a short answer from the source means the range is exhausted.
        const rest = await this.inner.scanPage(cursor, end, ts, { limit: opts.limit - out.length, keysOnly: opts.keysOnly });
        for (const kv of rest) out.push(kv);
        return out;
      }
      run = next;
    }
  }

  /**
   * `hit` with the cached page covering `key`, or with an in-flight one that
   * turns out to (each waited on once); else `miss`. Both are called in the same
   * turn as the check that chose them, so a burst of parallel calls sees the page
   * the first of them put on the wire.
   */
  private async withRun<T>(key: Buffer, ts: bigint, keysOnly: boolean, hit: (run: Run) => T | Promise<T>, miss: () => Promise<T>): Promise<T> {
    const waited = new Set<Pending>();
    for (;;) {
      const run = this.find(key, ts, keysOnly);
      if (run) return hit(run);
      const p = this.pendingFor(key, ts, keysOnly);
      if (!p || waited.has(p)) return miss();
      waited.add(p);
      this.stats.waits++;
      const landed = await p.done.catch(() => null);
      if (landed && covers(landed.start, landed.end, key)) return hit(landed);
    }
  }

  /**
   * The covering page among the most recently used few (sequential readers hit the
   * newest); a keys-only page only when the caller wants keys only.
   */
  private find(key: Buffer, ts: bigint, keysOnly: boolean): Run | null {
    let looked = 0;
    for (const r of this.runs.values()) {
      if (r.ts === ts && (keysOnly || !r.keysOnly) && covers(r.start, r.end, key)) return r;
      if (++looked >= 16) break;
    }
    return null;
  }

  /** The in-flight page most likely to hold `key`: the one starting closest at or below it. */
  private pendingFor(key: Buffer, ts: bigint, keysOnly: boolean): Pending | null {
    let best: Pending | null = null;
    for (const p of this.pending) {
      if (p.ts === ts && (keysOnly || !p.keysOnly) && compareKeys(p.start, key) <= 0 && (!best || compareKeys(p.start, best.start) > 0)) best = p;
    }
    return best;
  }

  /** The stream whose last key is the closest below `key`. */
  private closestStream(key: Buffer): Stream | null {
    let best: Stream | null = null;
    for (const st of this.streams) if (compareKeys(st.lastKey, key) < 0 && (!best || compareKeys(st.lastKey, best.lastKey) > 0)) best = st;
    return best;
  }

  /** The stream this missing get continues (or a new one), its window adjusted. */
  private streamForMiss(key: Buffer): Stream {
    let best = this.closestStream(key);
    if (!best) {
      best = { lastKey: key, window: 1, hits: 0, used: 0 };
      if (this.streams.length >= MAX_STREAMS) this.streams.sort((a, b) => b.used - a.used).pop();
      this.streams.push(best);
    } else if (!sameFamily(best.lastKey, key)) {
      // Into another key family: what a key costs there is not known yet, so the window starts
      // over. (A CHECKSUMS walk over a live mount went from Redis members, 512 keys a page,
      // straight into S3 object chunks: one page asked for 512 chunks of 512 KiB, and the
      // daemon peaked at 932 MiB.)
      best.window = 1;
    } else {
      // Grow only while read-ahead pays off: the last page was used, by later gets or by
      // readers (scans included) past its half, or this is the first step.
      const used = best.hits > 0 || (best.lastRun !== undefined && best.lastRun.reached * 2 > best.lastRun.kvs.length);
      best.window = used || best.window === 1 ? Math.min(this.maxWindow, best.window * 2) : 1;
    }
    best.hits = 0;
    best.lastRun = undefined;
    best.lastKey = Buffer.from(key);
    best.used = ++this.tick;
    return best;
  }

  /**
   * Fetch the page [start, bound) of `limit` keys for a get stream (`st`) or a scan
   * stream (`scans`, whose bytes a key it updates); it is findable while in flight and
   * cached once here.
   */
  private fetch(start: Buffer, bound: Buffer | null, ts: bigint, limit: number, keysOnly: boolean, st: Stream | null, scans?: ScanStream): Pending {
    if (!keysOnly && (this.hints.length > 0 || this.familyHints.size > 0)) ({ bound, limit } = this.hinted(start, bound, limit));
    const p: Pending = {
      ts,
      start: Buffer.from(start),
      keysOnly,
      done: this.inner.scanPage(start, bound, ts, { limit, keysOnly }).then(
        (kvs) => {
          this.pending.delete(p);
          this.stats.pages++;
          let bytes = 0;
          for (const kv of kvs) bytes += kv.key.length + kv.value.length + 64;
          // Large values: shrink the window so a page stays near targetBytes.
          if (st && kvs.length > 0 && bytes > this.targetBytes) st.window = Math.max(1, Math.floor((limit * this.targetBytes) / bytes));
          if (scans && kvs.length > 0) scans.bytesPerKey = bytes / kvs.length;
          const r: Run = { ts, start: p.start, keysOnly, scans, bound, end: kvs.length < limit ? bound : nextKey(kvs[kvs.length - 1]!.key), kvs, bytes, followed: false, reached: 0 };
          if (st) st.lastRun = r;
          this.runs.set(++this.runSeq, r);
          return r;
        },
        (e: unknown) => {
          this.pending.delete(p);
          throw e;
        },
      ),
    };
    if (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.values().next().value!);
    this.pending.add(p);
    return p;
  }

  private answer(run: Run, key: Buffer, st: Stream | null): Buffer | null {
    const i = lowerBound(run.kvs.length, (j) => compareKeys(run.kvs[j]!.key, key) < 0);
    const kv = run.kvs[i];
    if (i >= run.reached) run.reached = i + 1;
    this.follow(run, i, st);
    return kv && compareKeys(kv.key, key) === 0 ? kv.value : null;
  }

  /**
   * A reader at index `i` of a page: once past its first eighth, fetch the next page
   * (of the get stream `st`, or of the page's scan stream) before it is needed.
   */
  private follow(run: Run, i: number, st: Stream | null): void {
    const n = run.kvs.length;
    if (run.end === null || run.followed || i < (n >= FOLLOW_EARLY_KEYS ? n >> FOLLOW_AT_SHIFT : n >> 1)) return;
    if (run.bound !== null && compareKeys(run.end, run.bound) >= 0) return; // the family is exhausted
    run.followed = true;
    const scans = run.scans;
    if (!scans && !(st && st.window > 1)) return;
    if (this.find(run.end, run.ts, run.keysOnly) || this.pendingAt(run.end, run.ts)) return;
    this.stats.prefetches++;
    // The stream lives on its pages: let them grow as a missing read would have.
    let limit: number;
    if (scans) {
      scans.window = Math.min(this.maxWindow, scans.window * 2);
      limit = this.scanWindow(scans);
    } else {
      st!.window = Math.min(this.maxWindow, st!.window * 2);
      limit = st!.window;
    }
    this.fetch(run.end, run.bound, run.ts, limit, run.keysOnly, st, scans).done.catch(() => {
      /* a failed prefetch is only a lost hint; the read that needs the key asks again */
    });
  }

  private pendingAt(start: Buffer, ts: bigint): boolean {
    for (const p of this.pending) if (p.ts === ts && compareKeys(p.start, start) === 0) return true;
    return false;
  }

  /** Count a hit on the stream it continues; returns that stream. */
  private noteHit(key: Buffer): Stream | null {
    const st = this.closestStream(key);
    if (st) {
      st.lastKey = Buffer.from(key);
      st.used = ++this.tick;
      st.hits++;
    }
    return st;
  }

  get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    // A hit, or a page on the wire that may hold the key. A burst of gets ahead of the
    // stream rides a chain of pages, each doubling, rather than each missing on its own.
    return this.withRun(
      key,
      ts,
      false,
      (run) => {
        this.stats.hits++;
        return this.answer(run, key, this.noteHit(key));
      },
      async () => {
        const st = this.streamForMiss(key);
        if (st.window <= 1) {
          this.stats.plainGets++;
          return this.inner.get(key, ts);
        }
        // Bounded to the key's family: a page never runs on into the next family's values.
        const family = keyFamily(key);
        const run = await this.fetch(key, family ? prefixEnd(family) : null, ts, st.window, false, st).done;
        return this.answer(run, key, st);
      },
    );
  }

  /**
   * Value-size hints (PageSource.expectValues), by start (see hinted): a get stream grown to
   * 512 keys on small S3 objects otherwise asks its next page across an object of 1 MiB
   * chunks, 512 MiB at once.
   */
  expectValues(start: Buffer, end: Buffer | null, bytesPerKey: number): void {
    const family = keyFamily(start);
    if (family !== null && family.length === start.length && sameEnd(end, prefixEnd(family))) {
      this.familyHints.set(family.toString('latin1'), Math.max(1, bytesPerKey));
      return;
    }
    const at = lowerBound(this.hints.length, (i) => compareKeys(this.hints[i]!.start, start) < 0);
    const h: ValueHint = { start: Buffer.from(start), end: end && Buffer.from(end), bytes: Math.max(1, bytesPerKey), seq: ++this.hintSeq };
    if (at < this.hints.length && this.hints[at]!.start.equals(start)) this.hints[at] = h;
    else this.hints.splice(at, 0, h);
    if (this.hints.length > MAX_HINTS) {
      // The older half goes at once: one pass every MAX_HINTS / 2 hints, not one a hint.
      const keepAfter = this.hintSeq - (MAX_HINTS >> 1);
      this.hints = this.hints.filter((x) => x.seq > keepAfter);
    }
  }

  /**
   * A page of values from `start`: its bound and limit after the hints (see expectValues).
   * Inside a hinted range the page asks for no more keys than targetBytes of its values; it
   * stops before a hinted range ahead whose values, that many keys of them, would come to
   * more than twice targetBytes (a page of small values must not run on into big ones).
   */
  private hinted(start: Buffer, bound: Buffer | null, limit: number): { bound: Buffer | null; limit: number } {
    let i = lowerBound(this.hints.length, (j) => compareKeys(this.hints[j]!.start, start) <= 0) - 1;
    const inside = i >= 0 ? this.hints[i]! : null;
    let bytes = inside && (inside.end === null || compareKeys(start, inside.end) < 0) ? inside.bytes : 0;
    if (bytes === 0 && this.familyHints.size > 0) {
      const family = keyFamily(start);
      bytes = (family && this.familyHints.get(family.toString('latin1'))) ?? 0;
    }
    if (bytes > 0) limit = Math.max(1, Math.min(limit, Math.floor(this.targetBytes / bytes)));
    for (let seen = 0; ++i < this.hints.length && seen < HINTS_LOOKED_AHEAD; seen++) {
      const h = this.hints[i]!;
      if (bound !== null && compareKeys(h.start, bound) >= 0) break;
      if (limit * h.bytes > 2 * this.targetBytes) return { bound: h.start, limit };
    }
    return { bound, limit };
  }

  sent(): Promise<void> {
    return this.inner.sent?.() ?? Promise.resolve();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface ValueHint {
  start: Buffer;
  end: Buffer | null;
  bytes: number;
  seq: number;
}

/** Value-size hints kept (an S3 object with large chunks each; the oldest go first). */
const MAX_HINTS = 4096;
/** Hinted ranges ahead of a page's start that it looks at (a page's keys rarely reach further). */
const HINTS_LOOKED_AHEAD = 64;

/** Whether two keys are of one key family (see keyFamily; keys of no family are of one). */
function sameFamily(a: Buffer, b: Buffer): boolean {
  const fa = keyFamily(a);
  const fb = keyFamily(b);
  return fa === null || fb === null ? fa === fb : fa.equals(fb);
}

function sameEnd(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

function covers(start: Buffer, end: Buffer | null, key: Buffer): boolean {
  return compareKeys(start, key) <= 0 && (end === null || compareKeys(key, end) < 0);
}
