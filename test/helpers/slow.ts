import type { SnapshotSource } from '../../src/source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';

/**
 * Answers after a delay, like a cluster across a network, and records how many requests
 * overlap and how many round trips the longest chain of them took: a request's round is one
 * past the latest round among the requests answered before it was sent.
 */
export class Slow implements PageSource {
  inFlight = 0;
  maxInFlight = 0;
  /** The highest round answered so far, and the highest of any request. */
  private answeredRound = 0;
  rounds = 0;
  /** Keys of the point reads asked, in order. */
  readonly gets: string[] = [];
  readonly label: string;
  constructor(private readonly inner: SnapshotSource) {
    this.label = inner.label;
  }
  /** Start counting afresh (rounds, overlap and reads) for the next operation. */
  reset(): void {
    this.answeredRound = this.rounds = this.maxInFlight = 0;
    this.gets.length = 0;
  }
  private async slow<T>(f: () => Promise<T>): Promise<T> {
    const round = this.answeredRound + 1;
    this.rounds = Math.max(this.rounds, round);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      await new Promise((r) => setTimeout(r, 20));
      return await f();
    } finally {
      this.inFlight--;
      this.answeredRound = Math.max(this.answeredRound, round);
    }
  }
  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    return this.slow(() => this.inner.scanPage(start, end, ts, opts));
  }
  get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    this.gets.push(key.toString('latin1'));
    return this.slow(() => this.inner.get(key, ts));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
