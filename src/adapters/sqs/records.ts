/**
 * SQS value envelopes -> the dump format the owner writes:
 *   queue meta  (00 'S' 'Q' 01 + JSON)  -> _queue.json (MarshalIndent, 2 spaces, HTML-escaped, no newline)
 *   message     (00 'S' 'M' 01 + JSON)  -> one messages.jsonl line (Encoder, no HTML escaping,
 *                                          except the body, which is marshalled on its own)
 */
import { GoStr, marshal, type GoValue } from '../../format/gojson.js';
import { compact, fieldBool, fieldBytes, fieldInt, fieldObject, fieldString, JsonError, matchField, topObject, validUtf8 } from '../../format/gojson-decode.js';

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

const MSG_FIELD_SET: ReadonlySet<string> = new Set(MSG_FIELDS);

/** One decoded message: the sort key and its rendered messages.jsonl line. */
export interface MessageLine {
  sendTs: bigint;
  seq: bigint;
  messageId: Buffer;
  queueGeneration: bigint;
  line: Buffer;
}

const SAFE_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const SAFE_HTML = /^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*$/;

/** Go's JSON string encoding of raw bytes, with a fast path for printable ASCII. */
export function jsonString(b: Buffer, escapeHTML: boolean): string {
  if (b.length < 4096) {
    const s = b.toString('latin1');
    if ((escapeHTML ? SAFE_HTML : SAFE_PLAIN).test(s)) return '"' + s + '"';
  }
  return marshal(new GoStr(b), { escapeHTML });
}

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Decode a message value and render its line. Visibility state is zeroed
 * unless `preserveVisibility`; `partition` is set for partitioned keys.
 */
export function decodeMessage(value: Buffer, preserveVisibility: boolean, partition: number | null): MessageLine {
  const body = stripMagic(value, MSG_MAGIC, '!sqs|msg|data');
  let messageId = EMPTY;
  let msgBody = EMPTY;
  let md5Body = EMPTY;
  let md5Attrs = EMPTY;
  let senderId = EMPTY;
  let groupId = EMPTY;
  let dedupId = EMPTY;
  let dlqArn = EMPTY;
  let token: Buffer | null = null;
  let sendTs = 0n;
  let availableAt = 0n;
  let visibleAt = 0n;
  let receiveCount = 0n;
  let firstReceive = 0n;
  let queueGen = 0n;
  let seq = 0n;
  let attrs: Map<string, { key: Buffer; raw: Buffer }> | null = null;
  try {
    const members = topObject(body);
    if (members !== null) {
      for (const m of members) {
        const k = m.key.toString('latin1');
        const f = MSG_FIELD_SET.has(k) ? k : matchField(m.key, MSG_FIELDS);
        if (f === null) continue;
        switch (f) {
          case 'message_id':
            messageId = fieldString(body, m) ?? messageId;
            break;
          case 'md5_of_body':
            md5Body = fieldString(body, m) ?? md5Body;
            break;
          case 'md5_of_message_attributes':
            md5Attrs = fieldString(body, m) ?? md5Attrs;
            break;
          case 'sender_id':
            senderId = fieldString(body, m) ?? senderId;
            break;
          case 'message_group_id':
            groupId = fieldString(body, m) ?? groupId;
            break;
          case 'message_deduplication_id':
            dedupId = fieldString(body, m) ?? dedupId;
            break;
          case 'dead_letter_source_arn':
            dlqArn = fieldString(body, m) ?? dlqArn;
            break;
          case 'body':
            msgBody = fieldBytes(body, m) ?? EMPTY;
            break;
          case 'current_receipt_token':
            token = fieldBytes(body, m);
            break;
          case 'send_timestamp_millis':
            sendTs = fieldInt(body, m, 'i64') ?? sendTs;
            break;
          case 'available_at_millis':
            availableAt = fieldInt(body, m, 'i64') ?? availableAt;
            break;
          case 'visible_at_millis':
            visibleAt = fieldInt(body, m, 'i64') ?? visibleAt;
            break;
          case 'receive_count':
            receiveCount = fieldInt(body, m, 'i64') ?? receiveCount;
            break;
          case 'first_receive_millis':
            firstReceive = fieldInt(body, m, 'i64') ?? firstReceive;
            break;
          case 'queue_generation':
            queueGen = fieldInt(body, m, 'u64') ?? queueGen;
            break;
          case 'sequence_number':
            seq = fieldInt(body, m, 'u64') ?? seq;
            break;
          case 'message_attributes': {
            const members = fieldObject(body, m, 'map');
            if (members === null) {
              attrs = null;
              break;
            }
            attrs ??= new Map();
            for (const a of members) {
              // Map keys are Go strings (decoded bytes); the last duplicate wins.
              attrs.set(a.key.toString('latin1'), { key: a.key, raw: compact(body, a.start, a.end) });
            }
            break;
          }
        }
      }
    }
  } catch (e) {
    jsonFail('!sqs|msg|data', e);
  }
  // Built by hand in the owner's struct field order so raw attribute bytes pass through untouched.
  let acc = '{"message_id":' + jsonString(messageId, false);
  let bufs: Buffer[] | null = null;
  // The body marshals itself with json.Marshal, so unlike every other string it keeps HTML escaping.
  acc += ',"body":' + (validUtf8(msgBody) ? jsonString(msgBody, true) : marshal({ base64: msgBody.toString('base64url') }, { escapeHTML: true }));
  if (md5Body.length) acc += ',"md5_of_body":' + jsonString(md5Body, false);
  if (md5Attrs.length) acc += ',"md5_of_message_attributes":' + jsonString(md5Attrs, false);
  const attrMap: Map<string, { key: Buffer; raw: Buffer }> | null = attrs;
  if (attrMap && attrMap.size > 0) {
    const sorted = [...attrMap.values()].sort((x, y) => Buffer.compare(x.key, y.key));
    sorted.forEach((a, i) => {
      acc += (i === 0 ? ',"message_attributes":{' : ',') + jsonString(a.key, false) + ':';
      if (validUtf8(a.raw)) acc += a.raw.toString('utf8');
      else {
        // Go copies a RawMessage's bytes verbatim, invalid UTF-8 included.
        (bufs ??= []).push(Buffer.from(acc, 'utf8'), a.raw);
        acc = '';
      }
    });
    acc += '}';
  }
  if (senderId.length) acc += ',"sender_id":' + jsonString(senderId, false);
  acc += ',"send_timestamp_millis":' + sendTs + ',"available_at_millis":' + availableAt;
  acc += ',"visible_at_millis":' + (preserveVisibility ? visibleAt : 0n) + ',"receive_count":' + (preserveVisibility ? receiveCount : 0n);
  if (preserveVisibility && firstReceive !== 0n) acc += ',"first_receive_millis":' + firstReceive;
  if (preserveVisibility && token && token.length) acc += ',"current_receipt_token":"' + token.toString('base64') + '"';
  acc += ',"queue_generation":' + queueGen;
  if (groupId.length) acc += ',"message_group_id":' + jsonString(groupId, false);
  if (dedupId.length) acc += ',"message_deduplication_id":' + jsonString(dedupId, false);
  if (seq !== 0n) acc += ',"sequence_number":' + seq;
  if (dlqArn.length) acc += ',"dead_letter_source_arn":' + jsonString(dlqArn, false);
  if (partition !== null) acc += ',"partition":' + partition;
  acc += '}\n';
  const tail = Buffer.from(acc, 'utf8');
  const pending: Buffer[] | null = bufs;
  return { sendTs, seq, messageId, queueGeneration: queueGen, line: pending ? Buffer.concat([...pending, tail]) : tail };
}

/** One `_internals/side_records.jsonl` line. */
export function sideRecordLine(prefix: string, key: Buffer, value: Buffer): Buffer {
  return Buffer.from(marshal({ prefix, key_hex: key.toString('hex'), value_b64: value.toString('base64url') }, { escapeHTML: false }) + '\n', 'utf8');
}

