/**
 * Filename encoding of the logical backup tree (format owner's rules):
 * RFC3986 unreserved bytes [A-Za-z0-9._-] pass through, every other byte is
 * %HH (uppercase); DynamoDB binary keys are `b64.<base64url, no padding>`;
 * a segment that would exceed 240 bytes — or that would be mistaken for a
 * SHA-fallback or b64. name — becomes `<sha256 hex prefix 32>__<%-encoded
 * first 64 raw bytes>`, and the scope's KEYMAP.jsonl records the original.
 */
import { createHash } from 'node:crypto';

export const MAX_SEGMENT_BYTES = 240;
const SHA_HEX_PREFIX = 32;
const SHA_SUFFIX_RAW_BYTES = 64;
const BINARY_PREFIX = 'b64.';
const SHA_SEPARATOR = '__';

export class SegmentError extends Error {
  constructor(
    readonly code: 'invalid' | 'needs-keymap',
    message: string,
  ) {
    super(message);
    this.name = 'SegmentError';
  }
}

const UNRESERVED = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  UNRESERVED[c] = /[A-Za-z0-9._-]/.test(ch) ? 1 : 0;
}
const HEXU = '0123456789ABCDEF';

function percentEncode(raw: Buffer, maxLen = Infinity): string | null {
  let s = '';
  for (const c of raw) {
    if (UNRESERVED[c]) {
      if (s.length + 1 > maxLen) return null;
      s += String.fromCharCode(c);
    } else {
      if (s.length + 3 > maxLen) return null;
      s += '%' + HEXU[c >> 4] + HEXU[c & 0xf];
    }
  }
  return s;
}

function shaFallback(raw: Buffer): string {
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, SHA_HEX_PREFIX);
  return hash + SHA_SEPARATOR + percentEncode(raw.subarray(0, SHA_SUFFIX_RAW_BYTES))!;
}

export function isShaFallback(seg: string): boolean {
  if (seg.length < SHA_HEX_PREFIX + SHA_SEPARATOR.length) return false;
  for (let i = 0; i < SHA_HEX_PREFIX; i++) {
    if (!/[0-9a-fA-F]/.test(seg[i]!)) return false;
  }
  return seg.slice(SHA_HEX_PREFIX, SHA_HEX_PREFIX + SHA_SEPARATOR.length) === SHA_SEPARATOR;
}

export function isBinarySegment(seg: string): boolean {
  return seg.startsWith(BINARY_PREFIX);
}

/** Encode one key segment. */
export function encodeSegment(raw: Buffer): string {
  if (raw.length > MAX_SEGMENT_BYTES) return shaFallback(raw);
  const enc = percentEncode(raw, MAX_SEGMENT_BYTES);
  if (enc === null || isShaFallback(enc) || enc.startsWith(BINARY_PREFIX)) return shaFallback(raw);
  return enc;
}

/** Encode a DynamoDB binary (B) key segment. */
export function encodeBinarySegment(raw: Buffer): string {
  const enc = BINARY_PREFIX + raw.toString('base64url');
  if (enc.length > MAX_SEGMENT_BYTES) return shaFallback(raw);
  return enc;
}

/** True when encodeSegment/encodeBinarySegment had to fall back to a SHA name (KEYMAP needed). */
export function needsKeymap(encoded: string): boolean {
  return isShaFallback(encoded);
}

/** Reverse of encodeSegment / encodeBinarySegment. SHA-fallback names need KEYMAP.jsonl. */
export function decodeSegment(seg: string): Buffer {
  if (seg.length > MAX_SEGMENT_BYTES) throw new SegmentError('invalid', `segment length ${seg.length} exceeds ${MAX_SEGMENT_BYTES}`);
  if (isShaFallback(seg)) throw new SegmentError('needs-keymap', 'filename uses SHA fallback; consult KEYMAP.jsonl');
  if (seg.startsWith(BINARY_PREFIX)) {
    const body = seg.slice(BINARY_PREFIX.length);
    if (!/^[A-Za-z0-9_-]*$/.test(body) || body.length % 4 === 1) throw new SegmentError('invalid', 'bad base64url in b64. segment');
    const out = Buffer.from(body, 'base64url');
    if (out.toString('base64url') !== body) throw new SegmentError('invalid', 'non-canonical base64url in b64. segment');
    return out;
  }
  const out: number[] = [];
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c !== 0x25) {
      if (c > 0xff || !UNRESERVED[c]) throw new SegmentError('invalid', `unexpected raw byte 0x${c.toString(16)} at offset ${i}`);
      out.push(c);
      continue;
    }
    if (i + 2 >= seg.length) throw new SegmentError('invalid', `truncated percent escape at offset ${i}`);
    const hi = parseInt(seg[i + 1]!, 16);
    const lo = parseInt(seg[i + 2]!, 16);
    if (Number.isNaN(hi) || Number.isNaN(lo)) throw new SegmentError('invalid', `non-hex digit at offset ${i + 1}`);
    out.push((hi << 4) | lo);
    i += 2;
  }
  return Buffer.from(out);
}
