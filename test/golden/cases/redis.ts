import type { GoldenFixture } from '../fixtures.js';
import { redisHash, redisHll, redisList, redisSet, redisStream, redisString, redisZSet, redisZSetLegacy, wide } from '../../../src/fixture/redis.js';

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
  {
    name: 'redis-hash',
    entries: [
      ...redisHash('user:1', [
        ['name', 'Alice <admin> & co'],
        ['email', 'alice@example.com'],
        ['avatar', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff])],
        ['', 'empty field name'],
        [Buffer.from([0xc3, 0x28]), 'non-utf8 field name'],
      ]),
      ...redisHash('user:2', [['name', 'Bob']], { ttlMs: EXP, deltas: 3 }),
      ...redisHash('legacy:ttl', [['f', 'v']], { ttlMs: EXP + 7, ttlIn: 'record' }),
      ...redisHash('no-meta', [['a', '1'], ['b', '2']], { noMeta: true, deltas: 2 }),
      ...redisHash('empty', []),
      ...redisHash('deltas-only', [], { noMeta: true, deltas: 2 }),
      ...redisHash('H'.repeat(1024), [['f', 'long key hash']]),
      ...redisHash('unicode \u2028 line', [['k', 'line\u2028sep \u00e9']]),
    ],
  },
  {
    name: 'redis-list',
    entries: [
      ...redisList('queue:jobs', [['rpush', 'job-1', 'job-2', 'job-3'], ['lpush', 'urgent', 'very-urgent'], ['lpop', 1], ['rpush', 'job-4'], ['rpop', 1], ['lpush', 'late']], {
        compactAfter: 3,
      }),
      ...redisList('compacted', [['lpush', 'c', 'b', 'a'], ['rpush', 'd'], ['lpop', 2]]),
      ...redisList('inline-ttl', [['rpush', 'x']], { ttlMs: EXP }),
      ...redisList('record-ttl', [['rpush', 'y', 'z']], { ttlMs: EXP + 1, ttlIn: 'record' }),
      ...redisList('d|looks-like-delta', [['rpush', 'p', 'q']], { ttlMs: EXP + 2 }),
      ...redisList('a', [['rpush', 'a1', 'a2']]),
      ...redisList('ab', [['lpush', 'ab1'], ['rpush', 'ab2']]),
      ...redisList('items-only', [['rpush', Buffer.from([0xff, 0xfe]), '<tag>']], { noMeta: true }),
      ...redisList('emptied', [['rpush', 'gone'], ['lpop', 1]]),
      ...redisList('L'.repeat(1024), [['rpush', 'long key list']], { ttlMs: EXP + 3 }),
    ],
  },
  {
    name: 'redis-set',
    entries: [
      ...redisSet('tags', ['redis', 'kv', 'raft', '<b>&']),
      ...redisSet('binary', [Buffer.from([0x00]), Buffer.from([0xff, 0x00]), Buffer.from('')]),
      ...redisSet('inline-ttl', ['m'], { ttlMs: EXP, deltas: 2 }),
      ...redisSet('record-ttl', ['n1', 'n2'], { ttlMs: EXP + 1, ttlIn: 'record' }),
      ...redisSet('empty', []),
      ...redisSet('no-meta', ['only'], { noMeta: true, deltas: 1 }),
      ...redisSet('deltas-only', [], { noMeta: true, deltas: 1 }),
      ...redisSet('S'.repeat(1024), ['long key set'], { ttlMs: EXP + 2, ttlIn: 'record' }),
    ],
  },
  {
    name: 'redis-zset',
    entries: [
      ...redisZSet('leaderboard', [
        ['alice', 120.5],
        ['bob', 99],
        ['carol', Infinity],
        ['dave', -Infinity],
        ['erin', -0.000001],
        ['frank', 1e21],
        ['grace', 1e-7],
        ['heidi', 123456789012345680000],
        ['ivan', -0],
        [Buffer.from([0xfe]), 3],
      ]),
      ...redisZSet('inline-ttl', [['m', 1]], { ttlMs: EXP, deltas: 2 }),
      ...redisZSet('record-ttl', [['m', 2]], { ttlMs: EXP + 1, ttlIn: 'record' }),
      ...redisZSet('empty', []),
      ...redisZSetLegacy('legacy', [
        ['y', 2.5],
        ['x', 1],
        ['z', -3],
        ['x', 7],
      ]),
      ...redisZSetLegacy('legacy-ttl', [['only', 0]], { ttlMs: EXP + 2 }),
      ...redisZSetLegacy('migrated', [['stale', 1]]),
      ...redisZSet('migrated', [['fresh', 2]], { ttlMs: EXP + 3 }),
      ...redisZSetLegacy('meta-only-wide', [['from-blob', 4]]),
      { key: wide('!zs|meta|', 'meta-only-wide'), value: Buffer.concat([Buffer.alloc(8), Buffer.from('00000000000000ff', 'hex')]) },
      ...redisZSet('Z'.repeat(1024), [['long', 1]]),
    ],
  },
  {
    name: 'redis-stream',
    entries: [
      ...redisStream('events', [
        { ms: 1714400000000, seq: 0, fields: ['event', 'login', 'user', 'alice'] },
        { ms: 1714400000000, seq: 1, fields: ['html', '<a href="x">&</a>', 'dup', '1', 'dup', '2'] },
        { ms: 1714400000001, seq: 0, fields: [] },
        { ms: 2, seq: 0, fields: ['early', 'yes'] },
        { ms: 10, seq: 0, fields: ['ten', 'later'] },
      ]),
      ...redisStream('with-ttl', [{ ms: 5, seq: 0, fields: ['k', 'v'] }], { ttlMs: EXP }),
      ...redisStream('record-ttl', [{ ms: 6, seq: 1, fields: ['k', 'v'] }], { ttlMs: EXP + 1, ttlIn: 'record', metaShape: 24 }),
      ...redisStream('meta32', [{ ms: 7, seq: 0, fields: ['a', 'b'] }], { ttlMs: EXP + 2, metaShape: 32, last: [9, 9], length: 3 }),
      ...redisStream('empty', [], { last: [100, 4] }),
      ...redisStream('orphan-entries', [{ ms: 1, seq: 0, fields: ['no', 'meta'] }], { noMeta: true }),
      ...redisStream('T'.repeat(1024), [{ ms: 1, seq: 1, fields: ['long', 'key'] }], { ttlMs: EXP + 3, ttlIn: 'record' }),
    ],
  },
  {
    name: 'redis-hll',
    entries: [
      ...redisHll('visitors', ['a', 'b', 'c']),
      ...redisHll('visitors:today', ['x'], { ttlMs: EXP }),
      ...redisHll('legacy', ['l1', 'l2'], { legacy: true }),
      ...redisHll('legacy:ttl', ['l3'], { legacy: true, ttlMs: EXP + 1 }),
      ...redisHll('stale-index', ['s'], { ttlIndex: false }),
      { key: '!redis|ttl|stale-index', value: Buffer.from('000001ba43b74000', 'hex') },
      ...redisHll('empty', []),
      ...redisHll('Y'.repeat(1024), ['long'], { ttlMs: EXP + 2 }),
    ],
  },
  {
    name: 'redis-hll-nottl',
    entries: [...redisHll('plain', ['a']), ...redisHll('legacy', ['b'], { legacy: true }), ...redisString('s', 'string without ttl')],
  },
  {
    // One user key stored under several types (stale rows after a type change):
    // the !redis|ttl| record goes where the owner's single ordered pass sends it.
    name: 'redis-ttl-routing',
    entries: [
      // legacy string + hash: string wins (later in key order), hash keeps no TTL
      ...redisString('dup', 'str', { legacy: true, ttlMs: EXP }),
      ...redisHash('dup', [['f', 'v']], { ttlIn: 'record' }),
      // new-format string owns its TTL; a stale index record is ignored
      ...redisString('owned', 'v', { ttlIndex: false }),
      { key: '!redis|ttl|owned', value: Buffer.from('000001ba43b74001', 'hex') },
      // hash (legacy meta) + set: the hash takes the record, the set gets none
      ...redisHash('hs', [['f', 'v']], { ttlMs: EXP + 1, ttlIn: 'record' }),
      ...redisSet('hs', ['m']),
      // list + hash: list wins
      ...redisList('lh', [['rpush', 'i']], { ttlMs: EXP + 2, ttlIn: 'record' }),
      ...redisHash('lh', [['f', 'v']]),
      // meta-less stream entries + set: the stream claims the parked TTL (and has no file)
      ...redisStream('ss', [{ ms: 1, seq: 0, fields: ['a', 'b'] }], { noMeta: true, ttlMs: EXP + 3 }),
      ...redisSet('ss', ['m']),
      ...redisStream('ss-real', [{ ms: 1, seq: 0, fields: ['a', 'b'] }]),
      // legacy zset blob + set: the blob claims it
      ...redisZSetLegacy('zs', [['m', 1]], { ttlMs: EXP + 4 }),
      ...redisSet('zs', ['m']),
      // set + wide zset: the set claims it
      ...redisSet('sz', ['m'], { ttlMs: EXP + 5, ttlIn: 'record' }),
      ...redisZSet('sz', [['m', 1]]),
      // TTL record with no typed record: orphan, dropped
      { key: '!redis|ttl|orphan', value: Buffer.from('000001ba43b74002', 'hex') },
      // inline meta TTL of 0 beats a record TTL
      ...redisSet('inline-zero', ['m']),
      { key: '!redis|ttl|inline-zero', value: Buffer.from('000001ba43b74003', 'hex') },
      // record TTL of 0 is kept as 0
      ...redisZSet('record-zero', [['m', 1]], { ttlMs: 0, ttlIn: 'record' }),
      // HLL legacy + string new format: the string's inline header owns the key
      ...redisHll('hs2', ['x'], { legacy: true }),
      ...redisString('hs2', 's'),
      { key: '!redis|ttl|hs2', value: Buffer.from('000001ba43b74004', 'hex') },
    ],
  },
  {
    // Rows with no restorable state: meta deltas, list claims, zset score index, orphan TTL.
    name: 'redis-stateless-rows',
    entries: [
      { key: wide('!hs|meta|d|', 'h', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!st|meta|d|', 's', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!zs|meta|d|', 'z', Buffer.alloc(12)), value: Buffer.alloc(8) },
      { key: wide('!lst|meta|d|', 'l', Buffer.alloc(12)), value: Buffer.alloc(16) },
      { key: wide('!lst|claim|', 'l', Buffer.alloc(8)), value: Buffer.alloc(0) },
      { key: wide('!zs|scr|', 'z', Buffer.alloc(9)), value: Buffer.alloc(0) },
      { key: '!redis|ttl|nobody', value: Buffer.alloc(8) },
      ...redisString('s', 'v'),
    ],
  },
  {
    // Empty and dot user keys, binary user keys, in every type.
    name: 'redis-edge-keys',
    entries: [
      ...redisString('', 'empty key', { ttlMs: EXP }),
      ...redisHash('', [['f', 'v']]),
      ...redisList('', [['rpush', 'x']]),
      ...redisStream('', [{ ms: 1, seq: 1, fields: ['a', 'b'] }]),
      ...redisSet('.', ['dot']),
      ...redisZSet('..', [['dotdot', 2]]),
      ...redisHll('', ['e']),
      ...redisHash(Buffer.from([0x00, 0xff, 0x7c]), [['f', 'v']], { ttlMs: EXP, ttlIn: 'record' }),
      ...redisList(Buffer.from([0x80, 0x00]), [['lpush', 'b']]),
      ...redisStream(Buffer.from('a/b'), [{ ms: 3, seq: 0, fields: ['k', Buffer.from('caf\u00e9')] }]),
    ],
  },
];
