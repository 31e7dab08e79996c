/**
 * Hand-rolled decoders for the two responses a live mount receives by the
 * hundred thousand: RawScanAtResponse and RawGetResponse (rawkv.proto).
 *
 * The generic loader path decodes every RawKVPair into views of the message,
 * then builds a plain object with a fresh default Buffer per bytes field, and
 * the source copied each key and value once more to own it: six Buffer
 * objects per pair. Here each key and value is copied once out of the message
 * into a Buffer of its own (small ones share Node's allocation pool, as
 * Buffer.from does), so what the caller keeps never pins a whole response.
 *
 * Protobuf rules kept: unknown fields are skipped by wire type; a repeated
 * scalar field seen twice keeps the last value; fields may come in any order.
 * Anything truncated or malformed throws, which grpc-js reports as an
 * INTERNAL "response message parsing error" on the call.
 */

import type { RawGetResponse, RawScanAtResponse } from './cluster.js';
import { EMPTY_VALUE } from './types.js';


class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint that fits in 32 bits unsigned (tags and lengths); larger is malformed here. */
  u32(): number {
    let x = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      if (shift === 28) {
        if (b > 0x0f) throw new Error('protobuf: length or tag over 32 bits');
        return (x + b * 2 ** 28) >>> 0;
      }
      x |= (b & 0x7f) << shift;
      if (b < 0x80) return x >>> 0;
      shift += 7;
    }
  }

  /** A full 64-bit varint. */
  u64(): bigint {
    let x = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      x |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, x);
      shift += 7n;
    }
    throw new Error('protobuf: varint longer than 10 bytes');
  }

  /** Bounds of a length-delimited field's payload; advances past it. */
  span(): [number, number] {
    const len = this.u32();
    const s = this.pos;
    if (len > this.end - s) throw new Error('protobuf: length-delimited field past the end');
    this.pos = s + len;
    return [s, s + len];
  }

  /** An owned copy of a length-delimited payload. */
  bytes(): Buffer {
    const [s, e] = this.span();
    if (s === e) return EMPTY_VALUE;
    const out = Buffer.allocUnsafe(e - s);
    this.buf.copy(out, 0, s, e);
    return out;
  }

  /** Step over a field this decoder does not read. */
  skip(tag: number): void {
    if (tag >>> 3 === 0) throw new Error('protobuf: field number 0');
    switch (tag & 7) {
      case 0:
        this.u64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.span();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new Error(`protobuf: unsupported wire type ${tag & 7}`);
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new Error('protobuf: truncated fixed-width field');
    this.pos += n;
  }
}

/** RawScanAtResponse { repeated RawKVPair kv = 1; } with RawKVPair { bytes key = 1; bytes value = 2; }. */
export function decodeRawScanAtResponse(buf: Buffer): RawScanAtResponse {
  const r = new Reader(buf, 0, buf.length);
  const kv: { key: Buffer; value: Buffer }[] = [];
  while (r.pos < r.end) {
    const tag = r.u32();
    if (tag === 0x0a) {
      const [s, e] = r.span();
      const p = new Reader(buf, s, e);
      let key: Buffer = EMPTY_VALUE;
      let value: Buffer = EMPTY_VALUE;
      while (p.pos < p.end) {
        const t = p.u32();
        if (t === 0x0a) key = p.bytes();
        else if (t === 0x12) value = p.bytes();
        else p.skip(t);
      }
      kv.push({ key, value });
    } else {
      r.skip(tag);
    }
  }
  return { kv };
}

/** RawGetResponse { uint64 read_at_index = 1; bytes value = 2; bool exists = 3; }, uint64 as a decimal string. */
export function decodeRawGetResponse(buf: Buffer): RawGetResponse {
  const r = new Reader(buf, 0, buf.length);
  let readAt = 0n;
  let value: Buffer = EMPTY_VALUE;
  let exists = false;
  while (r.pos < r.end) {
    const tag = r.u32();
    if (tag === 0x08) readAt = r.u64();
    else if (tag === 0x12) value = r.bytes();
    else if (tag === 0x18) exists = r.u64() !== 0n;
    else r.skip(tag);
  }
  return { read_at_index: readAt.toString(), value, exists };
}
