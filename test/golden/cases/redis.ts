import type { GoldenFixture } from '../fixtures.js';
import { redisString } from '../../../src/fixture/redis.js';

const EXP = 1_900_000_000_000;

/** redis golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const redisFixtures: GoldenFixture[] = [
  {
    name: 'redis-strings',
    entries: [
      ...redisString('greeting', 'hello <world> & "friends"\n'),
      ...redisString('empty', ''),
      ...redisString('session:abc', '{"user":"alice"}', { ttlMs: EXP }),
      ...redisString('session:inline-only', 'x', { ttlMs: EXP + 5, ttlIndex: false }),
      ...redisString('legacy:plain', 'raw legacy bytes', { legacy: true }),
      ...redisString('legacy:ttl', 'old', { legacy: true, ttlMs: EXP + 1 }),
      ...redisString(Buffer.from([0x62, 0x00, 0xff, 0x2f, 0x20]), Buffer.from([0x00, 0x01, 0xfe, 0xff])),
      ...redisString('K'.repeat(1024), 'one KiB key', { ttlMs: EXP + 2 }),
      ...redisString('k'.repeat(1000) + 'L', 'legacy long key', { legacy: true, ttlMs: EXP + 3 }),
      ...redisString('b64.looks-binary', 'reserved prefix'),
      ...redisString('ünïcode/ключ', 'utf-8 key'),
      ...redisString('huge-ttl', 'clamped', { ttlMs: 0xffff_ffff_ffff_fff0n }),
    ],
  },
];
