/**
 * The owner's Redis output shapes: per-collection JSON (MarshalIndent, two
 * spaces, HTML-escaped, no trailing newline), stream JSONL lines (compact,
 * HTML-escaped), and the `*_ttl.jsonl` sidecar lines (Encoder, HTML escape off).
 */
import { encodeLine, goStr, marshal, type GoValue } from '../../format/gojson.js';
import { validUtf8 } from './codec.js';

/** UTF-8 bytes as a JSON string, anything else as {"base64": <base64url, no padding>}. */
export function binaryValue(b: Buffer): GoValue {
  return validUtf8(b) ? goStr(b) : { base64: b.toString('base64url') };
}

const indentJson = (v: GoValue): Buffer => Buffer.from(marshal(v, { indent: '  ', escapeHTML: true }), 'utf8');

export function hashJson(fields: [Buffer, Buffer][], ttl: bigint | null): Buffer {
  return indentJson({
    format_version: 1,
    fields: fields.map(([n, v]) => ({ name: binaryValue(n), value: binaryValue(v) })),
    expire_at_ms: ttl,
  });
}

export function listJson(items: Buffer[], ttl: bigint | null): Buffer {
  return indentJson({ format_version: 1, items: items.map(binaryValue), expire_at_ms: ttl });
}

export function setJson(members: Buffer[], ttl: bigint | null): Buffer {
  return indentJson({ format_version: 1, members: members.map(binaryValue), expire_at_ms: ttl });
}

export function zsetScore(s: number): GoValue {
  if (s === Infinity) return '+inf';
  if (s === -Infinity) return '-inf';
  return s;
}

export function zsetJson(members: [Buffer, number][], ttl: bigint | null): Buffer {
  return indentJson({
    format_version: 1,
    members: members.map(([m, s]) => ({ member: binaryValue(m), score: zsetScore(s) })),
    expire_at_ms: ttl,
  });
}

export function streamEntryLine(ms: bigint, seq: bigint, fields: Buffer[]): string {
  const pairs: GoValue[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) pairs.push({ name: binaryValue(fields[i]!), value: binaryValue(fields[i + 1]!) });
  return marshal({ id: `${ms}-${seq}`, fields: pairs }, { escapeHTML: true }) + '\n';
}

export function streamMetaLine(length: bigint, lastMs: bigint, lastSeq: bigint, ttl: bigint | null): string {
  return marshal({ _meta: true, length, last_ms: lastMs, last_seq: lastSeq, expire_at_ms: ttl }, { escapeHTML: true }) + '\n';
}

export function ttlLine(encodedKey: string, expireAtMs: bigint): string {
  return encodeLine({ key: encodedKey, expire_at_ms: expireAtMs });
}
