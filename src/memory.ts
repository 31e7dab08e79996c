/**
 * The heap governor. V8 sizes its old generation by how fast the program allocates,
 * and a full copy through the mount allocates fast: every file's node, listing and
 * rendered bytes live long enough to be promoted, then are evicted. Left alone, V8
 * lets the heap grow to three or four times what is live before it collects (about
 * 270 MiB used for 90 MiB live after a tar of the bench tree), and the Buffers those
 * dead objects hold stay allocated until it does.
 *
 * So while the daemon is busy, a timer compares the heap in use with what was live
 * after the last full collection and collects when it has grown by more than the
 * slack. The heap counts with the memory its objects hold outside it (Buffers' backing
 * stores): a cache entry evicted, or a page read, stays allocated until its Buffer is
 * collected, and the JS heap barely grows for it. A snapshot tar of the bench tree, 5-6
 * runs alternated, peaked at 334-357 MiB counting the heap alone, 329-341 MiB with the
 * Buffers (1-2 collections -> 5-7, 80-110 ms of pauses), in the same time. A
 * collection of a 100 MiB heap pauses the loop for tens of milliseconds; the slack
 * keeps that to a few per second at most. The same idea as GOGC for a Go
 * daemon, with a byte budget instead of a ratio.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';

export interface HeapGovernorStats {
  collections: number;
  pauseMs: number;
  /** Time spent in trim calls. */
  trimMs: number;
  /** Heap bytes, with the external memory of the heap's objects, live after the last collection. */
  liveBytes: number;
}

export interface HeapGovernor {
  readonly stats: HeapGovernorStats;
  /** One check now (the timer calls this). */
  check(): void;
  /** A full collection (and trim) now, whatever the heap's growth. */
  collect(): void;
  stop(): void;
}

let gcFn: (() => void) | null = null;

/**
 * The JS heap in use plus the memory its objects hold outside it (Buffers' backing stores),
 * as Node's ArrayBuffer allocator counts it (memoryUsage().arrayBuffers): that count falls as
 * soon as V8's sweeper thread frees a dead Buffer's store. V8's own external_memory falls only
 * once the main thread finalizes the sweep, at a later collection: right after gc() it still
 * counted every Buffer that collection found dead (200 MiB of 16 KiB Buffers dropped: still
 * 201.6 MiB 100 ms later, while the allocator's count was 0 after 10 ms).
 */
function inUse(): number {
  return getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers;
}

/** V8's full collection, exposed at run time (no --expose-gc on the command line needed). */
function fullGc(): () => void {
  if (!gcFn) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  return gcFn;
}

/** Slack before a collection: a quarter of --cache-size, 32-64 MiB. */
export function heapSlackBytes(cacheBytes: number): number {
  return Math.min(64 << 20, Math.max(32 << 20, Math.floor(cacheBytes / 4)));
}

export interface HeapGovernorOptions {
  slackBytes: number;
  intervalMs?: number;
  log?: Logger;
  /**
   * Called after each collection to hand freed malloc memory back to the kernel
   * (malloc_trim): the Buffers a collection frees leave holes in glibc's heap, which
   * RSS keeps counting otherwise. Returns whether anything was released.
   */
  trim?: () => boolean;
}

/** The running governor's allocation meter (see noteAllocated). */
let meter: { bytes: number; every: number; check: () => void } | null = null;

/**
 * Bytes just allocated outside the JS heap for data (a value read, a page, a rendered file
 * kept): once they come to half the slack since the last check, the governor checks now
 * rather than at its next tick. A copy renders and reads far faster than the tick, and
 * what it allocates between two ticks was garbage the peak carried. With live measured
 * again after the sweeper (collect), a snapshot tar of 1,200 DynamoDB items of 256 KiB at
 * --cache-size 256MiB peaked at 475-500 MiB, against 501-518 with either change alone and
 * 503-512 with neither (the bound is 512); the bench tree's peak is unchanged.
 */
export function noteAllocated(bytes: number): void {
  const m = meter;
  if (m !== null && (m.bytes += bytes) >= m.every) m.check();
}

export function startHeapGovernor(opts: HeapGovernorOptions): HeapGovernor {
  const gc = fullGc();
  const stats: HeapGovernorStats = { collections: 0, pauseMs: 0, trimMs: 0, liveBytes: inUse() };
  let lastUsed = stats.liveBytes;
  const trim = (): void => {
    if (!opts.trim) return;
    const t1 = performance.now();
    opts.trim();
    stats.trimMs += performance.now() - t1;
  };
  const m = { bytes: 0, every: Math.max(1, Math.floor(opts.slackBytes / 2)), check: () => check() };
  const check = (): void => {
    m.bytes = 0;
    const used = inUse();
    const before = lastUsed;
    lastUsed = used;
    if (used <= stats.liveBytes + opts.slackBytes) {
      // V8 collected on its own (or garbage is slow): follow it down, and return what it freed.
      if (used < stats.liveBytes) stats.liveBytes = used;
      if (used < before) trim();
      return;
    }
    collect(used);
  };
  const collect = (used = inUse()): void => {
    const t0 = performance.now();
    gc();
    const ms = performance.now() - t0;
    stats.collections++;
    stats.pauseMs += ms;
    stats.liveBytes = lastUsed = inUse();
    trim();
    // The Buffers the collection found dead are freed by a sweeper thread that may not have
    // finished: right after gc() their bytes still count. Measured again once the loop turns
    // and once more a moment later, what was live is the lowest figure (a tar of 256 KiB items:
    // 376 MiB at once, 304 just after; 200 MiB of 16 KiB Buffers dropped: 184 MiB still counted
    // at once, 155 when the loop turned, none 10 ms later).
    const again = (): void => {
      const later = inUse();
      if (later >= stats.liveBytes) return;
      stats.liveBytes = later;
      trim();
    };
    setImmediate(again);
    setTimeout(again, 20).unref();
    opts.log?.debug({ used_mib: +(used / 2 ** 20).toFixed(1), live_mib: +(stats.liveBytes / 2 ** 20).toFixed(1), pause_ms: +ms.toFixed(1), trim_ms_total: Math.round(stats.trimMs) }, 'heap collected');
  };
  const iv = setInterval(check, opts.intervalMs ?? 500);
  iv.unref();
  meter = m;
  return {
    stats,
    check,
    collect: () => collect(),
    stop: () => {
      clearInterval(iv);
      if (meter === m) meter = null;
    },
  };
}
