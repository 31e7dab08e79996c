/**
 * The protobuf wire reader every decoder here shares: the DynamoDB schema and
 * item messages, the Redis zset and stream blobs, and the RawKV responses a
 * live mount receives by the hundred thousand.
 *
 * It keeps the Go protobuf runtime's rules, since that runtime wrote (or
 * reads) every message we decode: a varint is at most 10 bytes and its tenth
 * byte at most 1; a tag's field number is 1..2^29-1 and its wire type not 6
 * or 7; a group of unknown fields is skipped up to its matching end-group; an
 * end-group outside a group, a length past the message end, or a truncated
 * field is an error. Anything malformed throws a ProtoError.
 *
 * Tags and lengths are read as plain numbers (exact below 2^53, and any larger
 * value is out of range for both anyway); only a varint field's value is a
 * BigInt, because int64/uint64 fields need all 64 bits.
 */

export class ProtoError extends Error {
  constructor(message: string) {
    super(`protobuf: ${message}`);
    this.name = 'ProtoError';
  }
}

/** Go's default recursion limit for nested messages and groups. */
export const MAX_DEPTH = 10_000;

const NONE: Buffer = Buffer.alloc(0);

export class WireReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end: number = buf.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a number: exact up to 2^53; a larger value comes back inexact but still larger than any tag or length. */
  private num(): number {
    let x = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = this.buf[this.pos++]!;
      if (i === 9 && b > 1) throw new ProtoError('varint overflows 64 bits');
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 128;
    }
    throw new ProtoError('varint overflows 64 bits');
  }

  /** A varint field's value, all 64 bits. */
  varint(): bigint {
    const start = this.pos;
    const small = this.num();
    if (small <= Number.MAX_SAFE_INTEGER) return BigInt(small);
    // Rare: re-read exactly.
    let x = 0n;
    let shift = 0n;
    for (let p = start; p < this.pos; p++) {
      x |= BigInt(this.buf[p]! & 0x7f) << shift;
      shift += 7n;
    }
    return BigInt.asUintN(64, x);
  }

  /** A varint field read as a bool (any non-zero value is true). */
  bool(): boolean {
    return this.num() !== 0;
  }

  /** The next tag (field << 3 | wire type), validated. */
  tag(): number {
    const t = this.num();
    if (t < 8) throw new ProtoError('invalid field number 0');
    if (t > 0xffffffff) throw new ProtoError('field number over 2^29-1');
    const wire = t & 7;
    if (wire === 6 || wire === 7) throw new ProtoError(`invalid wire type ${wire}`);
    return t;
  }

  /** The payload of a length-delimited field as start offset; advances past it. */
  private payload(): number {
    const len = this.num();
    const s = this.pos;
    if (len > this.end - s) throw new ProtoError('length-delimited field past the end of its message');
    this.pos = s + len;
    return s;
  }

  /** A length-delimited payload as a view of the message (valid while the message is). */
  bytes(): Buffer {
    const s = this.payload();
    return this.buf.subarray(s, this.pos);
  }

  /** A length-delimited payload as an owned copy, so keeping it does not pin the message. */
  copy(): Buffer {
    return this.viewOrCopy(Infinity);
  }

  /** A payload of `min` bytes or more as a view of the message, a smaller one as an owned copy. */
  viewOrCopy(min: number): Buffer {
    const s = this.payload();
    const n = this.pos - s;
    if (n >= min) return this.buf.subarray(s, this.pos);
    if (n === 0) return NONE;
    const out = Buffer.allocUnsafe(n);
    this.buf.copy(out, 0, s, this.pos);
    return out;
  }

  /** A length-delimited payload as a reader over it. */
  sub(): WireReader {
    const s = this.payload();
    return new WireReader(this.buf, s, this.pos);
  }

  /** A fixed64 field as a little-endian double. */
  double(): number {
    return this.buf.readDoubleLE(this.fixed(8));
  }

  /**
   * Step over the value of a field this decoder does not take, given its tag.
   * A group is walked with a stack of its open field numbers, not recursion, so
   * no nesting of groups can exhaust the JS stack; `depth` is how deep in
   * messages the field sits, counted toward the same limit Go applies.
   */
  skip(tag: number, depth = 0): void {
    if ((tag & 7) !== 3) {
      this.skipValue(tag);
      return;
    }
    const open = [tag >>> 3];
    while (open.length > 0) {
      if (depth + open.length > MAX_DEPTH) throw new ProtoError('exceeded maximum recursion depth');
      if (this.done()) throw new ProtoError('truncated group');
      const t = this.tag();
      const w = t & 7;
      if (w === 3) open.push(t >>> 3);
      else if (w !== 4) this.skipValue(t);
      else if (open.pop() !== t >>> 3) throw new ProtoError('mismatched end group');
    }
  }

  private skipValue(tag: number): void {
    switch (tag & 7) {
      case 0:
        this.num();
        return;
      case 1:
        this.fixed(8);
        return;
      case 2:
        this.payload();
        return;
      case 5:
        this.fixed(4);
        return;
      default:
        throw new ProtoError('unexpected end group');
    }
  }

  /** Step over a fixed-width value of `n` bytes; returns where it starts. */
  private fixed(n: number): number {
    const s = this.pos;
    if (this.end - s < n) throw new ProtoError('truncated fixed-width field');
    this.pos = s + n;
    return s;
  }
}

/**
 * One reader kept for the life of the process, so V8 keeps its hidden class. Readers live for
 * one message each: with none alive at a full collection, V8 dropped the class, threw away
 * every optimised function that had seen it ("weak objects"), and compiled them all again
 * for the next page: 40-42 times in a live tar of the bench's live dataset, none with this.
 * (Exported only so that it is not an unused local.)
 */
export const KEEP_WIRE_READER_SHAPE = new WireReader(NONE);

/**
 * Visit the fields of one message in wire order; `on` reads the value of a
 * field it takes and returns true, or returns false to have it skipped.
 */
export function eachField(buf: Buffer, depth: number, on: (field: number, wire: number, r: WireReader) => boolean): void {
  if (depth > MAX_DEPTH) throw new ProtoError('exceeded maximum recursion depth');
  const r = new WireReader(buf);
  while (!r.done()) {
    const t = r.tag();
    if (!on(t >>> 3, t & 7, r)) r.skip(t, depth);
  }
}
