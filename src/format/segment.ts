/**
 * elastickv's order-preserving key segment: the raw bytes with every 0x00 escaped
 * as 0x00 0xFF, terminated by 0x00 0x01 (so a segment sorts by its raw bytes and
 * no segment is a prefix of another). S3 bucket/object names and DynamoDB
 * ordered key attributes are written this way.
 */
export const SEGMENT_TERMINATOR = Buffer.of(0x00, 0x01);

/** Escaped body without the terminator: a prefix of every segment whose raw value starts with `raw`. */
export function segmentPrefix(raw: Buffer): Buffer {
  if (!raw.includes(0)) return raw;
  const out: number[] = [];
  for (const b of raw) {
    if (b === 0) out.push(0, 0xff);
    else out.push(b);
  }
  return Buffer.from(out);
}

/** The full segment: escaped body + 0x00 0x01. */
export function encodeSegmentBytes(raw: Buffer): Buffer {
  return Buffer.concat([segmentPrefix(raw), SEGMENT_TERMINATOR]);
}

/** Decode the segment at `off`: its raw bytes and the offset after its terminator, or null when malformed/unterminated. */
export function readSegment(src: Buffer, off: number): { raw: Buffer; next: number } | null {
  if (off < 0 || off > src.length) return null;
  let i = src.indexOf(0, off);
  // Fast path: no escapes before the terminator (the raw bytes are a view).
  if (i >= 0 && i + 1 < src.length && src[i + 1] === 0x01) return { raw: src.subarray(off, i), next: i + 2 };
  const out: number[] = [];
  for (i = off; i < src.length; i++) {
    const c = src[i]!;
    if (c !== 0) {
      out.push(c);
      continue;
    }
    const n = src[i + 1];
    if (n === 0xff) {
      out.push(0);
      i++;
    } else if (n === 0x01) {
      return { raw: Buffer.from(out), next: i + 2 };
    } else return null;
  }
  return null;
}
