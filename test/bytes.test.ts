import { describe, expect, it } from 'vitest';
import { ownedCopy, retainedBytes, VIEW_MIN } from '../src/bytes.js';

describe('ownedCopy', () => {
  it('a small Buffer from the shared pool becomes an allocation of its own size', () => {
    const pooled = Buffer.from('a-user-key');
    expect(pooled.buffer.byteLength).toBeGreaterThan(1000); // Node's 8 KiB pool slab
    const own = ownedCopy(pooled);
    expect(own.buffer.byteLength).toBe(pooled.length);
    expect(own.equals(pooled)).toBe(true);
    pooled.fill(0);
    expect(own.toString()).toBe('a-user-key');
  });

  it('a view of a large buffer is copied; a buffer owning (most of) its store is kept', () => {
    const big = Buffer.alloc(1 << 20, 1);
    expect(ownedCopy(big.subarray(0, 10_000)).buffer.byteLength).toBe(10_000);
    expect(ownedCopy(big)).toBe(big);
    expect(ownedCopy(big.subarray(0, (1 << 19) - 64))).not.toBe(big);
  });

  it('an empty view pins nothing', () => {
    const big = Buffer.alloc(1 << 20);
    const e = ownedCopy(big.subarray(5, 5));
    expect(e.length).toBe(0);
    expect(e.buffer.byteLength).toBe(0);
    const own = Buffer.alloc(0);
    expect(ownedCopy(own)).toBe(own);
  });
});

describe('retainedBytes', () => {
  it('a big view of a much larger buffer keeps the whole of it; an owned buffer or a small view, its length', () => {
    const msg = Buffer.alloc(4 << 20);
    expect(retainedBytes(msg.subarray(0, 512 << 10))).toBe(4 << 20);
    expect(retainedBytes(msg.subarray(0, (2 << 20) + 100))).toBe((2 << 20) + 100); // most of it
    expect(retainedBytes(msg)).toBe(4 << 20);
    // Small values are copies (wire.ts), pooled or not: counted by their length as before.
    expect(retainedBytes(Buffer.from('v'))).toBe(1);
    expect(retainedBytes(msg.subarray(0, VIEW_MIN - 1))).toBe(VIEW_MIN - 1);
  });
});
