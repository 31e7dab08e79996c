/**
 * The sha256 of whole files served, for CHECKSUMS, taken off the JS thread when that is
 * cheaper: WebCrypto's digest runs in libuv's thread pool. Handing a buffer over costs the
 * JS thread a copy and a job (~85 µs for 512 KiB against ~365 µs to hash it here; ~20 against
 * ~46 µs at 64 KiB), so only files of OFFTHREAD_MIN bytes or more go; the rest are hashed at
 * once. A copy of a tree of S3 objects hashed about 1 GB/s on the JS thread, which serves
 * FUSE and renders records the rest of the time.
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
    if (this.closed || !this.subtle || data.length < OFFTHREAD_MIN || this.waitingBytes + data.length > QUEUE_BYTES) {
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
      // The job copied `data` before its first await: what waits is free of it now.
      this.waitingBytes -= data.length;
    }
  }

  private async run(id: number, data: Buffer): Promise<void> {
    try {
      const ab = await this.subtle!.digest('SHA-256', data as Uint8Array<ArrayBuffer>);
      if (!this.closed) this.sink.done(id, Buffer.from(ab));
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
