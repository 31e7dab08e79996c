/**
 * Lookups answered ahead, for readers that open files by path in CHECKSUMS order with no
 * listing: `sha256sum -c CHECKSUMS`, the check an operator runs on a backup. Each file then
 * costs a LOOKUP round trip through the JS thread (kernel -> fuse thread -> JS -> kernel), and
 * the reader waits for every one: before this, a check of the bench's live dataset (152k
 * files) took 20 s with both cores under half busy.
 *
 * Once three lookups in a row name files of one directory in ascending order, the walk goes
 * on ahead of the reader in CHECKSUMS order (Tree.walkAfter): each next entry is rendered and
 * handed to the addon with its attributes and bytes (expect), which answers the kernel's
 * LOOKUP of it and the READ after it without a trip here. At most AHEAD_FILES files and
 * AHEAD_BYTES bytes are handed over and not taken yet; each one taken (OP_EXPECTED) lets the
 * walk go one further. A lookup that still reaches us says where the reader is: at or past the
 * walk, the walk skips to it; behind it and not handed over (the reader went back, or
 * elsewhere), the walk stops until three lookups in order start another. Either way what was
 * handed over is dropped (the addon forgets its lookups).
 *
 * Entries the kernel holds already (it would not look them up) are not handed over; neither
 * is a file that fails to render: its lookup comes here and gets the error.
 */
import type { Logger } from 'pino';
import { childPath } from '../tree/paths.js';
import type { Tree, WalkStep } from '../tree/tree.js';

/** Lookups in a row, in one directory, in ascending name order, before the walk starts. */
export const START_AFTER = 3;
/** Files handed over and not taken yet, at most, and their bytes. */
export const AHEAD_FILES = 128;
export const AHEAD_BYTES = 8 << 20;
/** Files larger than this are handed over without their bytes (their READs come to us). */
export const AHEAD_FILE_BYTES = 1 << 20;

/** Files rendered for the window at once (a point read each, on a live mount a round trip). */
export const RENDERS_AT_ONCE = 8;

export interface LookAheadHost {
  /** The kernel holds a lookup of path id `id` (it will not look it up again). */
  held(id: number): boolean;
  /**
   * Hand entry `id` (named `name` in directory `parentId`) to the addon; 0, or an errno
   * (EAGAIN: the addon holds all the bytes it may). The host counts the lookup.
   */
  expect(parentId: number, name: string, id: number, isDir: boolean, size: number, data: Buffer | null): number;
  /** Drop every entry handed over (the addon forgets their lookups). */
  clear(): void;
}

interface Run {
  walk: AsyncGenerator<WalkStep>;
  /** The path (bytes) of the last entry handed over, or that the walk skipped to. */
  last: Buffer;
  /** Skip the walk's entries up to this path (bytes): the reader is past them. */
  skipTo: Buffer | null;
  stopped: boolean;
  /** Resolves the walk's wait for room in the window. */
  wake: (() => void) | null;
}

const bytesOf = (s: string): Buffer => Buffer.from(s, 'utf8');

export class LookAhead {
  private run: Run | null = null;
  /** Files handed over and not taken, in walk order, and their bytes by id. */
  private readonly queue: number[] = [];
  private queueHead = 0;
  private readonly ahead = new Map<number, number>();
  private aheadBytes = 0;
  /** Entries were handed over since the addon's were last dropped. */
  private handedSinceClear = false;
  /** Counts dropHandedOver: a render started before it does not enter the window after it. */
  private epoch = 0;
  /** The last lookup that reached us, and how many in a row named files of its directory in ascending order. */
  private lastDir = '';
  private lastName = '';
  private streak = 0;
  readonly stats = { runs: 0, handedOver: 0, skipped: 0 };

  constructor(
    private readonly tree: Tree,
    private readonly host: LookAheadHost,
    private readonly log?: Logger,
  ) {}

  /** A lookup of file `name` in directory `dir` reached us (the addon had no entry for it). */
  looked(dir: string, name: string, id: number): void {
    const run = this.run;
    if (run) {
      // Handed over a moment after the kernel asked: the walk is right.
      if (this.ahead.has(id)) return;
      const at = bytesOf(childPath(dir, name));
      if (Buffer.compare(at, run.last) >= 0) {
        // The reader caught up with the walk, past everything handed over: the walk goes on from there.
        run.skipTo = at;
        run.last = at;
        this.stats.skipped++;
        this.dropHandedOver();
        run.wake?.();
        return;
      }
      // Behind the walk, not handed over: the reader went back, or elsewhere.
      this.stop();
    }
    this.streak = dir === this.lastDir && Buffer.compare(bytesOf(name), bytesOf(this.lastName)) > 0 ? this.streak + 1 : 1;
    this.lastDir = dir;
    this.lastName = name;
    if (this.streak >= START_AFTER) this.start(childPath(dir, name));
  }

  /** The kernel took entry `id` (answered by the addon). Entries handed over before it were passed by. */
  taken(id: number): void {
    if (!this.ahead.has(id)) return;
    while (this.queueHead < this.queue.length) {
      const q = this.queue[this.queueHead++]!;
      this.aheadBytes -= this.ahead.get(q) ?? 0;
      this.ahead.delete(q);
      if (q === id) break;
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    this.run?.wake?.();
  }

  /** Stop the walk and drop what was handed over. */
  stop(): void {
    const run = this.run;
    this.run = null;
    if (run) {
      run.stopped = true;
      run.wake?.();
      // Ends the walk once it is not running (a generator cannot be returned while it awaits).
      void run.walk.return(undefined).catch(() => {});
    }
    this.dropHandedOver();
    this.streak = 0;
  }

  /** The addon drops every entry handed over (and forgets their lookups); the window is empty. */
  private dropHandedOver(): void {
    if (this.handedSinceClear) this.host.clear();
    this.handedSinceClear = false;
    this.epoch++;
    this.queue.length = 0;
    this.queueHead = 0;
    this.ahead.clear();
    this.aheadBytes = 0;
  }

  private start(path: string): void {
    const run: Run = { walk: this.tree.walkAfter(path), last: bytesOf(path), skipTo: null, stopped: false, wake: null };
    this.run = run;
    this.stats.runs++;
    void this.pump(run);
  }

  private async pump(run: Run): Promise<void> {
    const rendering = new Set<Promise<void>>();
    try {
      for (;;) {
        const step = await run.walk.next();
        if (run.stopped || step.done) break;
        const { parent, parentId, name, id, isDir } = step.value;
        const path = childPath(parent, name);
        const at = bytesOf(path);
        if (run.skipTo) {
          if (Buffer.compare(at, run.skipTo) <= 0) continue;
          run.skipTo = null;
        }
        run.last = at;
        if (this.host.held(id) || parentId === 0) continue;
        if (isDir) {
          // Nothing to render: at once, so its files' entries are never ahead of it.
          if (this.host.expect(parentId, name, id, true, 0, null) === 0) this.handed();
          continue;
        }
        while (!run.stopped && (rendering.size >= RENDERS_AT_ONCE || this.ahead.size >= AHEAD_FILES || this.aheadBytes >= AHEAD_BYTES)) {
          const room = new Promise<void>((resolve) => (run.wake = resolve));
          await (rendering.size >= RENDERS_AT_ONCE ? Promise.race(rendering) : room);
          run.wake = null;
        }
        if (run.stopped) break;
        // In the window from now (in walk order), its bytes counted once it is handed over.
        this.queue.push(id);
        this.ahead.set(id, 0);
        const r = this.handOver(run, this.epoch, parentId, name, id, path)
          .catch((e: unknown) => this.log?.warn({ err: e instanceof Error ? e.message : String(e) }, 'lookup read-ahead: an entry was not handed over'))
          .finally(() => rendering.delete(r));
        rendering.add(r);
      }
    } catch (e) {
      // The walk could not go on (a listing failed, the pin was lost): the reader's lookups come to us.
      this.log?.debug({ err: e instanceof Error ? e.message : String(e) }, 'lookup read-ahead stopped');
    } finally {
      if (this.run === run) this.run = null;
    }
  }

  private handed(): void {
    this.stats.handedOver++;
    this.handedSinceClear = true;
  }

  /** Render file `id` and hand it over; a file that fails to render is left to its own lookup, which reports the error. */
  private async handOver(run: Run, epoch: number, parentId: number, name: string, id: number, path: string): Promise<void> {
    let size = -1;
    let data: Buffer | null = null;
    try {
      size = (await this.tree.getattr(path)).size;
      if (size > 0 && size <= AHEAD_FILE_BYTES) {
        data = this.tree.wholeIfCachedId(id) ?? (await this.tree.read(path, 0, size));
        if (data.length !== size) data = null;
      }
    } catch {
      size = -1; // its own lookup reports the error
    }
    // Still in the window (not passed by, not dropped), and not looked up meanwhile through us.
    const mine = epoch === this.epoch && this.ahead.has(id) && !this.host.held(id);
    const rc = size < 0 || run.stopped || !mine ? -1 : this.host.expect(parentId, name, id, false, size, data);
    if (rc !== 0) {
      // Not handed over: out of the window (EAGAIN: the addon holds its bound of bytes; its lookup comes to us).
      if (mine) this.ahead.delete(id);
      run.wake?.();
      return;
    }
    this.handed();
    const bytes = data?.length ?? 0;
    this.ahead.set(id, bytes);
    this.aheadBytes += bytes;
  }
}
