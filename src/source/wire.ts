/**
 * Decoders for the two responses a live mount receives by the hundred
 * thousand: RawScanAtResponse and RawGetResponse (rawkv.proto).
 *
 * The generic loader path decodes every RawKVPair into views of the message,
 * then builds a plain object with a fresh default Buffer per bytes field, and
 * the source copied each key and value once more to own it: six Buffer
 * objects per pair. Here each key, and each value under VIEW_MIN bytes, is
 * copied once out of the message into a Buffer of its own, so what the caller
 * keeps of many small records never pins a whole response. A bigger value (an
 * S3 chunk: most of a live copy's bytes) is a view of the message instead, not
 * copied: its copy cost the JS thread ~0.3 s of a live tar of the bench's live
 * tree. It is most of its message, or the page holding it holds the rest; the
 * caches that keep values bound them by retainedBytes (bytes.ts), and long-lived
 * holders take an ownedCopy. The wire rules are the shared reader's (format/protowire.ts);
 * anything malformed throws, which grpc-js reports as an INTERNAL "response
 * message parsing error" on the call.
 */

import { WireReader } from '../format/protowire.js';
import type { RawGetResponse, RawScanAtResponse } from './cluster.js';
import { EMPTY_VALUE } from './types.js';
import { noteAllocated } from '../memory.js';
import { VIEW_MIN } from '../bytes.js';

/** RawScanAtResponse { repeated RawKVPair kv = 1; } with RawKVPair { bytes key = 1; bytes value = 2; }. */
export function decodeRawScanAtResponse(buf: Buffer): RawScanAtResponse {
  noteAllocated(buf.length);
  const r = new WireReader(buf);
  const kv: { key: Buffer; value: Buffer }[] = [];
  while (!r.done()) {
    const tag = r.tag();
    if (tag !== 0x0a) {
      r.skip(tag);
      continue;
    }
    const p = r.sub();
    let key: Buffer = EMPTY_VALUE;
    let value: Buffer = EMPTY_VALUE;
    while (!p.done()) {
      const t = p.tag();
      if (t === 0x0a) key = p.copy();
      else if (t === 0x12) value = p.viewOrCopy(VIEW_MIN);
      else p.skip(t, 1);
    }
    kv.push({ key, value });
  }
  return { kv };
}

/** RawGetResponse { uint64 read_at_index = 1; bytes value = 2; bool exists = 3; }, uint64 as a decimal string. */
export function decodeRawGetResponse(buf: Buffer): RawGetResponse {
  noteAllocated(buf.length);
  const r = new WireReader(buf);
  let readAt = 0n;
  let value: Buffer = EMPTY_VALUE;
  let exists = false;
  while (!r.done()) {
    const tag = r.tag();
    if (tag === 0x08) readAt = r.varint();
    else if (tag === 0x12) value = r.copy();
    else if (tag === 0x18) exists = r.bool();
    else r.skip(tag);
  }
  return { read_at_index: readAt.toString(), value, exists };
}
