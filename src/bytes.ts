/**
 * Buffers that outlive the call that made them. Node hands out small Buffers (under 4 KiB:
 * most keys, names and small values) as views of shared 8 KiB pool slabs, so one small
 * Buffer kept in a long-lived structure keeps its whole slab allocated, the other views'
 * garbage included. A cache of a few thousand such keys holds tens of MiB of slabs: the
 * tree's node cache of a Redis directory held 3,788 user keys of ~16 bytes in 29.6 MiB
 * of slabs during a CHECKSUMS build (heap snapshot).
 */

/** `b` when it owns most of its backing store, else a copy in an allocation of its exact size. */
export function ownedCopy(b: Buffer): Buffer {
  if (b.length === 0) return b.buffer.byteLength === 0 ? b : Buffer.alloc(0);
  if (b.buffer.byteLength <= 2 * b.length + 64) return b;
  const out = Buffer.allocUnsafeSlow(b.length);
  b.copy(out);
  return out;
}

/**
 * The bytes that keeping `b` keeps allocated: its whole backing store when `b` is a view of a
 * much larger one (a big value decoded as a view of its scan response, see source/wire.ts),
 * else its length. For caches that bound what they hold in bytes.
 */
export function retainedBytes(b: Buffer): number {
  return b.buffer.byteLength > 2 * b.length + 64 && b.length >= VIEW_MIN ? b.buffer.byteLength : b.length;
}

/** Values of this many bytes or more are decoded as views of their scan response, not copied (source/wire.ts). */
export const VIEW_MIN = 16 * 1024;
