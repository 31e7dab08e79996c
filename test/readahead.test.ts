import { describe, expect, it } from 'vitest';
import { MemorySource } from '../src/source/memory.js';
import { ReadAheadSource } from '../src/source/readahead.js';
import type { KV, PageSource, ScanPageOptions } from '../src/source/types.js';
import { CountingSource } from './helpers/counting.js';
import { PinnedSource } from '../src/session/pinned.js';
import type { BackupSession } from '../src/session/session.js';
import { Metrics } from '../src/metrics.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function model(): MemorySource {
  const m = new MemorySource('m');
  for (let i = 0; i < 2000; i += 2) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}@10`), 10n);
  for (let i = 0; i < 2000; i += 10) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}@20`), 20n);
  for (let i = 0; i < 2000; i += 14) m.put(b(`k/${String(i).padStart(5, '0')}`), b(''), 30n, { tombstone: true });
  m.put(b('big/1'), Buffer.alloc(1 << 20, 1), 10n);
  m.put(b('big/2'), Buffer.alloc(1 << 20, 2), 10n);
  m.put(b('big/3'), Buffer.alloc(1 << 20, 3), 10n);
  return m;
}

describe('ReadAheadSource', () => {
  it('answers every get exactly as the source does, at every ts, for ascending, random and absent keys', async () => {
    const m = model();
    const ra = new ReadAheadSource(new CountingSource(m), { cacheBytes: 1 << 20 });
    for (const ts of [5n, 15n, 25n, 35n]) {
      const keys = Array.from({ length: 2000 }, (_, i) => b(`k/${String(i).padStart(5, '0')}`));
      for (const k of keys) expect((await ra.get(k, ts))?.toString() ?? null).toBe((await m.get(k, ts))?.toString() ?? null);
      for (let i = 0; i < 300; i++) {
        const k = keys[(i * 7919) % keys.length]!;
        expect((await ra.get(k, ts))?.toString() ?? null).toBe((await m.get(k, ts))?.toString() ?? null);
      }
      for (const k of [b('a'), b('k/'), b('k/99999'), b('zzz')]) expect(await ra.get(k, ts)).toBe(await m.get(k, ts));
    }
  });

  it('turns ascending gets into a few scan pages; random gets stay point reads', async () => {
    const c = new CountingSource(model());
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 2000; i++) await ra.get(b(`k/${String(i).padStart(5, '0')}`), 25n);
    expect(c.gets + c.pages).toBeLessThan(60);
    expect(ra.stats.hits).toBeGreaterThan(1900);
    const c2 = new CountingSource(model());
    const ra2 = new ReadAheadSource(c2);
    for (let i = 0; i < 200; i++) await ra2.get(b(`k/${String((i * 7919 + 13) % 2000).padStart(5, '0')}`), 25n);
    // Random access never turns into big pages: one call per get, at most ~2 keys each.
    expect(c2.pages + c2.gets).toBeLessThanOrEqual(200);
    expect(c2.rows + c2.gets).toBeLessThanOrEqual(400);
  });

  it('interleaved ascending readers each keep their own read-ahead stream', async () => {
    const m = new MemorySource('m4');
    for (const p of ['a', 'b', 'c', 'd']) for (let i = 0; i < 500; i++) m.put(b(`${p}/${String(i).padStart(4, '0')}`), b(`${p}${i}`), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 500; i++) {
      for (const p of ['a', 'b', 'c', 'd']) expect((await ra.get(b(`${p}/${String(i).padStart(4, '0')}`), 10n))?.toString()).toBe(`${p}${i}`);
    }
    expect(c.gets + c.pages).toBeLessThan(100); // 2000 gets
  });

  it('shrinks the window for large values', async () => {
    const c = new CountingSource(model());
    const ra = new ReadAheadSource(c, { targetBytes: 1 << 20 });
    for (const k of ['big/1', 'big/2', 'big/3']) expect((await ra.get(b(k), 10n))!.length).toBe(1 << 20);
    expect(ra.stats.hits).toBeLessThanOrEqual(1); // at most one 2-key page: the window shrank back
  });

  it('a burst of parallel gets ahead of the stream (FUSE readdirplus, cross-file read-ahead) rides a few doubling pages', async () => {
    for (const burst of [16, 128, 512]) {
      const m = new MemorySource('burst');
      for (let i = 0; i < 4000; i++) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}`), 10n);
      for (let i = 0; i < 4000; i += 9) m.put(b(`k/${String(i).padStart(5, '0')}`), b(''), 20n, { tombstone: true });
      const c = new CountingSource(new SlowSource(m));
      const ra = new ReadAheadSource(c);
      for (let i = 0; i < 4000; i += burst) {
        const keys = Array.from({ length: Math.min(burst, 4000 - i) }, (_, j) => b(`k/${String(i + j).padStart(5, '0')}`));
        const got = await Promise.all(keys.map((k) => ra.get(k, 25n)));
        for (let j = 0; j < keys.length; j++) expect(got[j]?.toString() ?? null).toBe((i + j) % 9 === 0 ? null : `v${i + j}`);
      }
      // Without waiting on pages in flight this took ~2 calls per 3 gets at a burst of 512.
      expect(c.gets + c.pages, `burst ${burst}`).toBeLessThan(40);
    }
  });

  it('a sequential reader has the next page fetched before it gets there', async () => {
    const m = new MemorySource('seq');
    for (let i = 0; i < 3000; i++) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}`), 10n);
    const ra = new ReadAheadSource(new SlowSource(m));
    for (let i = 0; i < 3000; i++) expect((await ra.get(b(`k/${String(i).padStart(5, '0')}`), 10n))?.toString()).toBe(`v${i}`);
    expect(ra.stats.prefetches).toBeGreaterThan(5);
    expect(ra.stats.pages).toBeLessThan(25);
  });

  it('a sequential reader has the next page asked for once it is an eighth into the current one', async () => {
    const m = new MemorySource('seq8');
    const key = (i: number): Buffer => b(`k/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < 4000; i++) m.put(key(i), b(`v${i}`), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    // Where the reader was when each page was asked for, and where the page starts.
    const asked: { at: number; start: number }[] = [];
    for (let i = 0; i < 4000; i++) {
      const before = c.calls.length;
      expect((await ra.get(key(i), 10n))?.toString()).toBe(`v${i}`);
      for (const call of c.calls.slice(before)) if (call.op === 'scan') asked.push({ at: i, start: parseInt(call.key.slice(2), 10) });
    }
    // Pages asked for ahead of the reader (its prefetches): how far into the page before was it?
    const ahead = asked.map((a, j) => ({ ...a, prev: asked[j - 1]?.start ?? 0 })).filter((a) => a.at < a.start && a.start - a.prev >= 256);
    expect(ahead.length).toBeGreaterThan(4);
    for (const a of ahead) expect(a.at - a.prev, `page at ${a.start}`).toBeLessThanOrEqual((a.start - a.prev) / 8 + 1);
  });

  it('a stream crossing into another key family starts over at one key: small values before do not size a page of large ones', async () => {
    const m = new MemorySource('families');
    const small = (i: number): Buffer => b(`!redis|str|k${String(i).padStart(5, '0')}`);
    const large = (i: number): Buffer => b(`!s3|blob|o${String(i).padStart(5, '0')}`);
    for (let i = 0; i < 3000; i++) m.put(small(i), b(`v${i}`), 10n);
    for (let i = 0; i < 64; i++) m.put(large(i), Buffer.alloc(512 << 10, i), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 3000; i++) expect((await ra.get(small(i), 10n))?.toString()).toBe(`v${i}`);
    for (let i = 0; i < 64; i++) expect((await ra.get(large(i), 10n))?.[0]).toBe(i);
    const pages = c.calls.filter((x) => x.op === 'scan');
    const limits = (prefix: string): number[] => pages.filter((x) => x.key.startsWith(prefix)).map((x) => x.limit!);
    expect(Math.max(...limits('!redis|'))).toBeGreaterThanOrEqual(256); // the small values' pages grew
    // Before: the page after the last strings ran on into the objects (all 64 of them, 32 MiB,
    // in one page), and the next family's first page asked for 512 keys.
    expect(Math.max(...pages.map((x) => x.valueBytes!))).toBeLessThanOrEqual(8 << 20);
    expect(Math.max(...limits('!s3|'))).toBeLessThanOrEqual(16);
  });

  it('a failed page fails only the gets that needed it; the next get asks again', async () => {
    const m = new MemorySource('fail');
    for (let i = 0; i < 100; i++) m.put(b(`k/${String(i).padStart(3, '0')}`), b(`v${i}`), 10n);
    const flaky = new SlowSource(m);
    const ra = new ReadAheadSource(flaky);
    for (let i = 0; i < 10; i++) await ra.get(b(`k/${String(i).padStart(3, '0')}`), 10n);
    // The page the reader had fetched ahead lands first: the failure is then one the burst needs.
    await new Promise((r) => setTimeout(r, 20));
    flaky.failNext = true;
    const burst = await Promise.allSettled(Array.from({ length: 20 }, (_, j) => ra.get(b(`k/${String(50 + j).padStart(3, '0')}`), 10n)));
    expect(burst.some((r) => r.status === 'rejected')).toBe(true);
    for (const [j, r] of burst.entries()) if (r.status === 'fulfilled') expect(r.value?.toString()).toBe(`v${50 + j}`);
    for (let i = 50; i < 100; i++) expect((await ra.get(b(`k/${String(i).padStart(3, '0')}`), 10n))?.toString()).toBe(`v${i}`);
  });
});

describe('sources in front of the cluster', () => {
  it('pass on when their requests are on the wire (PageSource.sent), each in the stack the live mount uses', async () => {
    let asked = 0;
    const wire: PageSource = Object.assign(new MemorySource('wire'), {
      sent: (): Promise<void> => {
        asked++;
        return Promise.resolve();
      },
    });
    const session = { check: (): void => {}, mode: 'pinned' } as unknown as BackupSession;
    // As runner.ts and live.ts stack them: counted, read ahead, gated by the pin, the cluster.
    const stack = new Metrics().instrument(new ReadAheadSource(new PinnedSource(wire, session)));
    await stack.sent?.();
    expect(asked).toBe(1);
    // Nothing on a wire below: resolved all the same, nothing asked.
    await new ReadAheadSource(new MemorySource('local')).sent();
    expect(asked).toBe(1);
  });
});

describe('ReadAheadSource scans', () => {
  const key = (i: number): Buffer => b(`k/${String(i).padStart(5, '0')}`);
  const show = (kvs: KV[]): string[] => kvs.map((kv) => `${kv.key.toString('latin1')}=${kv.value.toString('latin1')}`);

  it('answers every scan exactly as the source does once pages are cached: bounds, limits, keys-only, every ts', async () => {
    const m = model();
    const ra = new ReadAheadSource(new CountingSource(m), { cacheBytes: 1 << 20, maxWindow: 64 });
    let seed = 7;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (const ts of [5n, 15n, 25n, 35n]) {
      for (let i = 0; i < 2000; i++) {
        // A walk: gets ascend (so pages get cached) and scans land on, across and past them.
        await ra.get(key(i), ts);
        if (i % 17 !== 0) continue;
        const s = i + rnd(300) - 20;
        const e = rnd(4) === 0 ? null : key(s + rnd(400));
        const opts = { limit: 1 + rnd(200), keysOnly: rnd(2) === 0 };
        const want = await m.scanPage(key(s), e, ts, opts);
        const got = await ra.scanPage(key(s), e, ts, opts);
        expect(show(got), `ts ${ts} scan ${s}..${e?.toString() ?? '∞'} ${JSON.stringify(opts)}`).toEqual(show(opts.keysOnly ? want.map((kv) => ({ key: kv.key, value: b('') })) : want));
      }
    }
    expect(ra.stats.scanHits).toBeGreaterThan(100);
  });

  it('a tree walk (a small scan per directory, then gets of its files) costs a few pages, not a call per directory', async () => {
    const m = new MemorySource('walk');
    for (let d = 0; d < 400; d++) for (let f = 0; f < 3; f++) m.put(b(`t/${String(d).padStart(4, '0')}/${f}`), b(`d${d}f${f}`), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    for (let d = 0; d < 400; d++) {
      const dir = b(`t/${String(d).padStart(4, '0')}/`);
      const dirEnd = b(`t/${String(d).padStart(4, '0')}0`);
      expect((await ra.scanPage(dir, dirEnd, 10n, { limit: 1, keysOnly: true })).length).toBe(1); // exists?
      const names = await ra.scanPage(dir, dirEnd, 10n, { limit: 1024, keysOnly: true });
      expect(names.map((kv) => kv.key.toString('latin1'))).toEqual([0, 1, 2].map((f) => `${dir.toString('latin1')}${f}`));
      for (const kv of names) expect((await ra.get(kv.key, 10n))?.toString()).toBe(`d${d}f${kv.key.toString('latin1').slice(-1)}`);
    }
    // 400 directories, 2000 calls without scans riding the pages.
    expect(c.gets + c.pages).toBeLessThan(40);
  });

  it('a keys-only listing (full pages) stays plain keys-only scans', async () => {
    const m = model();
    const seen: boolean[] = [];
    const spy: PageSource = {
      label: 'spy',
      scanPage: (s, e, ts, o) => {
        seen.push(o.keysOnly ?? false);
        return m.scanPage(s, e, ts, o);
      },
      get: (k, ts) => m.get(k, ts),
      close: () => m.close(),
    };
    const ra = new ReadAheadSource(spy);
    // A directory listing pages on with cursor = last key + 0x00; every page but the last is full.
    let cursor = key(0);
    for (;;) {
      const page = await ra.scanPage(cursor, key(2000), 10n, { limit: 50, keysOnly: true });
      if (page.length < 50) break;
      cursor = Buffer.concat([page[page.length - 1]!.key, Buffer.alloc(1)]);
    }
    expect(seen.every((k) => k)).toBe(true);
    expect(seen.length).toBe(21); // 1000 keys: 20 full pages and an empty one
    // Gets elsewhere (their own pages carry values) do not make a listing below them fetch values.
    for (const i of [1500, 20, 900, 901, 902]) await ra.get(key(i), 10n);
    seen.length = 0;
    expect((await ra.scanPage(key(0), null, 10n, { limit: 10, keysOnly: true })).length).toBe(10);
    expect(seen).toEqual([true]);
  });

  it('small scans ascending through one key family (a Redis walk: one collection after another) ride pages of that family', async () => {
    const m = new MemorySource('family');
    const fld = (k: number, f: number): Buffer => b(`!hs|fld|${String(k).padStart(5, '0')}|${f}`);
    const mem = (k: number, f: number): Buffer => b(`!st|mem|${String(k).padStart(5, '0')}|${f}`);
    for (let k = 0; k < 3000; k++) {
      for (let f = 0; f < 1 + (k % 3); f++) m.put(fld(k, f), b(`h${k}.${f}`), 10n);
      if (k % 7 === 0) m.put(fld(k, 0), b(''), 20n, { tombstone: true });
      for (let f = 0; f < 2; f++) m.put(mem(k, f), b(''), 10n);
    }
    m.put(b('!hs|fld}'), b('next family'), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    const prefix = (p: string, k: number): [Buffer, Buffer] => [b(`${p}${String(k).padStart(5, '0')}|`), b(`${p}${String(k).padStart(5, '0')}}`)];
    for (const ts of [15n, 25n]) {
      c.reset();
      for (let k = 0; k < 3000; k++) {
        // Per file: the hash's fields (with values), then the set's members (keys only), as the Redis adapter asks.
        const [hs, he] = prefix('!hs|fld|', k);
        const [ss, se] = prefix('!st|mem|', k);
        const opts = { limit: 1024 };
        expect(show(await ra.scanPage(hs, he, ts, opts)), `hash ${k} at ${ts}`).toEqual(show(await m.scanPage(hs, he, ts, opts)));
        const keys = await ra.scanPage(ss, se, ts, { limit: 1024, keysOnly: true });
        expect(keys.map((kv) => kv.key.toString('latin1'))).toEqual([0, 1].map((f) => mem(k, f).toString('latin1')));
        expect(keys.every((kv) => kv.value.length === 0)).toBe(true);
      }
      // 6000 scans; before, one call each.
      expect(c.pages + c.gets, `calls at ${ts}`).toBeLessThan(120);
      // Pages stayed inside their family, and the members' pages carried no values.
      expect(c.calls.filter((x) => x.op === 'scan').every((x) => x.end === '!hs|fld}' || x.end === '!st|mem}' || x.end?.startsWith('!hs|fld|') || x.end?.startsWith('!st|mem|'))).toBe(true);
    }
    // A value scan is never answered from a keys-only page.
    const [ss] = prefix('!st|mem|', 2999);
    m.put(mem(2999, 0), b('now a value'), 12n);
    expect((await ra.scanPage(ss, b('!st|mem}'), 25n, { limit: 1 }))[0]!.value.toString()).toBe('now a value');
  });

  it('scans that do not ascend, or are unbounded, stay plain scans', async () => {
    const m = new MemorySource('plain');
    for (let k = 0; k < 500; k++) m.put(b(`!hs|fld|${String(k).padStart(4, '0')}|a`), b(`v${k}`), 10n);
    const c = new CountingSource(m);
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 200; i++) {
      const k = (i * 7919) % 500;
      const s = b(`!hs|fld|${String(k).padStart(4, '0')}|`);
      const e = b(`!hs|fld|${String(k).padStart(4, '0')}}`);
      expect(show(await ra.scanPage(s, e, 10n, { limit: 10 }))).toEqual([`!hs|fld|${String(k).padStart(4, '0')}|a=v${k}`]);
    }
    // Random order: a page only where three scans happen to ascend, never one a scan (200 x 64 keys).
    expect(c.rows).toBeLessThan(2000);
    const c2 = new CountingSource(m);
    const ra2 = new ReadAheadSource(c2);
    for (let k = 0; k < 50; k++) expect((await ra2.scanPage(b(`!hs|fld|${String(k).padStart(4, '0')}|`), null, 10n, { limit: 1 })).length).toBe(1);
    // Unbounded (or full) scans are not a family walk: each stays a plain scan of its own limit.
    expect(c2.pages).toBe(50);
    expect(c2.maxLimit).toBe(1);
  });

  it('a walk through large values (S3 chunks) rides pages of about 4 MiB, each key fetched once, whatever the options', async () => {
    const m = new MemorySource('blobs');
    const obj = (i: number): string => `!s3|blob|bk|o${String(i).padStart(5, '0')}|`;
    for (let i = 0; i < 400; i++) m.put(b(`${obj(i)}0`), Buffer.alloc(256 << 10, i & 255), 10n);
    const walk = async (opts: { targetBytes?: number; cacheBytes?: number }): Promise<CountingSource> => {
      const c = new CountingSource(m);
      const ra = new ReadAheadSource(c, opts);
      for (let i = 0; i < 400; i++) {
        // One object's chunks, object after object, as the S3 adapter reads them.
        const r = await ra.scanPage(b(obj(i)), b(`${obj(i).slice(0, -1)}}`), 10n, { limit: 64 });
        expect(r.map((kv) => kv.value[0]), `object ${i}`).toEqual([i & 255]);
      }
      return c;
    };
    // 100 MiB: 2 MiB pages took 59 calls; every call costs the server a share of its own.
    const d = await walk({});
    expect(d.rows).toBe(400);
    expect(d.pages).toBeLessThanOrEqual(34);
    // A page past half the cache was evicted under its reader by the next one and fetched
    // again (1314 and 1579 rows here): pages are held to an eighth of the cache.
    for (const [targetBytes, cacheBytes] of [[24 << 20, 32 << 20], [6 << 20, 8 << 20]]) {
      expect((await walk({ targetBytes, cacheBytes })).rows, `${targetBytes} in ${cacheBytes}`).toBe(400);
    }
  });

  it('a scan waits for the page on the wire that covers it instead of asking again', async () => {
    const m = new MemorySource('wire');
    for (let i = 0; i < 1000; i++) m.put(key(i), b(`v${i}`), 10n);
    const c = new CountingSource(new SlowSource(m));
    const ra = new ReadAheadSource(c);
    for (let i = 0; i < 8; i++) await ra.get(key(i), 10n);
    const before = c.pages + c.gets;
    // The stream jumps ahead: its get puts a page on the wire that the scan beside it rides.
    const [g, sc] = await Promise.all([ra.get(key(500), 10n), ra.scanPage(key(501), key(504), 10n, { limit: 10 })]);
    expect(g?.toString()).toBe('v500');
    expect(show(sc)).toEqual(['k/00501=v501', 'k/00502=v502', 'k/00503=v503']);
    expect(c.pages + c.gets - before).toBe(1);
  });
});

/** A source that answers after a timer (so parallel gets overlap pages in flight), optionally failing one call. */
class SlowSource implements PageSource {
  readonly label = 'slow';
  failNext = false;
  constructor(private readonly inner: PageSource) {}
  private async delay(): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('injected failure');
    }
  }
  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    await this.delay();
    return this.inner.scanPage(start, end, ts, opts);
  }
  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    await this.delay();
    return this.inner.get(key, ts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
