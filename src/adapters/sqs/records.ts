/**
 * SQS value envelopes -> the dump format the owner writes:
 *   queue meta  (00 'S' 'Q' 01 + JSON)  -> _queue.json (MarshalIndent, 2 spaces, HTML-escaped, no newline)
 *   message     (00 'S' 'M' 01 + JSON)  -> one messages.jsonl line (Encoder, no HTML escaping,
 *                                          except the body, which is marshalled on its own)
 */
import { GoB64, GoStr, marshal, type GoValue } from '../../format/gojson.js';
import {
  compact,
  fieldBool,
  fieldBytes,
  fieldInt,
  fieldString,
  JsonError,
  matchField,
  objectMembers,
  topObject,
  unquote,
  validUtf8,
} from './gojsondec.js';

export const META_MAGIC = Buffer.from([0x00, 0x53, 0x51, 0x01]);
export const MSG_MAGIC = Buffer.from([0x00, 0x53, 0x4d, 0x01]);

export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

const META_FIELDS = [
  'name',
  'is_fifo',
  'content_based_dedup',
  'visibility_timeout_seconds',
  'message_retention_seconds',
  'delay_seconds',
  'receive_message_wait_seconds',
  'maximum_message_size',
  'redrive_policy',
  'redrive_allow_policy',
  'partition_count',
  'fifo_throughput_limit',
  'deduplication_scope',
] as const;

const META_STRINGS = new Set(['name', 'redrive_policy', 'redrive_allow_policy', 'fifo_throughput_limit', 'deduplication_scope']);
const META_BOOLS = new Set(['is_fifo', 'content_based_dedup']);

function stripMagic(value: Buffer, magic: Buffer, what: string): Buffer {
  if (value.length < magic.length || !value.subarray(0, magic.length).equals(magic)) throw new ValueError(`invalid ${what} value: missing magic prefix`);
  return value.subarray(magic.length);
}

function jsonFail(what: string, e: unknown): never {
  if (e instanceof JsonError) throw new ValueError(`invalid ${what} value: ${e.message}`);
  throw e;
}

/** _queue.json bytes for a meta value; `keyName` is the queue name decoded from the key. */
export function renderQueueJson(value: Buffer, keyName: Buffer): Buffer {
  const body = stripMagic(value, META_MAGIC, '!sqs|queue|meta');
  const str = new Map<string, Buffer>();
  const bool = new Map<string, boolean>();
  const num = new Map<string, bigint>();
  try {
    for (const m of topObject(body) ?? []) {
      const f = matchField(m.key, META_FIELDS);
      if (f === null) continue;
      if (META_STRINGS.has(f)) {
        const v = fieldString(body, m);
        if (v !== undefined) str.set(f, v);
      } else if (META_BOOLS.has(f)) {
        const v = fieldBool(m);
        if (v !== undefined) bool.set(f, v);
      } else {
        const v = fieldInt(body, m, f === 'partition_count' ? 'u32' : 'i64');
        if (v !== undefined) num.set(f, v);
      }
    }
  } catch (e) {
    jsonFail('!sqs|queue|meta', e);
  }
  const s = (k: string): GoStr | undefined => {
    const v = str.get(k);
    return v && v.length > 0 ? new GoStr(v) : undefined;
  };
  const n = (k: string): bigint => num.get(k) ?? 0n;
  const nOmit = (k: string): bigint | undefined => (n(k) !== 0n ? n(k) : undefined);
  const name = str.get('name');
  const out: GoValue = {
    format_version: 1n,
    name: new GoStr(name && name.length > 0 ? name : keyName),
    fifo: bool.get('is_fifo') ? true : undefined,
    content_based_deduplication: bool.get('content_based_dedup') ? true : undefined,
    visibility_timeout_seconds: n('visibility_timeout_seconds'),
    message_retention_seconds: n('message_retention_seconds'),
    delay_seconds: n('delay_seconds'),
    receive_message_wait_seconds: nOmit('receive_message_wait_seconds'),
    maximum_message_size: nOmit('maximum_message_size'),
    redrive_policy: s('redrive_policy'),
    redrive_allow_policy: s('redrive_allow_policy'),
    partition_count: nOmit('partition_count'),
    fifo_throughput_limit: s('fifo_throughput_limit'),
    deduplication_scope: s('deduplication_scope'),
  };
  return Buffer.from(marshal(out, { indent: '  ', escapeHTML: true }), 'utf8');
}

const MSG_FIELDS = [
  'message_id',
  'body',
  'md5_of_body',
  'md5_of_message_attributes',
  'message_attributes',
  'sender_id',
  'send_timestamp_millis',
  'available_at_millis',
  'visible_at_millis',
  'receive_count',
  'first_receive_millis',
  'current_receipt_token',
  'queue_generation',
  'message_group_id',
  'message_deduplication_id',
  'sequence_number',
  'dead_letter_source_arn',
] as const;

const MSG_STRINGS = new Set(['message_id', 'md5_of_body', 'md5_of_message_attributes', 'sender_id', 'message_group_id', 'message_deduplication_id', 'dead_letter_source_arn']);
const MSG_U64 = new Set(['queue_generation', 'sequence_number']);

/** One decoded message: the sort key and its rendered messages.jsonl line. */
export interface MessageLine {
  sendTs: bigint;
  seq: bigint;
  messageId: Buffer;
  queueGeneration: bigint;
  line: Buffer;
}

/**
 * Decode a message value and render its line. Visibility state is zeroed
 * unless `preserveVisibility`; `partition` is set for partitioned keys.
 */
export function decodeMessage(value: Buffer, preserveVisibility: boolean, partition: number | null): MessageLine {
  const body = stripMagic(value, MSG_MAGIC, '!sqs|msg|data');
  const str = new Map<string, Buffer>();
  const num = new Map<string, bigint>();
  const bytes = new Map<string, Buffer | null>();
  let attrs: Map<string, { key: Buffer; raw: Buffer }> | null = null;
  try {
    for (const m of topObject(body) ?? []) {
      const f = matchField(m.key, MSG_FIELDS);
      if (f === null) continue;
      if (MSG_STRINGS.has(f)) {
        const v = fieldString(body, m);
        if (v !== undefined) str.set(f, v);
      } else if (f === 'body' || f === 'current_receipt_token') {
        bytes.set(f, fieldBytes(body, m));
      } else if (f === 'message_attributes') {
        if (m.kind === 'null') {
          attrs = null;
          continue;
        }
        if (m.kind !== 'object') throw new JsonError(`cannot unmarshal ${m.kind} into Go struct field of type map`);
        attrs ??= new Map();
        for (const a of objectMembers(body, m.start, 2).members) {
          // Map keys are compared as Go strings (decoded bytes); the last duplicate wins.
          attrs.set(a.key.toString('latin1'), { key: a.key, raw: compact(body, a.start, a.end) });
        }
      } else {
        const v = fieldInt(body, m, MSG_U64.has(f) ? 'u64' : 'i64');
        if (v !== undefined) num.set(f, v);
      }
    }
  } catch (e) {
    jsonFail('!sqs|msg|data', e);
  }
  const n = (k: string): bigint => num.get(k) ?? 0n;
  const msgBody = bytes.get('body') ?? Buffer.alloc(0);
  const token = preserveVisibility ? (bytes.get('current_receipt_token') ?? null) : null;
  // Built by hand (field order of the owner's struct) so raw attribute bytes pass through untouched.
  const out: Buffer[] = [];
  let first = true;
  const field = (name: string, v: Buffer | string): void => {
    out.push(Buffer.from((first ? '{"' : ',"') + name + '":', 'latin1'), typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
    first = false;
  };
  const strField = (name: string, omitEmpty: boolean): void => {
    const v = str.get(name) ?? Buffer.alloc(0);
    if (omitEmpty && v.length === 0) return;
    field(name, marshal(new GoStr(v), { escapeHTML: false }));
  };
  const numField = (name: string, v: bigint, omitEmpty: boolean): void => {
    if (omitEmpty && v === 0n) return;
    field(name, v.toString());
  };
  strField('message_id', false);
  // The body marshals itself with json.Marshal, so unlike every other string it keeps HTML escaping.
  field('body', validUtf8(msgBody) ? marshal(new GoStr(msgBody), { escapeHTML: true }) : marshal({ base64: msgBody.toString('base64url') }, { escapeHTML: true }));
  strField('md5_of_body', true);
  strField('md5_of_message_attributes', true);
  const attrMap: Map<string, { key: Buffer; raw: Buffer }> | null = attrs;
  if (attrMap && attrMap.size > 0) {
    const parts: Buffer[] = [];
    const sorted = [...attrMap.values()].sort((a, b) => Buffer.compare(a.key, b.key));
    sorted.forEach((a, i) => {
      parts.push(Buffer.from((i === 0 ? '{' : ',') + marshal(new GoStr(a.key), { escapeHTML: false }) + ':', 'utf8'), a.raw);
    });
    parts.push(Buffer.from('}', 'latin1'));
    field('message_attributes', Buffer.concat(parts));
  }
  strField('sender_id', true);
  numField('send_timestamp_millis', n('send_timestamp_millis'), false);
  numField('available_at_millis', n('available_at_millis'), false);
  numField('visible_at_millis', preserveVisibility ? n('visible_at_millis') : 0n, false);
  numField('receive_count', preserveVisibility ? n('receive_count') : 0n, false);
  numField('first_receive_millis', preserveVisibility ? n('first_receive_millis') : 0n, true);
  if (token && token.length > 0) field('current_receipt_token', marshal(new GoB64(token)));
  numField('queue_generation', n('queue_generation'), false);
  strField('message_group_id', true);
  strField('message_deduplication_id', true);
  numField('sequence_number', n('sequence_number'), true);
  strField('dead_letter_source_arn', true);
  if (partition !== null) field('partition', String(partition));
  out.push(Buffer.from('}\n', 'latin1'));
  return {
    sendTs: n('send_timestamp_millis'),
    seq: n('sequence_number'),
    messageId: str.get('message_id') ?? Buffer.alloc(0),
    queueGeneration: n('queue_generation'),
    line: Buffer.concat(out),
  };
}

/** One `_internals/side_records.jsonl` line. */
export function sideRecordLine(prefix: string, key: Buffer, value: Buffer): Buffer {
  return Buffer.from(marshal({ prefix, key_hex: key.toString('hex'), value_b64: value.toString('base64url') }, { escapeHTML: false }) + '\n', 'utf8');
}

export { unquote };
