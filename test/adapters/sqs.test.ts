import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { sqsAdapter } from '../../src/adapters/sqs/index.js';
import { compareRecords, ExternalSorter, sortTuning, type SortRecord } from '../../src/adapters/sqs/extsort.js';
import { defaultDecodeOptions, type DecodeOptions } from '../../src/adapters/types.js';
import { encodeFsm, type FsmEntry } from '../../src/fixture/fsm.js';
import {
  demoSqsEntries,
  sqsBenchEntries,
  sqsDataKey,
  sqsGenKey,
  sqsMessageEntries,
  sqsMessageValue,
  sqsMetaKey,
  sqsQueueEntries,
  sqsSeqKey,
} from '../../src/fixture/sqs.js';
import { SnapshotView } from '../../src/source/range.js';
import { SnapshotSource } from '../../src/source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';
import { Tree } from '../../src/tree/tree.js';
import { sqsFifoEntries, sqsFixtures, sqsSideRecordEntries, sqsStandardEntries, sqsVisibilityEntries } from '../golden/cases/sqs.js';
import { CountingSource, type SourceCall } from '../helpers/counting.js';
import { openTree, renderEntries, text, type Rendered } from '../helpers/render.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;
const T0 = 1767225600000;

function walk(dir: string, pre = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...walk(p, `${pre}${n}/`));
    else out.push(pre + n);
  }
  return out;
}

function optionsFor(flags: string[] | undefined): Partial<DecodeOptions> {
  return {
    preserveSqsVisibility: flags?.includes('--preserve-sqs-visibility') ?? false,
    includeSqsSideRecords: flags?.includes('--include-sqs-side-records') ?? false,
  };
}

const open: Rendered[] = [];
async function render(entries: FsmEntry[], options: Partial<DecodeOptions> = {}, pageSize?: number): Promise<Rendered> {
  const r = await renderEntries(entries, { options, pageSize });
  open.push(r);
  return r;
}
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

const lines = (r: Rendered, path: string): Record<string, unknown>[] =>
  text(r, path)
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const sqsFiles = (r: Rendered): string[] => [...r.files.keys(), ...r.errors.keys()].filter((p) => p.startsWith('sqs/')).sort();

describe('sqs: golden pairs rendered in-process match elastickv-snapshot-decode byte for byte', () => {
  for (const f of sqsFixtures) {
    it(f.name, async () => {
      const r = await render(f.entries, optionsFor(f.flags));
      const exp = join(GOLDEN, f.name, 'expected');
      const want = walk(exp)
        .filter((p) => p.startsWith('sqs/'))
        .sort();
      expect(sqsFiles(r)).toEqual(want);
      expect(r.errors.size).toBe(0);
      for (const p of want) expect(r.files.get(p)!.equals(readFileSync(join(exp, p))), p).toBe(true);
      const noManifest = (s: string): string =>
        s
          .split('\n')
          .filter((l) => !l.endsWith('  MANIFEST.json'))
          .join('\n');
      expect(noManifest(text(r, 'CHECKSUMS'))).toBe(noManifest(readFileSync(join(exp, 'CHECKSUMS'), 'utf8')));
    });
  }
});

describe('sqs: rendering rules', () => {
  it('_queue.json is MarshalIndent output without a trailing newline', async () => {
    const r = await render(sqsQueueEntries({ name: 'q', fifo: true, contentBasedDedup: true, partitionCount: 2, fifoThroughputLimit: 'perQueue', deduplicationScope: 'queue' }));
    expect(text(r, 'sqs/q/_queue.json')).toBe(
      '{\n  "format_version": 1,\n  "name": "q",\n  "fifo": true,\n  "content_based_deduplication": true,\n  "visibility_timeout_seconds": 30,\n' +
        '  "message_retention_seconds": 345600,\n  "delay_seconds": 0,\n  "maximum_message_size": 262144,\n  "partition_count": 2,\n' +
        '  "fifo_throughput_limit": "perQueue",\n  "deduplication_scope": "queue"\n}',
    );
    // A queue without messages has no messages.jsonl.
    expect(sqsFiles(r)).toEqual(['sqs/q/_queue.json']);
  });

  it('the body keeps json.Marshal HTML escaping, other strings do not; binary bodies use the base64 envelope', async () => {
    const q = { name: 'h' };
    const r = await render([
      ...sqsQueueEntries(q),
      ...sqsMessageEntries(q, { id: 'a<b>', body: '<p>&</p>', sendTs: 1, senderId: 'x&y' }),
      ...sqsMessageEntries(q, { id: 'bin', body: Buffer.from([0xc3, 0x28]), sendTs: 2 }),
    ]);
    const [l1, l2] = text(r, 'sqs/h/messages.jsonl').split('\n');
    const md5 = createHash('md5').update('<p>&</p>').digest('hex');
    expect(l1).toBe(
      `{"message_id":"a<b>","body":"\\u003cp\\u003e\\u0026\\u003c/p\\u003e","md5_of_body":"${md5}","sender_id":"x&y",` +
        '"send_timestamp_millis":1,"available_at_millis":1,"visible_at_millis":0,"receive_count":0,"queue_generation":1}',
    );
    expect(l2).toContain('"body":{"base64":"wyg"}');
  });

  it('FIFO: interleaved groups with equal send timestamps come out by (send ts, sequence, message id), not key order', async () => {
    const r = await render(sqsFifoEntries());
    const fifo = lines(r, 'sqs/payments.fifo/messages.jsonl');
    expect(fifo.map((m) => m.sequence_number)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(fifo.map((m) => m.message_group_id)).toEqual(['alice', 'bob', 'alice', 'carol', 'bob', 'alice']);
    // Key order (base64 of the ids) differs from the emitted order.
    const keyOrder = [...fifo].sort((a, b) => Buffer.compare(Buffer.from(Buffer.from(String(a.message_id)).toString('base64url')), Buffer.from(Buffer.from(String(b.message_id)).toString('base64url'))));
    expect(keyOrder.map((m) => m.sequence_number)).not.toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines(r, 'sqs/ties/messages.jsonl').map((m) => m.message_id)).toEqual(['M-z', 'm-a', 'm-a2', 'm-b', 'm-c']);
    // Side records (seq, dedup, group, vis, byage) stay out by default.
    expect(sqsFiles(r).some((p) => p.includes('_internals'))).toBe(false);
  });

  it('visibility state is zeroed by default and kept with --preserve-sqs-visibility', async () => {
    const zeroed = lines(await render(sqsVisibilityEntries()), 'sqs/jobs/messages.jsonl')[0]!;
    expect(zeroed).toMatchObject({ visible_at_millis: 0, receive_count: 0 });
    expect(zeroed).not.toHaveProperty('first_receive_millis');
    expect(zeroed).not.toHaveProperty('current_receipt_token');
    const kept = lines(await render(sqsVisibilityEntries(), { preserveSqsVisibility: true }), 'sqs/jobs/messages.jsonl')[0]!;
    expect(kept).toMatchObject({ visible_at_millis: T0 + 61000, receive_count: 3, first_receive_millis: T0 + 1500, current_receipt_token: '3q2+7wABAgMEBQYHCAkKCw==' });
  });

  it('side records appear under _internals/ only with --include-sqs-side-records, orphans as <enc>.orphan', async () => {
    const off = await render(sqsSideRecordEntries());
    expect(sqsFiles(off).filter((p) => p.includes('_internals') || p.includes('.orphan'))).toEqual([]);
    const on = await render(sqsSideRecordEntries(), { includeSqsSideRecords: true });
    expect(sqsFiles(on)).toContain('sqs/Z29uZQ.orphan/_internals/side_records.jsonl');
    const side = lines(on, 'sqs/audit.fifo/_internals/side_records.jsonl');
    expect(side.map((s) => s.prefix)).toEqual(['!sqs|msg|byage|', '!sqs|msg|byage|', '!sqs|msg|dedup|', '!sqs|msg|dedup|', '!sqs|msg|group|', '!sqs|msg|vis|', '!sqs|msg|vis|', '!sqs|queue|tombstone|']);
    // idle queue: meta only -> no _internals.
    expect(sqsFiles(on).filter((p) => p.startsWith('sqs/idle/'))).toEqual(['sqs/idle/_queue.json']);
  });

  it('partitioned keys carry "partition"; legacy keys do not', async () => {
    const ht = { name: 'ht.fifo', fifo: true, partitionCount: 8 };
    const r = await render([
      ...sqsQueueEntries(ht),
      ...sqsMessageEntries(ht, { id: 'a', body: 'x', sendTs: 5, groupId: 'g', seq: 2n, partition: 0 }),
      ...sqsMessageEntries(ht, { id: 'b', body: 'y', sendTs: 5, groupId: 'h', seq: 1n, partition: 7 }),
    ]);
    expect(lines(r, 'sqs/ht.fifo/messages.jsonl').map((m) => [m.message_id, m.partition])).toEqual([
      ['b', 7],
      ['a', 0],
    ]);
  });

  it('scopes restrict the queues shown', async () => {
    const r = await render(sqsStandardEntries(), { scopes: new Map([['sqs', new Set(['orders-dlq'])]]) });
    expect(sqsFiles(r)).toEqual(['sqs/orders-dlq/_queue.json']);
    const none = await render(sqsStandardEntries(), { scopes: new Map([['sqs', new Set(['nope'])]]) });
    expect(sqsFiles(none)).toEqual([]);
  });

  it('demo data renders without errors', async () => {
    const r = await render(demoSqsEntries(), { includeSqsSideRecords: false });
    expect(r.errors.size).toBe(0);
    expect(sqsFiles(r)).toEqual([
      'sqs/events/_queue.json',
      'sqs/events/messages.jsonl',
      'sqs/ht.fifo/_queue.json',
      'sqs/ht.fifo/messages.jsonl',
      'sqs/orders-dlq/_queue.json',
      'sqs/orders/_queue.json',
      'sqs/orders/messages.jsonl',
      'sqs/payments.fifo/_queue.json',
      'sqs/payments.fifo/messages.jsonl',
    ]);
    expect(lines(r, 'sqs/events/messages.jsonl').map((m) => m.body)).toEqual(['after recreate']);
  });
});

describe('sqs: undecodable records fail only their own file', () => {
  const base = (): FsmEntry[] => [
    ...sqsQueueEntries({ name: 'good' }),
    ...sqsMessageEntries({ name: 'good' }, { id: 'g1', body: 'fine', sendTs: 1 }),
    ...sqsQueueEntries({ name: 'bad' }),
    ...sqsMessageEntries({ name: 'bad' }, { id: 'b1', body: 'fine', sendTs: 1 }),
  ];
  // CHECKSUMS cannot hash a file that fails, so it fails too.
  const errs = (r: Rendered): [string, string][] => [...r.errors].filter(([p]) => p !== 'CHECKSUMS');
  const expectOnly = (r: Rendered, path: string, keyPart: string): void => {
    expect(errs(r)).toEqual([[path, 'EIO']]);
    expect(r.errors.get('CHECKSUMS')).toBe('EIO');
    expect(text(r, 'sqs/good/messages.jsonl')).toContain('"message_id":"g1"');
    expect(text(r, 'sqs/good/_queue.json')).toContain('"name": "good"');
    const logged = r.logs.filter((l) => l.path === `/${path}`);
    expect(logged.length).toBeGreaterThan(0);
    expect(String(logged[0]!.key)).toContain(keyPart);
  };

  it('message value without the magic prefix', async () => {
    const r = await render([...base(), { key: sqsDataKey('bad', 1n, 'b2'), value: '{"message_id":"b2"}' }]);
    expectOnly(r, 'sqs/bad/messages.jsonl', '!sqs|msg|data|YmFk');
    expect(text(r, 'sqs/bad/_queue.json')).toContain('"name": "bad"');
  });

  it('message JSON with a non-integer timestamp, trailing garbage, or bad base64', async () => {
    for (const json of ['{"send_timestamp_millis":1.5}', '{"message_id":"x"} x', '{"body":"QQ"}', '{"sequence_number":-1}']) {
      const r = await render([...base(), { key: sqsDataKey('bad', 1n, 'b2'), value: Buffer.concat([Buffer.from([0, 0x53, 0x4d, 1]), Buffer.from(json)]) }]);
      expectOnly(r, 'sqs/bad/messages.jsonl', '!sqs|msg|data|YmFk');
      await open.pop()!.close();
    }
  });

  it('queue meta that is not JSON', async () => {
    const r = await render([...base().filter((e) => !Buffer.from(e.key).equals(sqsMetaKey('bad'))), { key: sqsMetaKey('bad'), value: Buffer.from([0, 0x53, 0x51, 1, 0x7b]) }]);
    expectOnly(r, 'sqs/bad/_queue.json', '!sqs|queue|meta|YmFk');
    expect(text(r, 'sqs/bad/messages.jsonl')).toContain('"message_id":"b1"');
  });

  it('generation value that is not a decimal', async () => {
    const r = await render([...base().filter((e) => !Buffer.from(e.key).equals(sqsGenKey('bad'))), { key: sqsGenKey('bad'), value: 'seven' }]);
    expectOnly(r, 'sqs/bad/messages.jsonl', '!sqs|queue|gen|YmFk');
  });

  it('message key without a message-id segment', async () => {
    const key = Buffer.concat([Buffer.from('!sqs|msg|data|YmFk', 'latin1'), Buffer.alloc(8)]);
    key[key.length - 1] = 1;
    const r = await render([...base(), { key, value: sqsMessageValue(1n, { id: 'b3', body: 'x', sendTs: 1 }) }]);
    expectOnly(r, 'sqs/bad/messages.jsonl', '!sqs|msg|data|YmFk');
  });

  it('a FIFO sequence row with --include-sqs-side-records (the owner rejects its trailer-less key)', async () => {
    const r = await render([...base(), { key: sqsSeqKey('bad'), value: '3' }, ...sqsMessageEntries({ name: 'good' }, { id: 'g2', body: 'x', sendTs: 2 })], {
      includeSqsSideRecords: true,
    });
    expect(errs(r)).toEqual([['sqs/bad/_internals/side_records.jsonl', 'EIO']]);
    expect(lines(r, 'sqs/good/_internals/side_records.jsonl').length).toBe(4);
    expect(text(r, 'sqs/bad/messages.jsonl')).toContain('"message_id":"b1"');
  });
});

describe('sqs: messages.jsonl ordering with bounded memory', () => {
  const saved = { ...sortTuning };
  afterEach(() => Object.assign(sortTuning, saved));

  it('spilled runs merged in several passes give the same bytes as the in-memory sort, and run files are removed', async () => {
    const entries = sqsBenchEntries(400);
    const inMem = text(await render(entries), 'sqs/bench/messages.jsonl');
    const runDir = mkdtempSync(join(tmpdir(), 'ekv-sqs-test-'));
    try {
      Object.assign(sortTuning, { chunkBytes: 8 << 10, fanIn: 3, readBytes: 512, dir: runDir });
      const spilled = text(await render(entries, {}, 7), 'sqs/bench/messages.jsonl');
      expect(spilled).toBe(inMem);
      expect(readdirSync(runDir)).toEqual([]);
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
    const ts = inMem
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as { send_timestamp_millis: number }).send_timestamp_millis);
    expect(ts.length).toBe(400);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
  });
});

describe('sqs: the sort chunk and the cache size', () => {
  const sorted = (r: Rendered): Record<string, unknown> | undefined => r.logs.find((l) => l.msg === 'sqs: messages sorted');

  it('a small --cache-size holds the in-memory chunk to the room share (runs on disk, the same bytes); the default keeps one chunk', async () => {
    // ~6 MB of records as the sorter counts them: past a 4 MiB share, inside 16 MiB.
    const entries = sqsBenchEntries(8000);
    const roomy = await renderEntries(entries, { cacheBytes: 256 << 20 });
    open.push(roomy);
    const small = await renderEntries(entries, { cacheBytes: 16 << 20 });
    open.push(small);
    expect(sorted(roomy)).toMatchObject({ records: 8000, runs: 0 });
    expect(sorted(small)).toMatchObject({ records: 8000 });
    expect(sorted(small)!.runs).toBeGreaterThanOrEqual(1);
    const whole = text(roomy, 'sqs/bench/messages.jsonl');
    expect(whole.trimEnd().split('\n').length).toBe(8000);
    expect(text(small, 'sqs/bench/messages.jsonl')).toBe(whole);
  });
});

describe('sqs: queues whose key segment extends another', () => {
  // base64url("orders") = b3JkZXJz is a prefix of b3JkZXJzLWRscQ ("orders-dlq") and
  // b3JkZXJzWA ("ordersX"): a scan of one queue's legacy keys meets the others' and skips them.
  const names = ['orders', 'orders-dlq', 'ordersX'];
  const entries = (): FsmEntry[] => {
    const out: FsmEntry[] = [];
    names.forEach((name, qi) => {
      const q = { name };
      out.push(...sqsQueueEntries(q));
      for (let i = 0; i < 7; i++) out.push(...sqsMessageEntries(q, { id: `${name}-${i}`, body: `m${i}`, sendTs: T0 + 10 * i + qi }));
    });
    return out;
  };

  it('each messages.jsonl holds its own queue\'s messages only, at every page size', async () => {
    const ids = (r: Rendered, name: string): string[] =>
      text(r, `sqs/${name}/messages.jsonl`)
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message_id: string }).message_id);
    const whole = await render(entries());
    for (const name of names) expect(ids(whole, name)).toEqual([...Array(7).keys()].map((i) => `${name}-${i}`));
    for (const pageSize of [1, 2, 3, 5, 8]) {
      const r = await render(entries(), {}, pageSize);
      for (const name of names) expect(text(r, `sqs/${name}/messages.jsonl`), `page size ${pageSize}, ${name}`).toBe(text(whole, `sqs/${name}/messages.jsonl`));
    }
  });
});

describe('sqs: laziness', () => {
  async function counted(entries: FsmEntry[], options: Partial<DecodeOptions> = {}): Promise<{ tree: Tree; calls: SourceCall[]; close: () => Promise<void> }> {
    const t = await openTree(entries, { options, pageSize: 4, adapters: [sqsAdapter], cacheBytes: 1 << 20, wrap: (s) => new CountingSource(s) });
    return { tree: t.tree, calls: t.src.calls, close: t.close };
  }

  const many = (): FsmEntry[] => {
    const out: FsmEntry[] = [];
    for (const name of ['alpha', 'beta', 'gamma']) {
      const q = { name };
      out.push(...sqsQueueEntries(q));
      for (let i = 0; i < 20; i++) out.push(...sqsMessageEntries(q, { id: `${name}-${i}`, body: 'b', sendTs: T0 + i }));
    }
    return out;
  };

  it('cat of one _queue.json is point reads; ls of sqs/ pages only the meta range', async () => {
    const m = await counted(many());
    try {
      await m.tree.getattr('/sqs'); // adapter root: one page of meta keys
      m.calls.length = 0;
      const st = await m.tree.getattr('/sqs/beta/_queue.json');
      await m.tree.read('/sqs/beta/_queue.json', 0, st.size);
      expect(m.calls.filter((c) => c.op === 'scan')).toEqual([]);
      expect(m.calls.every((c) => c.key.startsWith('!sqs|queue|meta|'))).toBe(true);
      m.calls.length = 0;
      expect(await m.tree.readdir('/sqs')).toEqual(['alpha', 'beta', 'gamma']);
      expect(m.calls.length).toBeGreaterThan(0);
      expect(m.calls.every((c) => c.op === 'scan' && c.key.startsWith('!sqs|queue|meta|'))).toBe(true);
    } finally {
      await m.close();
    }
  });

  it('messages.jsonl of one queue scans only that queue\'s keys', async () => {
    const m = await counted(many());
    try {
      m.calls.length = 0;
      const st = await m.tree.getattr('/sqs/beta/messages.jsonl');
      const body = (await m.tree.read('/sqs/beta/messages.jsonl', 0, st.size)).toString();
      expect(body.split('\n').length).toBe(21);
      const enc = Buffer.from('beta').toString('base64url');
      for (const c of m.calls) {
        const ok =
          (c.op === 'scan' && c.key === '!sqs|queue|meta|') || // the adapter root's existence check
          c.key === `!sqs|queue|meta|${enc}` || c.key === `!sqs|queue|gen|${enc}` || c.key.startsWith(`!sqs|msg|data|${enc}`) || c.key.startsWith(`!sqs|msg|data|p|${enc}|`);
        expect(ok, c.key).toBe(true);
      }
    } finally {
      await m.close();
    }
  });

  it('an empty keyspace has no sqs/ directory', async () => {
    const m = await counted([{ key: '!redis|str|k', value: 'v' }]);
    try {
      expect(existsSync('/nonexistent')).toBe(false);
      await expect(m.tree.getattr('/sqs')).rejects.toThrow();
    } finally {
      await m.close();
    }
  });
});

describe('sqs: the external sort', () => {
  const saved = { ...sortTuning };
  afterEach(() => Object.assign(sortTuning, saved));

  it('records larger than the run read buffer, merged in several passes, come out in order and whole', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'ekv-sqs-sort-test-'));
    try {
      Object.assign(sortTuning, { fanIn: 2, readBytes: 64, dir: runDir });
      const sorter = new ExternalSorter(4 << 10);
      const recs: SortRecord[] = [];
      for (let i = 0; i < 300; i++) {
        const line = Buffer.alloc(i % 7 === 0 ? 5000 + i : 10 + (i % 50), String.fromCharCode(97 + (i % 26)));
        recs.push({ sendTs: BigInt((i * 7919) % 101) - 50n, seq: BigInt(i % 3), messageId: Buffer.from(`id-${(i * 31) % 97}`), key: Buffer.from(`key-${i}`), line });
      }
      for (const r of recs) {
        const p = sorter.add(r);
        if (p) await p;
      }
      expect(sorter.stats.runs).toBeGreaterThan(4);
      const out: Buffer[] = [];
      await sorter.finish((l) => void out.push(l));
      const want = [...recs].sort(compareRecords).map((r) => r.line);
      expect(out.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(out[i]!.equals(want[i]!), `record ${i}`).toBe(true);
      expect(readdirSync(runDir)).toEqual([]);
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  });
});
