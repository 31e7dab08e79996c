/**
 * The sha256 of whole files served, for CHECKSUMS, taken off the JS thread when that is
 * cheaper. Two ways, by what the process has:
 *
 *  - A batch hasher (the ekvfuse addon's sha256Batch, handed in by whoever loaded it): the
 *    files served in one turn of the loop go as one job to libuv's thread pool, read in place
 *    (small ones copied into the job on the way in). The JS thread pays ~0.6 µs a file, against
 *    ~1-1.8 µs to hash a 600-byte file itself and ~85-185 µs to hand a 512 KiB one to WebCrypto,
 *    which copies it.
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
/** A batch is sealed at this many files or bytes (else at the end of the loop's turn). */
const BATCH_FILES = 1024;
const BATCH_BYTES = 4 << 20;

/**
 * The sha256 of each buffer, in order, 32 bytes each, delivered to `done` later; false when the
 * job could not be queued (then `done` is never called). The buffers must not change until then.
 */
export type BatchSha256 = (bufs: Buffer[], done: (err: string | null, digests: Buffer | null) => void) => boolean;

export interface DigestSink {
  /** A file's digest is known. */
  done(id: number, digest: Buffer): void;
  /** A digest failed (never expected; the file is hashed again when CHECKSUMS needs it). */
  failed(id: number, err: unknown): void;
}

/** Files hashed by one job. */
interface Batch {
  ids: number[];
  bufs: Buffer[];
  bytes: number;
  /** Settles once the job is over (made when someone waits). */
  over: Promise<void> | null;
  settle: (() => void) | null;
}

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
    let b = this.open;
    if (!b) {
      b = this.open = { ids: [], bufs: [], bytes: 0, over: null, settle: null };
      this.waiting.push(b);
    }
    b.ids.push(id);
    b.bufs.push(data);
    b.bytes += data.length;
    this.waitingBytes += data.length;
    this.pending.set(id, b);
    // WebCrypto takes one buffer a job; a batch hasher takes the files of this turn of the loop.
    if (!this.batch || b.ids.length >= BATCH_FILES || b.bytes >= BATCH_BYTES) {
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
      this.stats.offThread += b.ids.length;
      if (this.batch) this.runBatch(b);
      else void this.runSubtle(b);
    }
  }

  private runBatch(b: Batch): void {
    let queued = false;
    try {
      queued = this.batch!(b.bufs, (err, digests) => this.finish(b, err === null && digests !== null && digests.length === 32 * b.ids.length ? digests : new Error(err ?? 'sha256 batch: wrong digest count')));
    } catch {
      /* as not queued */
    }
    if (queued) return;
    // The hasher cannot take jobs (no SHA256 in this process): these and all later files are hashed here.
    this.batch = null;
    this.stats.offThread -= b.ids.length;
    this.stats.here += b.ids.length;
    this.finish(b, Buffer.concat(b.bufs.map(sha256)));
  }

  private async runSubtle(b: Batch): Promise<void> {
    let out: Buffer | unknown;
    try {
      out = Buffer.from(await this.subtle!.digest('SHA-256', b.bufs[0]! as Uint8Array<ArrayBuffer>));
    } catch (e) {
      out = e;
    }
    this.finish(b, out);
  }

  /** A job is over: its digests (32 bytes a file, in order) or why it failed. */
  private finish(b: Batch, out: Buffer | unknown): void {
    this.running--;
    this.waitingBytes -= b.bytes;
    for (let i = 0; i < b.ids.length; i++) {
      const id = b.ids[i]!;
      if (this.pending.get(id) === b) this.pending.delete(id);
      if (this.closed) continue;
      try {
        if (out instanceof Buffer) this.sink.done(id, out.subarray(32 * i, 32 * i + 32));
        else this.sink.failed(id, out);
      } catch (e) {
        this.sink.failed(id, e);
      }
    }
    b.bufs.length = 0;
    b.settle?.();
    this.pump();
  }

  /** No more digests are recorded; files still waiting are dropped (their waiters are settled). */
  close(): void {
    this.closed = true;
    this.open = null;
    for (const b of this.waiting.splice(0)) {
      for (const id of b.ids) if (this.pending.get(id) === b) this.pending.delete(id);
      this.waitingBytes -= b.bytes;
      b.bufs.length = 0;
      b.settle?.();
    }
  }
}
