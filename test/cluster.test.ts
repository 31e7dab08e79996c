import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterSource, contract, normalizePage, MAX_SCAN_LIMIT } from '../src/source/cluster.js';
import { SnapshotView, prefixEnd } from '../src/source/range.js';
import { SourceError, type KV } from '../src/source/types.js';
import { startDevCluster, type DevCluster } from '../src/devcluster/server.js';
import { captureLog, sampleSource, b } from './helpers/devcluster.js';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';


const hex = (kvs: KV[]): string[] => kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')}`);

async function deadEndpoint(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

describe('contract', () => {
  it('uses elastickv method paths (no proto package)', () => {
    const c = contract();
    expect(c.RawKV.RawScanAt!.path).toBe('/RawKV/RawScanAt');
    expect(c.RawKV.RawGet!.path).toBe('/RawKV/RawGet');
    expect(c.RawKV.RawPut!.path).toBe('/RawKV/RawPut');
    expect(c.Distribution.GetTimestamp!.path).toBe('/Distribution/GetTimestamp');
    expect(c.Admin.BeginBackup!.path).toBe('/Admin/BeginBackup');
    expect(c.Admin.RenewBackup!.path).toBe('/Admin/RenewBackup');
    expect(c.Admin.EndBackup!.path).toBe('/Admin/EndBackup');
    expect(c.Admin.ListAdaptersAndScopes!.path).toBe('/Admin/ListAdaptersAndScopes');
  });

  it('encodes field numbers as elastickv does', () => {
    const c = contract();
    // RawGetRequest: key = 1, ts = 3, group_id = 4
    const get = c.RawKV.RawGet!.requestSerialize({ key: b('k'), ts: '300' });
    expect(get.toString('hex')).toBe('0a016b18ac02');
    // RawScanAtRequest: start=1 end=2 limit=3 ts=4 reverse=5 group=6 keys_only=7
    const scan = c.RawKV.RawScanAt!.requestSerialize({ start_key: b('a'), end_key: b('b'), limit: '2', ts: '1', keys_only: true });
    expect(scan.toString('hex')).toBe('0a0161120162180220013801');
    // BeginBackupResponse: read_ts=1 pin_token=2 ttl_ms_effective=3
    const begin = c.Admin.BeginBackup!.responseSerialize({ read_ts: '5', pin_token: b('t'), ttl_ms_effective: '60000', shards: [], expected_keys: [] });
    expect(begin.toString('hex')).toBe('080512017418e0d403');
    // Unset proto3 fields stay off the wire (ClusterSource never sends explicit zeros).
    expect(c.RawKV.RawScanAt!.requestSerialize({ start_key: b('a'), limit: '5', ts: '9' }).toString('hex')).toBe('0a016118052009');
  });
});

describe('ClusterSource against the dev cluster', () => {
  let dc: DevCluster;
  const mem = sampleSource();
  const cap = captureLog();
  let src: ClusterSource;

  beforeAll(async () => {
    dc = await startDevCluster({ source: mem, log: cap.log });
    src = new ClusterSource({ endpoints: [dc.address], concurrency: 4 });
  });
  afterAll(async () => {
    await src.close();
    await dc.close();
  });

  it('logs listening', () => {
    expect(cap.byMsg('listening')[0]).toMatchObject({ address: dc.address, backup_rpc: true });
  });

  it('scanPage returns the same pages as MemorySource at every ts', async () => {
    const ranges: [Buffer, Buffer | null][] = [
      [Buffer.alloc(0), null],
      [b('a'), b('b')],
      [b('ab'), null],
      [b('k/'), prefixEnd(b('k/'))],
      [Buffer.from([0x7f]), Buffer.from([0xff, 0x01])],
      [b('z'), b('a')],
    ];
    for (const ts of [6n, 11n, 16n, 21n, 22n, 26n, 100n]) {
      for (const [start, end] of ranges) {
        for (const limit of [1, 3, 1024, 1025, 3000]) {
          for (const keysOnly of [false, true]) {
            const want = await mem.scanPage(start, end, ts, { limit, keysOnly });
            const got = await src.scanPage(start, end, ts, { limit, keysOnly });
            expect(hex(got), `ts=${ts} start=${start.toString('hex')} limit=${limit}`).toEqual(hex(want));
          }
        }
      }
    }
  });

  it('get matches MemorySource, missing keys are null', async () => {
    for (const ts of [6n, 11n, 21n, 22n, 26n]) {
      for (const k of [b('a'), b('ab'), b('abc'), b('b'), b('nope'), Buffer.from([0]), b('k/00007')]) {
        const want = await mem.get(k, ts);
        const got = await src.get(k, ts);
        expect(got === null ? null : got.toString('hex')).toEqual(want === null ? null : want.toString('hex'));
      }
    }
    expect((await src.get(b('abc'), 20n))?.length).toBe(0); // present, empty value
  });

  it('pages through SnapshotView with cursor = last key + 0x00', async () => {
    const memView = new SnapshotView(mem, 30n, 7);
    const view = new SnapshotView(src, 30n, 7);
    const want: string[] = [];
    for await (const kv of memView.scanPrefix('k/')) want.push(kv.key.toString());
    const got: string[] = [];
    for await (const kv of view.scanPrefix('k/')) got.push(kv.key.toString());
    expect(got).toEqual(want);
    expect(got.length).toBe(2100);
    const all: string[] = [];
    for await (const kv of new SnapshotView(src, 30n, MAX_SCAN_LIMIT).scan(Buffer.alloc(0), null, { keysOnly: true })) all.push(kv.key.toString('hex'));
    expect(all).toEqual([...all].sort((x, y) => Buffer.compare(Buffer.from(x, 'hex'), Buffer.from(y, 'hex'))));
  });

  it('a RawPut version is invisible at earlier ts', async () => {
    const ts = dc.put(b('new'), b('fresh'));
    expect(await src.get(b('new'), ts - 1n)).toBeNull();
    expect((await src.get(b('new'), ts))?.toString()).toBe('fresh');
  });

  it('bounds concurrency', async () => {
    const slow = await startDevCluster({ source: mem, latencyMs: 60, log: captureLog().log });
    const one = new ClusterSource({ endpoints: [slow.address], concurrency: 2 });
    try {
      await one.get(b('a'), 30n); // connect
      const t0 = Date.now();
      await Promise.all(Array.from({ length: 6 }, () => one.get(b('a'), 30n)));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(170);
    } finally {
      await one.close();
      await slow.close();
    }
  });
});

describe('a scan over the cluster, page by page', () => {
  it('has the next page on the wire while the caller works through the one in hand', async () => {
    // The server runs in a worker thread, on an event loop of its own, and counts the scans
    // asked of it in shared memory: this thread reads the count while it works without yielding.
    // (Node writes a request's HTTP/2 frames in a later turn of the event loop: without the
    // scan letting that turn come, the next page was asked for only once the caller was done.)
    const asked = new Int32Array(new SharedArrayBuffer(4));
    const memJs = new URL('../dist/source/memory.js', import.meta.url).href;
    const serverJs = new URL('../dist/devcluster/server.js', import.meta.url).href;
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { MemorySource } = await import(workerData.memJs);
        const { startDevCluster } = await import(workerData.serverJs);
        const m = new MemorySource('paged');
        for (let i = 0; i < 40; i++) m.put(Buffer.from('k/' + String(i).padStart(3, '0')), Buffer.alloc(100, i), 10n);
        const scanPage = m.scanPage.bind(m);
        m.scanPage = (...a) => { Atomics.add(workerData.asked, 0, 1); return scanPage(...a); };
        const dc = await startDevCluster({ source: m, logLevel: 'silent' });
        parentPort.postMessage(dc.address);
        parentPort.once('message', () => dc.close().then(() => parentPort.close()));
      })();`,
      { eval: true, workerData: { asked, memJs, serverJs } },
    );
    const address = await new Promise<string>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const src = new ClusterSource({ endpoints: [address] });
    try {
      const view = new SnapshotView(src, await src.client.getTimestamp(), 8);
      const onWire: boolean[] = [];
      let keys = 0;
      for await (const page of view.scanPages(b('k/'), prefixEnd(b('k/')), { pageSize: 8 })) {
        keys += page.length;
        // Every page here is full, so the scan has asked for the next one (the last: an empty one).
        const want = onWire.length + 2;
        const until = Date.now() + 1000;
        while (Atomics.load(asked, 0) < want && Date.now() < until);
        onWire.push(Atomics.load(asked, 0) >= want);
      }
      expect(keys).toBe(40);
      expect(onWire).toEqual([true, true, true, true, true]);
    } finally {
      await src.close();
      worker.postMessage('close');
      await new Promise((r) => worker.once('exit', r));
    }
  });
});

describe('ClusterSource failover, auth and errors', () => {
  it('fails over from a dead endpoint', async () => {
    const dc = await startDevCluster({ source: sampleSource(), log: captureLog().log });
    const cap = captureLog();
    const src = new ClusterSource({ endpoints: [await deadEndpoint(), dc.address], log: cap.log });
    try {
      expect((await src.get(b('a'), 30n))?.toString()).toBe('a@20');
      expect(src.client.stats.failovers).toBe(1);
      expect(cap.byMsg('cluster endpoint failed, failing over').length).toBe(1);
      expect(src.label).toBe(`cluster:${src.client.endpoints.join(',')}`);
    } finally {
      await src.close();
      await dc.close();
    }
  });

  it('survives dropped connections and a random UNAVAILABLE rate', async () => {
    const mem = sampleSource();
    const dc = await startDevCluster({ source: mem, failRate: 0.3, log: captureLog().log });
    const src = new ClusterSource({ endpoints: [dc.address], maxAttempts: 12, backoffMs: 5 });
    try {
      for (let i = 0; i < 5; i++) {
        const got = await src.scanPage(b('k/'), null, 30n, { limit: 50 });
        expect(hex(got)).toEqual(hex(await mem.scanPage(b('k/'), null, 30n, { limit: 50 })));
        dc.dropConnections();
      }
    } finally {
      await src.close();
      await dc.close();
    }
  });

  it('maps UNAVAILABLE to SourceError unavailable once retries are spent', async () => {
    const src = new ClusterSource({ endpoints: [await deadEndpoint()], maxAttempts: 2, backoffMs: 1 });
    try {
      const e = await src.get(b('a'), 30n).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SourceError);
      expect((e as SourceError).code).toBe('unavailable');
    } finally {
      await src.close();
    }
  });

  it('sends the token as a Bearer header; the server refuses without it', async () => {
    const dc = await startDevCluster({ source: sampleSource(), token: 's3cret', authAll: true, log: captureLog().log });
    const good = new ClusterSource({ endpoints: [dc.address], token: 's3cret' });
    const none = new ClusterSource({ endpoints: [dc.address] });
    const bad = new ClusterSource({ endpoints: [dc.address], token: 'wrong' });
    try {
      expect((await good.get(b('a'), 30n))?.toString()).toBe('a@20');
      const e1 = (await none.get(b('a'), 30n).catch((x: unknown) => x)) as SourceError;
      expect(e1.code).toBe('unauthenticated');
      expect(e1.message).toContain('missing authorization header');
      const e2 = (await bad.get(b('a'), 30n).catch((x: unknown) => x)) as SourceError;
      expect(e2.code).toBe('unauthenticated');
      expect(e2.message).not.toContain('wrong'); // tokens never appear in messages
    } finally {
      await Promise.all([good.close(), none.close(), bad.close()]);
      await dc.close();
    }
  });

  it('a read below the compaction watermark is SourceError compacted', async () => {
    const dc = await startDevCluster({ source: sampleSource(), log: captureLog().log });
    const src = new ClusterSource({ endpoints: [dc.address] });
    try {
      dc.compactTo(21n);
      for (const p of [src.get(b('a'), 20n), src.scanPage(Buffer.alloc(0), null, 20n, { limit: 10 })]) {
        const e = (await p.catch((x: unknown) => x)) as SourceError;
        expect(e).toBeInstanceOf(SourceError);
        expect(e.code).toBe('compacted');
        expect(e.message).toContain('read timestamp has been compacted');
      }
      expect((await src.get(b('a'), 21n))?.toString()).toBe('a@20');
    } finally {
      await src.close();
      await dc.close();
    }
  });
});

describe('ClusterSource deadlines and TLS', () => {
  it('a call past its deadline is SourceError timeout', async () => {
    const dc = await startDevCluster({ source: sampleSource(), latencyMs: 300, log: captureLog().log });
    const src = new ClusterSource({ endpoints: [dc.address], deadlineMs: 80, maxAttempts: 1 });
    try {
      expect(((await src.get(b('a'), 30n).catch((x: unknown) => x)) as SourceError).code).toBe('timeout');
    } finally {
      await src.close();
      await dc.close();
    }
  });

  it('speaks TLS with a CA bundle; plaintext clients are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekv-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'cert.pem'));
      const key = readFileSync(join(dir, 'key.pem'));
      const dc = await startDevCluster({ source: sampleSource(), tls: { cert, key }, log: captureLog().log });
      const tls = new ClusterSource({ endpoints: [dc.address], tls: { ca: cert } });
      const plain = new ClusterSource({ endpoints: [dc.address], maxAttempts: 1 });
      try {
        expect((await tls.get(b('a'), 30n))?.toString()).toBe('a@20');
        expect(((await plain.get(b('a'), 30n).catch((x: unknown) => x)) as SourceError).code).toBe('unavailable');
      } finally {
        await tls.close();
        await plain.close();
        await dc.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('normalizePage', () => {
  it('sorts by unsigned bytes, dedupes, clips to range and limit', () => {
    const raw = [b('c'), Buffer.from([0xff]), b('a'), Buffer.from([0x80]), b('c'), b('0')].map((key) => ({ key, value: key }));
    expect(normalizePage(raw, b('1'), Buffer.from([0xff]), false, 10).map((k) => k.key.toString('hex'))).toEqual(['61', '63', '80']);
    expect(normalizePage(raw, Buffer.alloc(0), null, true, 2).map((k) => [k.key.toString('hex'), k.value.length])).toEqual([
      ['30', 0],
      ['61', 0],
    ]);
  });
});
