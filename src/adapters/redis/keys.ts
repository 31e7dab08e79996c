/**
 * Redis internal key layouts (elastickv's live Redis adapter):
 *   simple     `!redis|str|<k>`  `!redis|hll|<k>`  `!redis|ttl|<k>`  `!redis|zset|<k>` (legacy blob)
 *   wide       `<prefix><len u32 BE><k>[tail]` for !hs| !st| !zs| !stream| families
 *   lists      `!lst|meta|<k>` and `!lst|itm|<k><seq 8>` carry no length prefix
 * Meta-delta keys (`…|meta|d|`), list claims and the zset score index are
 * routed (by longest prefix) and carry no restorable state.
 */
import { prefixEnd } from '../../source/range.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

export const P = {
  str: b('!redis|str|'),
  hll: b('!redis|hll|'),
  ttl: b('!redis|ttl|'),
  zsetLegacy: b('!redis|zset|'),
  hashMeta: b('!hs|meta|'),
  hashMetaDelta: b('!hs|meta|d|'),
  hashField: b('!hs|fld|'),
  listMeta: b('!lst|meta|'),
  listMetaDelta: b('!lst|meta|d|'),
  listItem: b('!lst|itm|'),
  listClaim: b('!lst|claim|'),
  setMeta: b('!st|meta|'),
  setMetaDelta: b('!st|meta|d|'),
  setMember: b('!st|mem|'),
  zsetMeta: b('!zs|meta|'),
  zsetMetaDelta: b('!zs|meta|d|'),
  zsetMember: b('!zs|mem|'),
  zsetScore: b('!zs|scr|'),
  streamMeta: b('!stream|meta|'),
  streamEntry: b('!stream|entry|'),
} as const;

export const LIST_SEQ_BYTES = 8;
export const STREAM_ID_BYTES = 16;

/** `<prefix><len u32 BE><userKey>`: the meta key, or the scan prefix of a wide-column family. */
export function wideKey(prefix: Buffer, userKey: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(userKey.length);
  return Buffer.concat([prefix, len, userKey]);
}

/** Parse `<len u32 BE><userKey><tail>` after the prefix; null when truncated. */
export function parseWide(key: Buffer, prefix: Buffer): { userKey: Buffer; tail: Buffer } | null {
  if (key.length < prefix.length + 4 || !key.subarray(0, prefix.length).equals(prefix)) return null;
  const n = key.readUInt32BE(prefix.length);
  const start = prefix.length + 4;
  if (key.length - start < n) return null;
  return { userKey: key.subarray(start, start + n), tail: key.subarray(start + n) };
}

/** The end (exclusive) of everything under a prefix; null = keyspace end. */
export function endOf(prefix: Buffer): Buffer | null {
  return prefixEnd(prefix);
}

export function cat(...parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}

/** Sign-flipped big-endian int64 (byte order = numeric order). */
export function sortableSeq(seq: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt.asUintN(64, seq ^ -(1n << 63n)));
  return out;
}

export function listItemKey(userKey: Buffer, seq: bigint): Buffer {
  return Buffer.concat([P.listItem, userKey, sortableSeq(seq)]);
}

/** `!lst|meta|<k>`, or null when the key would be routed as a meta delta (k begins with "d|"). */
export function listMetaKey(userKey: Buffer): Buffer | null {
  const k = Buffer.concat([P.listMeta, userKey]);
  return k.subarray(0, P.listMetaDelta.length).equals(P.listMetaDelta) ? null : k;
}

/** Key as a map key (latin1 round-trips every byte). */
export const mk = (k: Buffer): string => k.toString('latin1');
export const unmk = (s: string): Buffer => Buffer.from(s, 'latin1');
