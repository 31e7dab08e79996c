/**
 * The --demo data set: records in elastickv's internal layouts for all four
 * adapters (DynamoDB tables of every key shape, S3 buckets with a multipart
 * object, every Redis type with TTLs, standard and FIFO SQS queues), loaded
 * into the dev cluster's in-memory MVCC store and mounted through the live path.
 */
import { demoDynamodbEntries } from '../fixture/dynamodb.js';
import type { FsmEntry } from '../fixture/fsm.js';
import { demoRedisEntries } from '../fixture/redis.js';
import { demoS3Entries } from '../fixture/s3.js';
import { demoSqsEntries } from '../fixture/sqs.js';
import { MemorySource } from '../source/memory.js';

export function demoEntries(): FsmEntry[] {
  return [...demoDynamodbEntries(), ...demoS3Entries(), ...demoRedisEntries(), ...demoSqsEntries()];
}

export function buildDemoSource(): MemorySource {
  const src = new MemorySource('demo');
  for (const e of demoEntries()) {
    const key = typeof e.key === 'string' ? Buffer.from(e.key, 'utf8') : e.key;
    const value = typeof e.value === 'string' ? Buffer.from(e.value, 'utf8') : e.value;
    src.put(key, value, e.ts ?? 100n, { tombstone: e.tombstone, expireAt: e.expireAt });
  }
  return src;
}
