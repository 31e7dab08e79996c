/**
 * Golden fixtures: each is a set of raw KV records in elastickv's internal
 * encodings. `scripts/golden-regen.sh <path to elastickv-snapshot-decode>` writes
 * test/golden/<name>/0000000000000064.fsm from them and runs elastickv's own
 * decoder to write test/golden/<name>/expected/. Both are committed; the golden
 * test mounts every case and diff -r's it against expected.
 */
import type { FsmEntry } from '../../src/fixture/fsm.js';
import { dynamodbFixtures } from './cases/dynamodb.js';
import { redisFixtures } from './cases/redis.js';
import { s3Fixtures } from './cases/s3.js';
import { sqsFixtures } from './cases/sqs.js';

export interface GoldenFixture {
  /** Directory name under test/golden/ (e.g. "redis-strings"). */
  name: string;
  entries: FsmEntry[];
  lastCommitTS?: bigint;
  /** Extra flags for both elastickv-snapshot-decode and ekv-mount (same spelling in both). */
  flags?: string[];
}

export const GOLDEN_FIXTURES: GoldenFixture[] = [...dynamodbFixtures, ...s3Fixtures, ...redisFixtures, ...sqsFixtures];
