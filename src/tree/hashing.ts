/**
 * The sha256 of whole files served, for CHECKSUMS, taken off the JS thread when that is
 * cheaper. Two ways, by what the process has:
 *
 *  - A batch hasher (the ekvfuse addon's sha256Batch, handed in by whoever loaded it): the
 *    files served in one turn of the loop go as one job to libuv's thread pool. Small files
 *    are copied back to back into the job's arena here (a copy of a few hundred bytes costs
 *    less than a napi call per file), big ones are read in place. The JS thread pays
 *    0.6-0.85 µs a small file (150k files of ~560 bytes, 100 a turn), against 1.5-2.0 µs to
 *    hash them itself, and a few µs a job for the big ones, against the ~85-185 µs WebCrypto
 *    costs to take a 512 KiB file, which it copies.
 *  - Without one, WebCrypto's digest (also in the pool) for files of OFFTHREAD_MIN bytes or
 *    more: it copies the buffer first, so smaller files are hashed at once, here.
 *
 * Bounded: at most JOBS jobs run at once (the pool's other threads serve the snapshot's
 * reads), and files wait for a slot up to QUEUE_BYTES; past that, a file is hashed at once.
 * A digest that fails is simply not known (CHECKSUMS reads that file again).
 */
import { hash } from 'node:crypto';

/** One-shot sha256 on this thread (no Hash object: ~1.0 µs for a 600-byte file against ~1.45). */
const sha256 = (b: Buffer): Buffer => hash('sha256', b, 'buffer');

export const OFFTHREAD_MIN = 128 * 1024;
const JOBS = 2;
const QUEUE_BYTES = 16 << 20;
/** Files of at most this many bytes go into a batch's arena (copied); bigger ones are read in place. */
export const ARENA_FILE_MAX = 4096;
/**
 * A batch's arena. The batch is sealed when the next small file does not fit (else at 1024
 * files, 4 MiB, or the end of the loop's turn). Arenas are kept for the next batches once their
 * job is over (at most ARENAS_KEPT): one allocated per batch cost more than hashing here, in GC
 * (V8 counts them as external memory) and in CPU (a snapshot tar of the bench tree: the JS
 * thread's user CPU 12.25/11.33 s hashing here, 13.73/13.03 s with an arena a batch).
 */
const ARENA_BYTES = 256 * 1024;
const ARENAS_KEPT = JOBS + 2;
const BATCH_FILES = 1024;
const BATCH_BYTES = 4 << 20;
const NO_BYTES = Buffer.alloc(0);

/**
 * Hash `nSmall` files laid back to back in `arena` (their lengths in `lens`) and the `bigs`; the
 * digests (32 bytes each, the small files' first, then the big ones', in order) go to `done`
 * later. False when the job could not be queued (then `done` is never called). None of the
 * bytes may change until then.
 */
export type BatchSha256 = (arena: Buffer, lens: Uint32Array, nSmall: number, bigs: Buffer[], done: (err: string | null, digests: Buffer | null) => void) => boolean;

export interface DigestSink {
  /** A file's digest is known. */
  done(id: number, digest: Buffer): void;
  /** A digest failed (never expected; the file is hashed again when CHECKSUMS needs it). */
  failed(id: number, err: unknown): void;
}

/** Files hashed by one job: the small ones in the arena, then the big ones, in the order of their digests. */
interface Batch {
  smallIds: number[];
  arena: Buffer;
  arenaUsed: number;
  lens: Uint32Array;
  bigIds: number[];
  bigs: Buffer[];
  bytes: number;
  /** Settles once the job is over (made when someone waits). */
  over: Promise<void> | null;
  settle: (() => void) | null;
}

/** An arena and its lengths, for a batch's small files. */
interface Arena {
  bytes: Buffer;
  lens: Uint32Array;
}

const NO_ARENA: Arena = { bytes: NO_BYTES, lens: new Uint32Array(0) };

const newBatch = (arena: Arena): Batch => ({
  smallIds: [],
  arena: arena.bytes,
  arenaUsed: 0,
  lens: arena.lens,
  bigIds: [],
  bigs: [],
  bytes: 0,
  over: null,
  settle: null,
});

const filesOf = (b: Batch): number => b.smallIds.length + b.bigIds.length;

export class DigestQueue {
  /** Files waiting for a slot or being hashed, by path id, with their batch. */
  private readonly pending = new Map<number, Batch>();
  /** Batches sealed and waiting for a slot; `open` is the one being filled. */
  private readonly waiting: Batch[] = [];
  private open: Batch | null = null;
  private waitingBytes = 0;
  private running = 0;
  private closed = false;
  private flushScheduled = false;
  /** Arenas whose job is over, for the next batches (see ARENA_BYTES). */
  private readonly arenas: Arena[] = [];
  readonly stats = { offThread: 0, here: 0, jobs: 0 };

  constructor(
    private readonly sink: DigestSink,
    private batch: BatchSha256 | null = null,
    private readonly subtle: SubtleCrypto | null = globalThis.crypto?.subtle ?? null,
  ) {}

  /** Whether file `id`'s digest is being taken. */
  has(id: number): boolean {
    return this.pending.has(id);
  }

  /** Settles once file `id`'s digest is known (or failed); undefined when none is being taken. */
  settled(id: number): Promise<void> | undefined {
    const b = this.pending.get(id);
    if (!b) return undefined;
    b.over ??= new Promise<void>((r) => (b.settle = r));
    return b.over;
  }

  /** Take the digest of file `id`, whose whole bytes are `data` (immutable: the tree never changes a file's bytes). */
  add(id: number, data: Buffer): void {
    if (this.pending.has(id)) return;
    const offThread = this.batch ? true : this.subtle !== null && data.length >= OFFTHREAD_MIN;
    if (this.closed || !offThread || this.waitingBytes + data.length > QUEUE_BYTES) {
      this.stats.here++;
      this.sink.done(id, sha256(data));
      return;
    }
    const small = this.batch !== null && data.length <= ARENA_FILE_MAX;
    let b = this.open;
    if (b && small && b.arenaUsed + data.length > b.arena.length) {
      // Its arena is full: sealed, and this file starts the next one.
      this.open = b = null;
      this.pump();
    }
    if (!b) {
      b = this.open = newBatch(!this.batch ? NO_ARENA : (this.arenas.pop() ?? { bytes: Buffer.allocUnsafeSlow(ARENA_BYTES), lens: new Uint32Array(BATCH_FILES) }));
      this.waiting.push(b);
    }
    if (small) {
      data.copy(b.arena, b.arenaUsed);
      b.arenaUsed += data.length;
      b.lens[b.smallIds.length] = data.length;
      b.smallIds.push(id);
    } else {
      b.bigIds.push(id);
      b.bigs.push(data);
    }
    b.bytes += data.length;
    this.waitingBytes += data.length;
    this.pending.set(id, b);
    // WebCrypto takes one buffer a job; a batch hasher takes the files of this turn of the loop.
    if (!this.batch || filesOf(b) >= BATCH_FILES || b.bytes >= BATCH_BYTES) {
      this.open = null;
      this.pump();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.open = null;
        this.pump();
      });
    }
  }

  private pump(): void {
    while (this.running < JOBS && this.waiting.length > 0 && this.waiting[0] !== this.open) {
      const b = this.waiting.shift()!;
      this.running++;
      this.stats.jobs++;
      this.stats.offThread += filesOf(b);
      if (this.batch) this.runBatch(b);
      else void this.runSubtle(b);
    }
  }

  private runBatch(b: Batch): void {
    const n = filesOf(b);
    let queued = false;
    try {
      queued = this.batch!(b.arena, b.lens, b.smallIds.length, b.bigs, (err, digests) =>
        this.finish(b, err === null && digests !== null && digests.length === 32 * n ? digests : new Error(err ?? 'sha256 batch: wrong digest count')),
      );
    } catch {
      /* as not queued */
    }
    if (queued) return;
    // The hasher cannot take jobs (no SHA256 in this process): these and all later files are hashed here.
    this.batch = null;
    this.stats.offThread -= n;
    this.stats.here += n;
    const parts: Buffer[] = [];
    for (let i = 0, at = 0; i < b.smallIds.length; at += b.lens[i]!, i++) parts.push(sha256(b.arena.subarray(at, at + b.lens[i]!)));
    for (const big of b.bigs) parts.push(sha256(big));
    this.finish(b, Buffer.concat(parts));
  }

  private async runSubtle(b: Batch): Promise<void> {
    let out: Buffer | unknown;
    try {
      out = Buffer.from(await this.subtle!.digest('SHA-256', b.bigs[0]! as Uint8Array<ArrayBuffer>));
    } catch (e) {
      out = e;
    }
    this.finish(b, out);
  }

  /** A job is over: its digests (32 bytes a file, the small files' first) or why it failed. */
  private finish(b: Batch, out: Buffer | unknown): void {
    this.running--;
    this.waitingBytes -= b.bytes;
    const ns = b.smallIds.length;
    for (let i = 0; i < ns + b.bigIds.length; i++) {
      const id = i < ns ? b.smallIds[i]! : b.bigIds[i - ns]!;
      if (this.pending.get(id) === b) this.pending.delete(id);
      if (this.closed) continue;
      try {
        if (out instanceof Buffer) this.sink.done(id, out.subarray(32 * i, 32 * i + 32));
        else this.sink.failed(id, out);
      } catch (e) {
        this.sink.failed(id, e);
      }
    }
    b.bigs.length = 0;
    // The job is over: nothing reads its arena any more.
    if (b.arena.length > 0 && this.arenas.length < ARENAS_KEPT && !this.closed) this.arenas.push({ bytes: b.arena, lens: b.lens });
    b.settle?.();
    this.pump();
  }

  /** No more digests are recorded; files still waiting are dropped (their waiters are settled). */
  close(): void {
    this.closed = true;
    this.open = null;
    for (const b of this.waiting.splice(0)) {
      for (const id of [...b.smallIds, ...b.bigIds]) if (this.pending.get(id) === b) this.pending.delete(id);
      this.waitingBytes -= b.bytes;
      b.bigs.length = 0;
      b.settle?.();
    }
  }
}
