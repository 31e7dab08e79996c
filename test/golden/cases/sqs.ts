import type { FsmEntry } from '../../../src/fixture/fsm.js';
import {
  sqsDataKey,
  sqsGenKey,
  sqsMetaKey,
  sqsDeletedQueueEntries,
  sqsMessageEntries,
  sqsMessageId,
  sqsQueueEntries,
  sqsTombstoneKey,
  type SqsQueueInput,
} from '../../../src/fixture/sqs.js';
import type { GoldenFixture } from '../fixtures.js';

const T0 = 1767225600000;

/** A standard queue with attributes, HTML-ish, unicode and binary bodies; sends out of key order; an empty queue. */
export function sqsStandardEntries(): FsmEntry[] {
  const q: SqsQueueInput = {
    name: 'orders',
    visibilityTimeoutSeconds: 45,
    delaySeconds: 2,
    receiveMessageWaitSeconds: 10,
    redrivePolicy: '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:orders-dlq","maxReceiveCount":3}',
    tags: { team: 'shop' },
  };
  return [
    ...sqsQueueEntries(q),
    ...sqsQueueEntries({ name: 'orders-dlq', redriveAllowPolicy: '{"redrivePermission":"allowAll"}', maximumMessageSize: 1024 }),
    ...sqsMessageEntries(q, {
      id: sqsMessageId(1, 'std'),
      body: '{"order":1001,"note":"<b>fragile</b> & heavy"}',
      attributes: {
        trace: { type: 'String', string: 'abc-123 <x>' },
        priority: { type: 'Number', string: '5' },
        blob: { type: 'Binary', binary: Buffer.from([0, 1, 2, 250]) },
      },
      senderId: 'AIDAEXAMPLE',
      sendTs: T0 + 3000,
    }),
    ...sqsMessageEntries(q, { id: sqsMessageId(2, 'std'), body: 'héllo wörld \u2028 ☃ 𝄞', sendTs: T0 + 1000 }),
    ...sqsMessageEntries(q, { id: sqsMessageId(3, 'std'), body: Buffer.from([0xff, 0xfe, 0x00, 0x41]), sendTs: T0 + 2000 }),
    ...sqsMessageEntries(q, { id: sqsMessageId(4, 'std'), body: '', sendTs: T0 + 2000, availableAt: T0 + 7000 }),
    ...sqsMessageEntries(q, {
      id: sqsMessageId(5, 'std'),
      body: 'moved',
      sendTs: T0 + 500,
      deadLetterSourceArn: 'arn:aws:sqs:us-east-1:000000000000:upstream',
      visibleAt: T0 + 90000,
      receiveCount: 2,
      firstReceive: T0 + 600,
      receiptToken: Buffer.from('token-5-abcdefgh'),
    }),
  ];
}

/** FIFO queue: interleaved groups, equal send timestamps, seq order differs from id order; side rows present but excluded. */
export function sqsFifoEntries(): FsmEntry[] {
  const q: SqsQueueInput = { name: 'payments.fifo', fifo: true, contentBasedDedup: true, seq: 6n };
  const out: FsmEntry[] = [...sqsQueueEntries(q)];
  const plan: [string, number][] = [
    ['alice', 0],
    ['bob', 0],
    ['alice', 0],
    ['carol', 1],
    ['bob', 1],
    ['alice', 1],
  ];
  plan.forEach(([g, dt], i) => {
    out.push(
      ...sqsMessageEntries(q, {
        id: sqsMessageId(i, 'fifo'),
        body: `payment ${i} from ${g}`,
        sendTs: T0 + 4000 + dt,
        groupId: g,
        dedupId: `dedup-${i}`,
        seq: BigInt(i + 1),
        dedup: true,
        groupLock: i === 0 || i === 1,
        visibleAt: i === 0 || i === 1 ? T0 + 40000 : undefined,
        receiveCount: i === 0 || i === 1 ? 1 : 0,
        firstReceive: i === 0 || i === 1 ? T0 + 10000 : undefined,
        receiptToken: i === 0 ? Buffer.from('rt-0') : undefined,
      }),
    );
  });
  // A standard queue where ties on (send ts, seq=0) fall to the message id.
  const s: SqsQueueInput = { name: 'ties' };
  out.push(...sqsQueueEntries(s));
  for (const id of ['m-c', 'm-a', 'm-b', 'M-z', 'm-a2']) out.push(...sqsMessageEntries(s, { id, body: id, sendTs: T0 }));
  return out;
}

/** In-flight messages whose visibility state is kept with --preserve-sqs-visibility. */
export function sqsVisibilityEntries(): FsmEntry[] {
  const q: SqsQueueInput = { name: 'jobs', visibilityTimeoutSeconds: 60 };
  return [
    ...sqsQueueEntries(q),
    ...sqsMessageEntries(q, {
      id: sqsMessageId(1, 'vis'),
      body: 'in flight',
      sendTs: T0 + 1000,
      visibleAt: T0 + 61000,
      receiveCount: 3,
      firstReceive: T0 + 1500,
      receiptToken: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b]),
    }),
    ...sqsMessageEntries(q, { id: sqsMessageId(2, 'vis'), body: 'never received', sendTs: T0 + 2000 }),
    ...sqsMessageEntries(q, {
      id: sqsMessageId(3, 'vis'),
      body: 'received, visibility expired',
      sendTs: T0 + 1500,
      visibleAt: T0 + 3000,
      receiveCount: 1,
      firstReceive: T0 + 1600,
      receiptToken: Buffer.from('expired-token'),
    }),
    ...sqsMessageEntries(q, { id: sqsMessageId(4, 'vis'), body: 'delayed', sendTs: T0 + 1200, availableAt: T0 + 900000 }),
  ];
}

/**
 * Side records under _internals/ (vis, byage, dedup, group, tombstone) for a
 * standard, a FIFO and a partitioned queue, and an orphan (deleted queue).
 * No `!sqs|queue|seq|` row: elastickv's decoder refuses the whole snapshot
 * when it meets one with --include-sqs-side-records (its key has no trailer).
 */
export function sqsSideRecordEntries(): FsmEntry[] {
  const std: SqsQueueInput = { name: 'alerts' };
  const fifo: SqsQueueInput = { name: 'audit.fifo', fifo: true, generation: 2n };
  const ht: SqsQueueInput = { name: 'ht.fifo', fifo: true, partitionCount: 4, fifoThroughputLimit: 'perMessageGroupId', deduplicationScope: 'messageGroup' };
  return [
    ...sqsQueueEntries(std),
    ...sqsMessageEntries(std, { id: sqsMessageId(1, 'side'), body: 'disk full', sendTs: T0 + 10 }),
    ...sqsMessageEntries(std, { id: sqsMessageId(2, 'side'), body: 'disk ok', sendTs: T0 + 20, visibleAt: T0 + 30020, receiveCount: 1 }),
    ...sqsQueueEntries(fifo),
    { key: sqsTombstoneKey('audit.fifo', 1n), value: Buffer.of(1) },
    ...sqsMessageEntries(fifo, { id: sqsMessageId(3, 'side'), body: 'login', sendTs: T0 + 40, groupId: 'u1', dedupId: 'd-1', seq: 1n, dedup: true, groupLock: true, visibleAt: T0 + 9000 }),
    ...sqsMessageEntries(fifo, { id: sqsMessageId(4, 'side'), body: 'logout', sendTs: T0 + 50, groupId: 'u1', dedupId: 'd-2', seq: 2n, dedup: true }),
    ...sqsQueueEntries(ht),
    ...sqsMessageEntries(ht, { id: sqsMessageId(5, 'side'), body: 'p2', sendTs: T0 + 60, groupId: 'g', dedupId: 'x', seq: 1n, partition: 2, dedup: true, groupLock: true }),
    // Deleted queue: no meta, its tombstone and a stale vis row remain.
    ...sqsDeletedQueueEntries('gone', 1n),
    ...sqsMessageEntries({ name: 'gone' }, { id: sqsMessageId(6, 'side'), body: 'left behind', sendTs: T0 + 70 }),
    // A queue with only meta (no messages, no side records).
    ...sqsQueueEntries({ name: 'idle' }),
  ];
}

/** Recreated / purged queues: stale generation rows are dropped when a gen record names the live one. */
export function sqsGenerationEntries(): FsmEntry[] {
  const q: SqsQueueInput = { name: 'events', generation: 3n };
  const out: FsmEntry[] = [
    ...sqsQueueEntries(q),
    { key: sqsTombstoneKey('events', 2n), value: Buffer.of(1) },
    ...sqsMessageEntries(q, { id: sqsMessageId(1, 'gen1'), body: 'gen 1 leftover', sendTs: T0 + 1, generation: 1n }),
    ...sqsMessageEntries(q, { id: sqsMessageId(2, 'gen2'), body: 'gen 2 leftover', sendTs: T0 + 2, generation: 2n }),
    ...sqsMessageEntries(q, { id: sqsMessageId(3, 'gen3'), body: 'live', sendTs: T0 + 3 }),
    ...sqsMessageEntries(q, { id: sqsMessageId(4, 'gen3'), body: 'live too', sendTs: T0 + 2 }),
  ];
  // A purged queue whose live generation has no messages: no messages.jsonl.
  const purged: SqsQueueInput = { name: 'purged', generation: 2n };
  out.push(...sqsQueueEntries(purged), ...sqsMessageEntries(purged, { id: sqsMessageId(5, 'p'), body: 'purged', sendTs: T0, generation: 1n }));
  // A deleted queue with leftover messages: no meta, nothing dumped.
  out.push(...sqsDeletedQueueEntries('deleted', 1n), ...sqsMessageEntries({ name: 'deleted' }, { id: sqsMessageId(6, 'd'), body: 'orphan', sendTs: T0 }));
  // No gen record at all: the owner cannot tell, so every generation is kept.
  const nogen: SqsQueueInput = { name: 'nogen', generation: 5n };
  out.push(...sqsQueueEntries(nogen).filter((e) => !String(e.key).startsWith('!sqs|queue|gen|')));
  out.push(...sqsMessageEntries(nogen, { id: sqsMessageId(7, 'n'), body: 'gen 4', sendTs: T0 + 5, generation: 4n }));
  out.push(...sqsMessageEntries(nogen, { id: sqsMessageId(8, 'n'), body: 'gen 5', sendTs: T0 + 4 }));
  // A value whose queue_generation disagrees with its key: the owner trusts the value.
  out.push({ key: sqsDataKey('events', 2n, 'mismatch'), value: sqsMessageEntries(q, { id: 'mismatch', body: 'value says gen 3', sendTs: T0 + 9 })[0]!.value });
  return out;
}

/** HT-FIFO partitioned queue (several partitions, equal send timestamps) next to legacy queues. */
export function sqsPartitionedEntries(): FsmEntry[] {
  const ht: SqsQueueInput = { name: 'orders.fifo', fifo: true, partitionCount: 4, fifoThroughputLimit: 'perMessageGroupId', deduplicationScope: 'messageGroup', seq: 4n };
  const out: FsmEntry[] = [...sqsQueueEntries(ht)];
  [3, 0, 1, 3].forEach((p, i) => {
    out.push(...sqsMessageEntries(ht, { id: sqsMessageId(i, 'ht'), body: `part ${p} msg ${i}`, sendTs: T0 + 100, groupId: `g${p}`, dedupId: `d${i}`, seq: BigInt(i + 1), partition: p }));
  });
  const pq: SqsQueueInput = { name: 'p|q', fifo: true, seq: 1n };
  out.push(...sqsQueueEntries(pq), ...sqsMessageEntries(pq, { id: 'x1', body: 'legacy p', sendTs: T0, groupId: 'g', seq: 1n }));
  const pq2: SqsQueueInput = { name: 'pq', seq: 0n };
  out.push(...sqsQueueEntries(pq2), ...sqsMessageEntries(pq2, { id: 'y1', body: 'legacy pq', sendTs: T0 }));
  return out;
}

const META = Buffer.from([0x00, 0x53, 0x51, 0x01]);
const MSG = Buffer.from([0x00, 0x53, 0x4d, 0x01]);
const raw = (magic: Buffer, json: string | Buffer): Buffer => Buffer.concat([magic, typeof json === 'string' ? Buffer.from(json, 'utf8') : json]);

/**
 * Hand-written values exercising Go's encoding/json rules the owner decodes with:
 * case-insensitive and folded field names, null fields, duplicate keys,
 * unknown fields, raw attribute values compacted verbatim, invalid UTF-8 and
 * lone surrogates, CR/LF inside base64, top-level null, negative timestamps,
 * equal sort keys falling back to key order.
 */
export function sqsJsonQuirkEntries(): FsmEntry[] {
  const out: FsmEntry[] = [];
  out.push({
    key: sqsMetaKey('quirky'),
    value: raw(
      META,
      ' {"NAME":"quirky-from-json","i\\u017f_fifo":true,"iſ_fifo":true,"Visibility_Timeout_Seconds":12,"message_retention_seconds":null,' +
        '"delay_seconds":1,"delay_seconds":3,"unknown":{"a":[1,2,{"b":null}]},"redrive_policy":"<&> \\u2028","partition_count":0,"tags":{"k":"v"}}\n',
    ),
  });
  out.push({ key: sqsGenKey('quirky'), value: ' 7\n' });
  const d = (id: string, json: string | Buffer, gen = 7n): FsmEntry => ({ key: sqsDataKey('quirky', gen, id), value: raw(MSG, json) });
  out.push(
    d('q1', '{ "message_id" : "q1", "body":"PGI+aGk8L2I+", "message_attributes": { "z" : { "DataType" : "String" , "StringValue" : "a b" }, "a":[1, 2 ,3], "m": null, "a": "dup-last" },' +
      ' "send_timestamp_millis": -5, "queue_generation": 7, "sequence_number": 0, "extra": "x\\u0000y", "md5_of_body": "\\ud800x\\udc00", "current_receipt_token": "AAEC" }'),
    d('q2', Buffer.concat([Buffer.from('{"message_id":"q2","sender_id":"bad', 'utf8'), Buffer.from([0xff, 0xc3]), Buffer.from('utf8","body":"QUJD\\r\\nREVG","queue_generation":7,"send_timestamp_millis":10,' +
      '"message_attributes":{"x":{"DataType":"Number","StringValue":"1"}},"message_attributes":{"y":{"DataType":"String","StringValue":"\\u003c"}},"Message_Group_Id":"G","receive_count":9}', 'utf8')])),
    d('q3', '{"message_id":"q3","body":null,"queue_generation":7,"send_timestamp_millis":10,"sequence_number":18446744073709551615,"message_attributes":{}}'),
    d('q4', 'null', 7n),
    // []byte fields also accept a JSON array of 0..255 numbers.
    d('q6', '{"message_id":"q6","body":[104,105,null,60],"queue_generation":7,"send_timestamp_millis":11,"current_receipt_token":[1,2]}'),
    d('q5', '{"message_id":"q5","body":"","queue_generation":7,"send_timestamp_millis":10,"message_attributes":null,"sender_id":"\\ud83d\\ude00 \\ud83d"}'),
  );
  // Empty JSON name: the dump names the queue from its key.
  out.push({ key: sqsMetaKey('from-key'), value: raw(META, '{"name":"","visibility_timeout_seconds":5}') });
  out.push({ key: sqsMetaKey('null-meta'), value: raw(META, 'null') });
  // No gen record: the same message id in two generations with equal sort keys keeps key order.
  const twin = (gen: bigint): FsmEntry => ({
    key: sqsDataKey('null-meta', gen, 'same'),
    value: raw(MSG, `{"message_id":"same","body":"${Buffer.from(`gen ${gen}`).toString('base64')}","queue_generation":${gen},"send_timestamp_millis":1}`),
  });
  out.push(twin(2n), twin(1n));
  // A top-level JSON null decodes to the zero record.
  out.push({ key: sqsDataKey('null-meta', 3n, 'nul'), value: raw(MSG, ' null ') });
  return out;
}

/** Queues whose encoded names extend each other (YWJj, YWJjZA, YWJjZGVm): each key goes to exactly one queue. */
export function sqsPrefixQueueEntries(): FsmEntry[] {
  const out: FsmEntry[] = [];
  ['abc', 'abcd', 'abcdef', 'abcdefg'].forEach((name, qi) => {
    const q: SqsQueueInput = { name, generation: BigInt(qi + 1) };
    out.push(...sqsQueueEntries(q));
    for (let i = 0; i < 3; i++) out.push(...sqsMessageEntries(q, { id: `${name}-${i}`, body: `${name} #${i}`, sendTs: T0 + 10 * (3 - i) + qi }));
  });
  // A deleted queue sharing the prefix: only side records remain.
  out.push(...sqsDeletedQueueEntries('abcde', 4n));
  return out;
}

/** sqs golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const sqsFixtures: GoldenFixture[] = [
  { name: 'sqs-standard', entries: sqsStandardEntries() },
  { name: 'sqs-fifo', entries: sqsFifoEntries() },
  { name: 'sqs-visibility', entries: sqsVisibilityEntries(), flags: ['--preserve-sqs-visibility'] },
  { name: 'sqs-side-records', entries: sqsSideRecordEntries(), flags: ['--include-sqs-side-records'] },
  { name: 'sqs-generations', entries: sqsGenerationEntries() },
  { name: 'sqs-partitioned', entries: sqsPartitionedEntries() },
  { name: 'sqs-json-quirks', entries: sqsJsonQuirkEntries() },
  { name: 'sqs-prefix-queues', entries: sqsPrefixQueueEntries(), flags: ['--include-sqs-side-records'] },
];
