/**
 * Hybrid logical clock in elastickv's layout: physical milliseconds << 16 | logical.
 * Strictly monotonic: every issued timestamp is greater than the previous one.
 */
export const LOGICAL_BITS = 16n;

export function hlcFromMs(ms: number): bigint {
  return BigInt(Math.max(0, Math.floor(ms))) << LOGICAL_BITS;
}

export function hlcToMs(ts: bigint): number {
  return Number(ts >> LOGICAL_BITS);
}

export class Hlc {
  private last: bigint;

  /** `floor`: never issue a timestamp at or below it (e.g. the loaded snapshot's lastCommitTS). */
  constructor(
    floor = 0n,
    private readonly clock: () => number = Date.now,
  ) {
    this.last = floor;
  }

  /** Issue a fresh timestamp (commit ts of a write, GetTimestamp, a backup read_ts). */
  next(): bigint {
    const phys = hlcFromMs(this.clock());
    this.last = phys > this.last ? phys : this.last + 1n;
    return this.last;
  }

  /** The newest timestamp issued so far (what "read now" means); issues one if none yet. */
  current(): bigint {
    return this.last === 0n ? this.next() : this.last;
  }

  /** Raise the floor (loading data with commit timestamps above the clock). */
  observe(ts: bigint): void {
    if (ts > this.last) this.last = ts;
  }
}
