/**
 * MVCC facts shared by every source: the store's encoded key is
 * <userKey><^commitTS as 8 bytes big-endian>, the encoded value is
 * <flags(1)><expireAt(8 LE)><body>. A version is visible at ts when
 * commitTS <= ts, it is not a tombstone, and expireAt is 0 or > ts.
 */
export const TS_SUFFIX_BYTES = 8;
export const VALUE_HEADER_BYTES = 9;
export const FLAG_TOMBSTONE = 0b0000_0001;
export const FLAG_ENC_STATE_MASK = 0b0000_0110;
export const FLAG_RESERVED_MASK = 0b1111_1000;

export interface Version {
  commitTS: bigint;
  tombstone: boolean;
  expireAt: bigint;
  value: Buffer;
}

export function isVisible(v: Pick<Version, 'commitTS' | 'tombstone' | 'expireAt'>, ts: bigint): boolean {
  return v.commitTS <= ts;
}

export function isLive(v: Pick<Version, 'tombstone' | 'expireAt'>, ts: bigint): boolean {
  return !v.tombstone && (v.expireAt === 0n || v.expireAt > ts);
}

const MASK64 = (1n << 64n) - 1n;
export function invertTS(ts: bigint): bigint {
  return ~ts & MASK64;
}

/** Unsigned bytewise comparison (Buffer.compare is exactly that). */
export function compareKeys(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/** First index in [0, n) where `before(i)` is false (`before` must hold for a prefix of the range). */
export function lowerBound(n: number, before: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
