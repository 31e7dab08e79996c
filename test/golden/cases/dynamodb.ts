import type { GoldenFixture } from '../fixtures.js';
import {
  ddbGsiEntry,
  ddbItemEntry,
  ddbTableEntries,
  ddbTableWithItems,
  type DdbItem,
  type DdbTable,
} from '../../../src/fixture/dynamodb.js';
import type { FsmEntry } from '../../../src/fixture/fsm.js';

const sessions: DdbTable = { name: 'sessions', hashKey: 'session_id', hashType: 'S' };
const sessionItems: DdbItem[] = [
  { session_id: { S: 'sess-abc123' }, user: { S: 'alice' }, expires: { N: '1714392000' }, active: { BOOL: true } },
  { session_id: { S: 'sess def/456' }, user: { S: 'bob <admin> & co' }, note: { S: 'line1\nline2\t"q"' }, active: { BOOL: false } },
  { session_id: { S: 'séance-ü' }, user: { S: 'ünïcødé ✓' }, data: { M: { k: { S: 'v' } } } },
];

const orders: DdbTable = {
  name: 'orders',
  hashKey: 'customer',
  hashType: 'S',
  rangeKey: 'placed_at',
  rangeType: 'S',
  attributes: { status: 'S', total: 'N' },
  gsis: {
    'by-status': { hashKey: 'status', rangeKey: 'placed_at', projection: 'INCLUDE', nonKeyAttributes: ['total', 'lines'] },
    'by-total': { hashKey: 'total', projection: 'KEYS_ONLY' },
  },
};
const orderItems: DdbItem[] = [
  { customer: { S: 'customer-7421' }, placed_at: { S: '2026-04-29T12:00:00Z' }, status: { S: 'shipped' }, total: { N: '19.99' } },
  { customer: { S: 'customer-7421' }, placed_at: { S: '2026-04-29T13:15:42Z' }, status: { S: 'pending' }, total: { N: '5' } },
  {
    customer: { S: 'customer-7422' },
    placed_at: { S: '2026-04-29T09:00:00Z' },
    status: { S: 'shipped' },
    total: { N: '120.00' },
    lines: { L: [{ M: { sku: { S: 'A-1' }, qty: { N: '2' } } }, { M: { sku: { S: 'B-7' }, qty: { N: '1' } } }] },
  },
  { customer: { S: 'c:8/x y' }, placed_at: { S: 'z/1' }, status: { S: 'new' }, total: { N: '0' } },
];

const binTable: DdbTable = { name: 'blobs', hashKey: 'digest', hashType: 'B', rangeKey: 'chunk', rangeType: 'N' };
const binItems: DdbItem[] = [
  {
    digest: { B: Buffer.from([0x00, 0x01, 0xfe, 0xff]) },
    chunk: { N: '0' },
    data: { B: Buffer.from('hello ') },
    parts: { BS: [Buffer.from('a'), Buffer.from([0x00]), Buffer.from([0xfb, 0xff])] },
  },
  { digest: { B: Buffer.from([0x00, 0x01, 0xfe, 0xff]) }, chunk: { N: '1.50' }, data: { B: Buffer.alloc(0) } },
  { digest: { B: Buffer.from([0x00, 0x01, 0xfe, 0xff]) }, chunk: { N: '-0.25' }, empty_set: { SS: [] }, nothing: {} },
  { digest: { B: Buffer.from('>?~') }, chunk: { N: '1e3' }, nulls: { L: [{ NULL: true }, { NULL: false }, { BOOL: false }] } },
  { digest: { B: Buffer.from([]) }, chunk: { N: '-12345678901234567890.123456789' }, nested: { M: { a: { M: { b: { L: [{ SS: ['x', 'y'] }, { NS: ['1', '2.0'] }] } } }, z: { M: {} }, l: { L: [] } } } },
];
const numTable: DdbTable = { name: 'counters', hashKey: 'n', hashType: 'N' };
const numItems: DdbItem[] = [
  { n: { N: '0' }, label: { S: 'zero' } },
  { n: { N: '42' }, label: { S: 'answer' }, scores: { NS: ['3', '1.5', '-2e2'] } },
  { n: { N: '-7' }, label: { S: 'neg' } },
  { n: { N: '3.14159' }, label: { S: 'pi-ish' } },
  { n: { N: '1E+2' }, label: { S: 'hundred' } },
  { n: { N: '0.000001' }, label: { S: 'tiny' } },
];

const longKey = 'k'.repeat(512) + '/' + 'é'.repeat(255) + '!';
const longHashOnly: DdbTable = { name: 'long-hash', hashKey: 'id', hashType: 'S' };
const longRange: DdbTable = { name: 'long-range', hashKey: 'pk', hashType: 'B', rangeKey: 'sk', rangeType: 'S' };

function generations(): FsmEntry[] {
  // Deleted and recreated: generation 3 is live; rows of 1 and 2 wait for cleanup.
  const recreated: DdbTable = { name: 'recreated', hashKey: 'id', hashType: 'S', rangeKey: 'v', rangeType: 'N', generation: 3n };
  const out: FsmEntry[] = [...ddbTableEntries(recreated)];
  out.push(ddbItemEntry(recreated, { id: { S: 'live-1' }, v: { N: '1' }, gen: { N: '3' } }));
  out.push(ddbItemEntry(recreated, { id: { S: 'shared' }, v: { N: '1' }, gen: { N: '3' } }));
  out.push(ddbItemEntry(recreated, { id: { S: 'shared' }, v: { N: '1' }, gen: { N: '2' }, stale: { BOOL: true } }, { generation: 2n }));
  out.push(ddbItemEntry(recreated, { id: { S: 'stale-only' }, v: { N: '9' }, gen: { N: '2' } }, { generation: 2n }));
  out.push(ddbItemEntry(recreated, { id: { S: 'ancient' }, v: { N: '1' }, gen: { N: '1' } }, { generation: 1n }));
  // A key-encoding migration in flight: generation 5 (ordered keys) is active,
  // generation 4 (legacy keys) is still read as a fallback; 3 is stale.
  const migrating: DdbTable = {
    name: 'migrating',
    hashKey: 'pk',
    hashType: 'S',
    rangeKey: 'sk',
    rangeType: 'N',
    generation: 5n,
    migratingFromGeneration: 4n,
  };
  out.push(...ddbTableEntries(migrating));
  out.push(ddbItemEntry(migrating, { pk: { S: 'a' }, sk: { N: '1' }, from: { S: 'legacy' } }, { generation: 4n, legacy: true }));
  out.push(ddbItemEntry(migrating, { pk: { S: 'a' }, sk: { N: '2' }, from: { S: 'legacy' } }, { generation: 4n, legacy: true }));
  out.push(ddbItemEntry(migrating, { pk: { S: 'a' }, sk: { N: '2' }, from: { S: 'active' } }, { generation: 5n }));
  out.push(ddbItemEntry(migrating, { pk: { S: 'b' }, sk: { N: '1.5' }, from: { S: 'legacy' } }, { generation: 4n, legacy: true }));
  out.push(ddbItemEntry(migrating, { pk: { S: 'c' }, sk: { N: '10' }, from: { S: 'active' } }, { generation: 5n }));
  out.push(ddbItemEntry(migrating, { pk: { S: 'z' }, sk: { N: '1' }, from: { S: 'stale' } }, { generation: 3n, legacy: true }));
  // An old table still on legacy keys (key_encoding_version 0).
  const legacy: DdbTable = { name: 'legacy', hashKey: 'h', hashType: 'N', keyEncodingVersion: 0n, generation: 1n };
  out.push(...ddbTableEntries(legacy));
  out.push(ddbItemEntry(legacy, { h: { N: '7' }, x: { S: 'seven' } }));
  out.push(ddbItemEntry(legacy, { h: { N: '0.5' }, x: { S: 'half' } }));
  // Two spellings of one number: distinct legacy keys, one file; the later key ("5.0") wins.
  out.push(ddbItemEntry(legacy, { h: { N: '5' }, x: { S: 'five' } }));
  out.push(ddbItemEntry(legacy, { h: { N: '5.0' }, x: { S: 'five-point-oh' } }));
  // Orphan generation: the table was deleted (no schema), its counter and rows remain.
  const gone: DdbTable = { name: 'gone', hashKey: 'id', hashType: 'S', generation: 4n };
  out.push(ddbTableEntries(gone)[1]!);
  out.push(ddbItemEntry(gone, { id: { S: 'orphan' } }));
  return out;
}

/** dynamodb golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const dynamodbFixtures: GoldenFixture[] = [
  { name: 'dynamodb-hash-only', entries: ddbTableWithItems(sessions, sessionItems) },
  {
    name: 'dynamodb-hash-range',
    entries: [...ddbTableWithItems(orders, orderItems), ...orderItems.map((i) => ddbGsiEntry(orders, 'by-status', i))],
  },
  { name: 'dynamodb-binary-numeric-keys', entries: [...ddbTableWithItems(binTable, binItems), ...ddbTableWithItems(numTable, numItems)] },
  {
    name: 'dynamodb-long-key',
    entries: [
      ...ddbTableWithItems(longHashOnly, [
        { id: { S: longKey }, v: { S: 'long' } },
        { id: { S: 'short' }, v: { S: 'short' } },
      ]),
      ...ddbTableWithItems(longRange, [
        { pk: { B: Buffer.alloc(300, 0xab) }, sk: { S: 'r'.repeat(1024) }, v: { N: '1' } },
        { pk: { B: Buffer.alloc(300, 0xab) }, sk: { S: 'short' }, v: { N: '2' } },
      ]),
    ],
  },
  { name: 'dynamodb-generations', entries: generations() },
];

/**
 * `--dynamodb-bundle-mode jsonl` data. Not a golden pair: elastickv's decoder
 * refuses the jsonl layout ("dynamodb_layout=jsonl not implemented") and has no
 * --dynamodb-bundle-size flag, so no expected tree can come from it; the unit
 * tests pin the documented layout (items/data-<5-digit part>.jsonl) instead.
 */
export const dynamodbJsonlEntries: FsmEntry[] = [...ddbTableWithItems(sessions, sessionItems), ...ddbTableWithItems(orders, orderItems)];
