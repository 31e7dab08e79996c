/**
 * SQS key layouts (elastickv's adapter keyspace) and the format owner's rules
 * for telling which queue a key belongs to.
 *
 *   !sqs|queue|meta|<enc>                 queue config (magic 00 'S' 'Q' 01 + JSON)
 *   !sqs|queue|gen|<enc>                  live generation, decimal text
 *   !sqs|queue|seq|<enc>                  FIFO sequence counter (side record)
 *   !sqs|queue|tombstone|<enc><gen u64>   superseded generation marker (side record)
 *   !sqs|msg|<family>|<enc><gen u64>...   legacy message keyspace
 *   !sqs|msg|<family>|p|<enc>|<part u32><gen u64>...   partitioned (HT-FIFO)
 *
 * <enc> is the queue name in unpadded base64url. In legacy keys the queue
 * segment ends at the first byte outside the base64url alphabet; in
 * partitioned keys at the first '|'.
 */

export const P_QUEUE_META = '!sqs|queue|meta|';
export const P_QUEUE_GEN = '!sqs|queue|gen|';
export const P_QUEUE_SEQ = '!sqs|queue|seq|';
export const P_QUEUE_TOMBSTONE = '!sqs|queue|tombstone|';
export const P_MSG_DATA = '!sqs|msg|data|';
export const P_MSG_VIS = '!sqs|msg|vis|';
export const P_MSG_BYAGE = '!sqs|msg|byage|';
export const P_MSG_DEDUP = '!sqs|msg|dedup|';
export const P_MSG_GROUP = '!sqs|msg|group|';

/** Side-record families, in key order (the order the owner meets them in a snapshot). */
export const SIDE_PREFIXES: readonly string[] = [P_MSG_BYAGE, P_MSG_DEDUP, P_MSG_GROUP, P_MSG_VIS, P_QUEUE_SEQ, P_QUEUE_TOMBSTONE].sort();

export const PARTITIONED = 'p|';
const GEN_BYTES = 8;
const PART_BYTES = 4;

const B64URL = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') B64URL[c.charCodeAt(0)] = 1;

export function isB64UrlByte(c: number): boolean {
  return B64URL[c] === 1;
}

/** Length of the leading run of base64url bytes. */
export function b64Run(b: Buffer, from = 0): number {
  let i = from;
  while (i < b.length && B64URL[b[i]!] === 1) i++;
  return i - from;
}

/**
 * Go's base64.RawURLEncoding.DecodeString (non-strict): CR/LF are skipped,
 * any other byte outside the alphabet (padding included) is an error, and a
 * trailing group of one character is an error. Returns null on error.
 */
export function decodeRawUrl(b: Buffer): Buffer | null {
  let clean = b;
  if (b.includes(0x0a) || b.includes(0x0d)) clean = Buffer.from(b.filter((c) => c !== 0x0a && c !== 0x0d));
  for (const c of clean) if (B64URL[c] !== 1) return null;
  if (clean.length % 4 === 1) return null;
  return Buffer.from(clean.toString('latin1'), 'base64url');
}

export function encodeRawUrl(b: Buffer): string {
  return b.toString('base64url');
}

export function keyOf(prefix: string, ...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat([Buffer.from(prefix, 'latin1'), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p))]);
}

export class KeyParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyParseError';
  }
}

/**
 * The queue segment the owner would attribute `rest` (key minus family prefix)
 * to, even when the key is malformed: used to decide whose file a malformed
 * key breaks. null = no queue can be named.
 */
export function guessQueue(rest: Buffer): Buffer | null {
  if (rest[0] === 0x70 && rest[1] === 0x7c) {
    const body = rest.subarray(2);
    const t = body.indexOf(0x7c);
    const enc = t < 0 ? body : body.subarray(0, t);
    return enc.length > 0 ? enc : null;
  }
  const n = b64Run(rest);
  return n > 0 ? rest.subarray(0, n) : null;
}

export interface DataKey {
  enc: Buffer;
  /** Set for partitioned (`p|`) keys. */
  partition: number | null;
}

function parsePartitioned(rest: Buffer, hasMsgId: boolean): DataKey {
  const body = rest.subarray(2);
  const t = body.indexOf(0x7c);
  if (t <= 0) throw new KeyParseError('partitioned key missing queue terminator');
  const enc = body.subarray(0, t);
  if (decodeRawUrl(enc) === null) throw new KeyParseError('queue segment is not base64url');
  const trailer = body.subarray(t + 1);
  const fixed = PART_BYTES + GEN_BYTES;
  if (hasMsgId) {
    if (trailer.length <= fixed) throw new KeyParseError('partitioned msg-data key missing message-id');
    if (decodeRawUrl(trailer.subarray(fixed)) === null) throw new KeyParseError('message-id segment is not base64url');
  } else if (trailer.length < fixed) {
    throw new KeyParseError('partitioned side-record key trailer truncated');
  }
  return { enc, partition: trailer.readUInt32BE(0) };
}

/** The owner's parse of a `!sqs|msg|data|` key (rest = key after the prefix). */
export function parseDataKey(rest: Buffer): DataKey {
  if (rest[0] === 0x70 && rest[1] === 0x7c) return parsePartitioned(rest, true);
  const idx = b64Run(rest);
  if (idx === 0 || idx + GEN_BYTES >= rest.length) throw new KeyParseError('queue segment or message-id segment not found');
  const enc = rest.subarray(0, idx);
  if (decodeRawUrl(enc) === null) throw new KeyParseError('queue segment is not base64url');
  if (decodeRawUrl(rest.subarray(idx + GEN_BYTES)) === null) throw new KeyParseError('message-id segment is not base64url');
  return { enc, partition: null };
}

/** The owner's coarse parse of a side-record key: the queue segment only. */
export function parseSideKey(rest: Buffer): Buffer {
  if (rest[0] === 0x70 && rest[1] === 0x7c) return parsePartitioned(rest, false).enc;
  const idx = b64Run(rest);
  if (idx === 0 || idx === rest.length) throw new KeyParseError('queue segment not found');
  return rest.subarray(0, idx);
}

/** Go's unicode.IsSpace set, for strings.TrimSpace on the generation value. */
const SPACES = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000]);
for (let c = 0x2000; c <= 0x200a; c++) SPACES.add(c);

const U64_MAX = (1n << 64n) - 1n;

/** strconv.ParseUint(strings.TrimSpace(v), 10, 64); null on error. */
export function parseGeneration(v: Buffer): bigint | null {
  const cps = [...v.toString('utf8')];
  let a = 0;
  let z = cps.length;
  while (a < z && SPACES.has(cps[a]!.codePointAt(0)!)) a++;
  while (z > a && SPACES.has(cps[z - 1]!.codePointAt(0)!)) z--;
  const s = cps.slice(a, z).join('');
  if (!/^[0-9]+$/.test(s)) return null;
  const n = BigInt(s);
  return n > U64_MAX ? null : n;
}

export function u64be(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n & U64_MAX);
  return b;
}
