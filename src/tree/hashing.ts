/**
 * The sha256 of whole files served, for CHECKSUMS, taken off the JS thread when that is
 * cheaper: a big file's digest is taken in libuv's thread pool, by the ekvfuse addon when it is
 * loaded (its sha256: Node's own OpenSSL, the file read in place), else by WebCrypto's digest,
 * which copies the file first (~85-185 µs of the JS thread for 512 KiB, against ~365 µs to hash
 * it here; ~20 against ~46 µs at 64 KiB). Only files of OFFTHREAD_MIN bytes or more go; the rest
 * are hashed at once. A copy of a tree of S3 objects hashed about 1 GB/s on the JS thread, which
 * serves FUSE and renders records the rest of the time.
 *
 * Small files stay here even with the addon: sent to it in batches (the files of one turn of
 * the loop, copied into a reused arena), a snapshot tar of the bench tree cost more, not less:
 * the JS thread's user CPU 11.15/11.68 s against 10.41/10.66 s hashing here, the process's
 * 22.5/22.3 against 21.0/20.1 s, peak RSS 339/347 against 330/332 MiB.
 *
 * Bounded: at most JOBS digests run at once (the pool's other threads serve the snapshot's
 * reads), and files wait for a slot up to QUEUE_BYTES; past that, a file is hashed at once.
 * A digest that fails is simply not known (CHECKSUMS reads that file again).
 */
import { hash } from 'node:crypto';

/** One-shot sha256 on this thread (no Hash object: ~1.0 µs for a 600-byte file against ~1.45). */
const sha256 = (b: Buffer): Buffer => hash('sha256', b, 'buffer');

export const OFFTHREAD_MIN = 128 * 1024;
const JOBS = 2;
const QUEUE_BYTES = 16 << 20;

/**
 * The sha256 of `data` taken off the JS thread, delivered to `done` later (32 bytes); false when
 * the job could not be queued (then `done` is never called). `data` must not change until then.
 */
export type OffThreadSha256 = (data: Buffer, done: (err: string | null, digest: Buffer | null) => void) => boolean;

export interface DigestSink {
  /** A file's digest is known. */
  done(id: number, digest: Buffer): void;
  /** A digest failed (never expected; the file is hashed again when CHECKSUMS needs it). */
  failed(id: number, err: unknown): void;
}

export class DigestQueue {
  /** Files waiting for a slot or being hashed, by path id: settled once their digest is known (or failed). */
  private readonly pending = new Map<number, { promise: Promise<void>; settle: () => void }>();
  private readonly waiting: { id: number; data: Buffer }[] = [];
  private waitingBytes = 0;
  private running = 0;
  private closed = false;
  readonly stats = { offThread: 0, here: 0 };

  constructor(
    private readonly sink: DigestSink,
    private hasher: OffThreadSha256 | null = null,
    private readonly subtle: SubtleCrypto | null = globalThis.crypto?.subtle ?? null,
  ) {}

  /** Whether file `id`'s digest is being taken. */
  has(id: number): boolean {
    return this.pending.has(id);
  }

  /** Settles once file `id`'s digest is known (or failed); undefined when none is being taken. */
  settled(id: number): Promise<void> | undefined {
    return this.pending.get(id)?.promise;
  }

  /** Take the digest of file `id`, whose whole bytes are `data` (immutable: the tree never changes a file's bytes). */
  add(id: number, data: Buffer): void {
    if (this.pending.has(id)) return;
    if (this.closed || (!this.hasher && !this.subtle) || data.length < OFFTHREAD_MIN || this.waitingBytes + data.length > QUEUE_BYTES) {
      this.stats.here++;
      this.sink.done(id, sha256(data));
      return;
    }
    let settle!: () => void;
    const promise = new Promise<void>((r) => (settle = r));
    this.pending.set(id, { promise, settle });
    this.waiting.push({ id, data });
    this.waitingBytes += data.length;
    this.pump();
  }

  private pump(): void {
    while (this.running < JOBS && this.waiting.length > 0) {
      const { id, data } = this.waiting.shift()!;
      this.running++;
      this.stats.offThread++;
      void this.run(id, data);
      // The job holds `data` (read in place, or WebCrypto's copy): counted as waiting no more.
      this.waitingBytes -= data.length;
    }
  }

  /** The digest of one file, by the addon (read in place) or else WebCrypto (a copy); the job starts before this returns. */
  private digest(data: Buffer): Promise<Buffer> {
    const hasher = this.hasher;
    if (hasher) {
      let queued = false;
      const p = new Promise<Buffer>((resolve, reject) => {
        try {
          queued = hasher(data, (err, digest) => (err !== null || digest === null || digest.length !== 32 ? reject(new Error(err ?? 'sha256: no digest')) : resolve(digest)));
        } catch {
          /* as not queued */
        }
      });
      if (queued) return p;
      // The addon cannot take jobs (no SHA256 in this process): WebCrypto, or here, from now on.
      this.hasher = null;
      if (!this.subtle) return Promise.resolve(sha256(data));
    }
    return this.subtle!.digest('SHA-256', data as Uint8Array<ArrayBuffer>).then((ab) => Buffer.from(ab));
  }

  private async run(id: number, data: Buffer): Promise<void> {
    try {
      const d = await this.digest(data);
      if (!this.closed) this.sink.done(id, d);
    } catch (e) {
      if (!this.closed) this.sink.failed(id, e);
    } finally {
      this.running--;
      const p = this.pending.get(id);
      this.pending.delete(id);
      p?.settle();
      this.pump();
    }
  }

  /** No more digests are recorded; files still waiting are dropped (their waiters are settled). */
  close(): void {
    this.closed = true;
    for (const { id } of this.waiting.splice(0)) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      p?.settle();
    }
    this.waitingBytes = 0;
  }
}
