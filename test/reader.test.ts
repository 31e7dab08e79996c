import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SnapshotSource, readFsmEntries, readFsmHeader } from '../src/source/snapshot.js';
import { SnapshotView } from '../src/source/range.js';
import { SourceError } from '../src/source/types.js';
import { MemorySource } from '../src/source/memory.js';
import { encodeFsm, writeFsm, type FsmEntry } from './fixture/fsm-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'ekv-reader-'));
let n = 0;
function fsm(entries: FsmEntry[], last = 1000n): string {
  const p = join(dir, `${++n}.fsm`);
  writeFsm(p, entries, last);
  return p;
}
async function openErr(path: string): Promise<SourceError> {
  try {
    await SnapshotSource.open(path);
  } catch (e) {
    expect(e).toBeInstanceOf(SourceError);
    return e as SourceError;
  }
  throw new Error('expected open to fail');
}
const b = (s: string) => Buffer.from(s, 'latin1');
async function all(src: SnapshotSource, ts: bigint, page = 1000): Promise<[string, string][]> {
  const view = new SnapshotView(src, ts, page);
  const out: [string, string][] = [];
  for await (const kv of view.scan(Buffer.alloc(0), null)) out.push([kv.key.toString('latin1'), kv.value.toString('latin1')]);
  return out;
}

describe('.fsm reader', () => {
  it('reads a good file: header, sorted keys, values, gets', async () => {
    const p = fsm([
      { key: 'b', value: 'B' },
      { key: 'a', value: 'A' },
      { key: 'c', value: '' },
    ], 4242n);
    const src = await SnapshotSource.open(p);
    expect(src.lastCommitTS).toBe(4242n);
    expect(await all(src, 4242n)).toEqual([['a', 'A'], ['b', 'B'], ['c', '']]);
    expect((await src.get(b('b'), 4242n))?.toString()).toBe('B');
    expect(await src.get(b('bb'), 4242n)).toBeNull();
    expect((await readFsmHeader(p)).lastCommitTS).toBe(4242n);
    await src.close();
  });

  it('maxCommitTS: the newest commit of any entry (64-bit, both halves compared), or the header when that is newer', async () => {
    const newer = (1n << 40n) + 5n; // differs from the runner-up in the high half only
    const src = await SnapshotSource.open(fsm([
      { key: 'a', value: 'A', ts: (1n << 32n) + 7n },
      { key: 'b', value: 'B', ts: newer },
      { key: 'b', value: 'B0', ts: 12n },
      { key: 'c', value: 'C', ts: (1n << 40n) + 4n }, // same high half as `newer`, lower low half
    ], 99n));
    expect(src.maxCommitTS).toBe(newer);
    await src.close();
    const old = await SnapshotSource.open(fsm([{ key: 'a', value: 'A', ts: 3n }], 5000n));
    expect(old.maxCommitTS).toBe(5000n);
    await old.close();
  });

  it('a keys-only scan past large values reads around each header, not a page per key (S3 chunk keys)', async () => {
    const n = 40;
    const big = 'v'.repeat(300 * 1024);
    const src = await SnapshotSource.open(fsm(Array.from({ length: n }, (_, i) => ({ key: `!s3|blob|k${String(i).padStart(3, '0')}`, value: big }))));
    const before = { ...src.io };
    const page = await src.scanPage(b('!s3|blob|'), b('!s3|blob}'), 1000n, { limit: 1000, keysOnly: true });
    expect(page.map((kv) => kv.key.toString())).toEqual(Array.from({ length: n }, (_, i) => `!s3|blob|k${String(i).padStart(3, '0')}`));
    // One 128 KiB page per key was 5 MiB here; a 4 KiB read per header is 160 KiB.
    expect(src.io.bytes - before.bytes).toBeLessThan(n * 16 * 1024);
    // The values still read whole and right, through the same reader.
    const vals = await src.scanPage(b('!s3|blob|'), b('!s3|blob}'), 1000n, { limit: 3, keysOnly: false });
    expect(vals.map((kv) => kv.value.length)).toEqual([big.length, big.length, big.length]);
    expect(vals.every((kv) => kv.value.toString() === big)).toBe(true);
    await src.close();
  });

  it('an empty snapshot (header only) mounts with no keys', async () => {
    const src = await SnapshotSource.open(fsm([], 7n));
    expect(await all(src, 7n)).toEqual([]);
    await src.close();
  });

  it('resolves several versions: newest at or below read_ts wins', async () => {
    const p = fsm([
      { key: 'k', value: 'v1', ts: 10n },
      { key: 'k', value: 'v2', ts: 20n },
      { key: 'k', value: 'v3', ts: 30n },
    ]);
    const src = await SnapshotSource.open(p);
    expect(await src.get(b('k'), 5n)).toBeNull();
    expect((await src.get(b('k'), 10n))?.toString()).toBe('v1');
    expect((await src.get(b('k'), 25n))?.toString()).toBe('v2');
    expect((await src.get(b('k'), 1000n))?.toString()).toBe('v3');
    expect(await all(src, 25n)).toEqual([['k', 'v2']]);
    await src.close();
  });

  it('tombstones hide older versions; a later put resurrects', async () => {
    const p = fsm([
      { key: 'k', value: 'v1', ts: 10n },
      { key: 'k', value: '', ts: 20n, tombstone: true },
      { key: 'k', value: 'v3', ts: 30n },
      { key: 'z', value: 'zz', ts: 10n },
    ]);
    const src = await SnapshotSource.open(p);
    expect(await src.get(b('k'), 25n)).toBeNull();
    expect(await all(src, 25n)).toEqual([['z', 'zz']]);
    expect(await all(src, 30n)).toEqual([['k', 'v3'], ['z', 'zz']]);
    await src.close();
  });

  it('expired entries are hidden exactly as the store hides them (expireAt <= ts)', async () => {
    const p = fsm([
      { key: 'a', value: 'A', ts: 10n, expireAt: 50n },
      { key: 'b', value: 'B', ts: 10n, expireAt: 0n },
    ]);
    const src = await SnapshotSource.open(p);
    expect(await all(src, 49n)).toEqual([['a', 'A'], ['b', 'B']]);
    expect(await all(src, 50n)).toEqual([['b', 'B']]);
    await src.close();
  });

  it('returns user-key order when a key is a prefix of another (encoded order differs)', async () => {
    // "a"+^ts sorts after "ab"+^ts in Pebble's bytewise order; scans must still be a < ab < b.
    const keys = ['a', 'ab', 'abc', 'a\x01', 'b', 'ba', '', 'a\xff\xff'];
    const src = await SnapshotSource.open(fsm(keys.map((k, i) => ({ key: b(k), value: `v${i}`, ts: 100n + BigInt(i) }))));
    const got = (await all(src, 1000n, 3)).map(([k]) => k);
    expect(got).toEqual([...keys].sort((x, y) => Buffer.compare(b(x), b(y))));
    for (const [i, k] of keys.entries()) expect((await src.get(b(k), 1000n))?.toString()).toBe(`v${i}`);
    expect(src.stats.displaced).toBeGreaterThan(0);
    await src.close();
  });

  it('pages with cursor = last key + 0x00 across many keys and index points', async () => {
    const entries: FsmEntry[] = [];
    for (let i = 0; i < 3000; i++) entries.push({ key: `key${String(i).padStart(5, '0')}`, value: Buffer.alloc(100, i % 251) });
    const src = await SnapshotSource.open(fsm(entries));
    expect(src.stats.indexPoints).toBeGreaterThan(10);
    const got = await all(src, 1000n, 7);
    expect(got.length).toBe(3000);
    expect(got[1234]![0]).toBe('key01234');
    const view = new SnapshotView(src, 1000n);
    const page = await view.page(b('key02000'), b('key02003'));
    expect(page.map((kv) => kv.key.toString())).toEqual(['key02000', 'key02001', 'key02002']);
    const keysOnly = await view.page(b('key02000'), null, 2, true);
    expect(keysOnly.map((kv) => kv.value.length)).toEqual([0, 0]);
    await src.close();
  });

  it('the keys kept for point reads are bounded in bytes, not only in blocks (large keys: a Redis set keeps its members in them)', async () => {
    const key = (i: number): string => `member${String(i).padStart(5, '0')}`.padEnd(1000, 'x');
    const entries: FsmEntry[] = [];
    for (let i = 0; i < 6000; i++) entries.push({ key: key(i), value: `v${i}` });
    const src = await SnapshotSource.open(fsm(entries), { pageCacheBytes: 2 << 20 });
    expect(src.stats.indexPoints).toBeGreaterThan(50);
    for (let i = 0; i < 6000; i += 7) expect((await src.get(b(key(i)), 1000n))?.toString()).toBe(`v${i}`);
    // 6 MB of keys were read; half the 2 MiB page cache is kept.
    expect(src.blockKeysBytes).toBeGreaterThan(256 << 10);
    expect(src.blockKeysBytes).toBeLessThanOrEqual(1 << 20);
    expect(await src.get(b(key(1)), 1000n)).toEqual(b('v1'));
    expect(await src.get(b(key(1) + 'y'), 1000n)).toBeNull();
    await src.close();
  });

  it('agrees with an in-memory MVCC store on random data: every get and scan at every ts (prefix keys, versions, tombstones, expiry, big values)', async () => {
    let seed = 12345;
    const rnd = (k: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff), (seed >>> 8) % k);
    const mem = new MemorySource('model');
    const entries: FsmEntry[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < 4000; i++) {
      // Short keys over a tiny alphabet: many keys are prefixes of others.
      const key = b(Array.from({ length: 1 + rnd(6) }, () => 'ab\x00\xff'[rnd(4)]).join(''));
      const ts = BigInt(1 + rnd(40));
      const id = key.toString('hex') + '@' + ts;
      if (seen.has(id)) continue;
      seen.add(id);
      const tombstone = rnd(8) === 0;
      const expireAt = rnd(10) === 0 ? BigInt(1 + rnd(40)) : 0n;
      const value = Buffer.alloc(rnd(20) === 0 ? 70_000 + rnd(200_000) : rnd(60), 0x41 + rnd(26));
      entries.push({ key, value, ts, tombstone, expireAt });
      mem.put(key, value, ts, { tombstone, expireAt });
    }
    const src = await SnapshotSource.open(fsm(entries, 40n));
    try {
      for (const ts of [1n, 7n, 20n, 33n, 40n]) {
        for (const page of [1, 3, 1000]) {
          const got: string[] = [];
          const want: string[] = [];
          for await (const kv of new SnapshotView(src, ts, page).scan(Buffer.alloc(0), null)) got.push(kv.key.toString('hex') + '=' + kv.value.length + ':' + kv.value.subarray(0, 4).toString('hex'));
          for await (const kv of new SnapshotView(mem, ts, page).scan(Buffer.alloc(0), null)) want.push(kv.key.toString('hex') + '=' + kv.value.length + ':' + kv.value.subarray(0, 4).toString('hex'));
          expect(got).toEqual(want);
        }
        for (const e of entries.slice(0, 600)) {
          const k = typeof e.key === 'string' ? b(e.key) : e.key;
          const [x, y] = [await src.get(k, ts), await mem.get(k, ts)];
          expect(x === null ? null : x.equals(y ?? Buffer.alloc(1))).toBe(y === null ? null : true);
        }
      }
    } finally {
      await src.close();
    }
  });

  it('skips the store\'s non-MVCC _meta_ keys', async () => {
    const good = encodeFsm([{ key: 'x', value: 'X' }]);
    const metaKey = b('_meta_last_commit_ts');
    const frame = Buffer.alloc(8 + metaKey.length + 8 + 8);
    frame.writeBigUInt64LE(BigInt(metaKey.length), 0);
    metaKey.copy(frame, 8);
    frame.writeBigUInt64LE(8n, 8 + metaKey.length);
    frame.writeBigUInt64LE(1000n, 16 + metaKey.length);
    const p = join(dir, 'meta.fsm');
    writeFileSync(p, Buffer.concat([good.subarray(0, 16), frame, good.subarray(16)]));
    const src = await SnapshotSource.open(p);
    expect(await all(src, 1000n)).toEqual([['x', 'X']]);
    expect(src.stats.metaKeys).toBe(1);
    await src.close();
  });

  it('bad magic is a typed error', async () => {
    const p = join(dir, 'bad.fsm');
    writeFileSync(p, Buffer.concat([b('NOTASNAP'), Buffer.alloc(8)]));
    const e = await openErr(p);
    expect(e.code).toBe('bad-magic');
    expect(e.message).toMatch(/not an elastickv snapshot/);
  });

  it('truncation mid-entry (every cut point) is a typed error, never a partial read', async () => {
    const full = encodeFsm([{ key: 'alpha', value: 'one' }, { key: 'beta', value: 'two' }]);
    const firstEnd = 16 + 8 + 5 + 8 + 8 + 9 + 3;
    for (let cut = 17; cut < full.length; cut++) {
      if (cut === firstEnd) continue; // a clean entry boundary is a valid (shorter) snapshot
      const p = join(dir, `trunc-${cut}.fsm`);
      writeFileSync(p, full.subarray(0, cut));
      const e = await openErr(p);
      expect(e.code, `cut at ${cut}`).toBe('truncated');
    }
    const p = join(dir, 'hdr.fsm');
    writeFileSync(p, full.subarray(0, 12));
    expect((await openErr(p)).code).toBe('truncated');
  });

  it('absurd declared lengths fail before any allocation', async () => {
    const hdr = encodeFsm([]);
    const huge = Buffer.alloc(8);
    huge.writeBigUInt64LE(0xffff_ffff_ffff_fff0n);
    const p = join(dir, 'hugekey.fsm');
    writeFileSync(p, Buffer.concat([hdr, huge, Buffer.alloc(32)]));
    expect((await openErr(p)).code).toBe('key-too-large');
    const k = Buffer.alloc(8);
    k.writeBigUInt64LE(9n);
    const p2 = join(dir, 'hugeval.fsm');
    writeFileSync(p2, Buffer.concat([hdr, k, Buffer.alloc(9), huge, Buffer.alloc(32)]));
    expect((await openErr(p2)).code).toBe('value-too-large');
  });

  it('encrypted and reserved-state values are typed errors', async () => {
    expect((await openErr(fsm([{ key: 'k', value: 'x', flags: 0b010 }]))).code).toBe('encrypted');
    expect((await openErr(fsm([{ key: 'k', value: 'x', flags: 0b100 }]))).code).toBe('encrypted-reserved');
    expect((await openErr(fsm([{ key: 'k', value: 'x', flags: 0b1000 }]))).code).toBe('encrypted-reserved');
  });

  it('short keys and short values are typed errors', async () => {
    const hdr = encodeFsm([]);
    const len = (n: number) => {
      const x = Buffer.alloc(8);
      x.writeBigUInt64LE(BigInt(n));
      return x;
    };
    const p = join(dir, 'shortkey.fsm');
    writeFileSync(p, Buffer.concat([hdr, len(3), b('abc'), len(9), Buffer.alloc(9)]));
    expect((await openErr(p)).code).toBe('short-key');
    const p2 = join(dir, 'shortval.fsm');
    writeFileSync(p2, Buffer.concat([hdr, len(9), Buffer.alloc(9), len(4), Buffer.alloc(4)]));
    expect((await openErr(p2)).code).toBe('short-value');
  });

  it('readFsmEntries yields every version in file order', async () => {
    const p = fsm([
      { key: 'k', value: 'old', ts: 1n },
      { key: 'k', value: 'new', ts: 2n },
      { key: 'j', value: '', ts: 3n, tombstone: true },
    ]);
    const got = [];
    for await (const e of readFsmEntries(p)) got.push([e.key.toString(), e.commitTS, e.tombstone, e.value.toString()]);
    expect(got).toEqual([['j', 3n, true, ''], ['k', 2n, false, 'new'], ['k', 1n, false, 'old']]);
  });
});
