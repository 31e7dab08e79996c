/**
 * SnapshotView's point reads: a lookup by path reads a record to find it and its render reads
 * it again; the view answers the second from memory (one round trip on a live cluster, not two).
 */
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../src/source/memory.js';
import { SnapshotView } from '../src/source/range.js';

class CountedGets extends MemorySource {
  gets: string[] = [];
  failNext = false;
  override async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    this.gets.push(key.toString('latin1'));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('unavailable');
    }
    return super.get(key, ts);
  }
}

const k = (s: string): Buffer => Buffer.from(s, 'latin1');

function setup(): { src: CountedGets; view: SnapshotView } {
  const src = new CountedGets();
  src.put(k('a'), k('1'), 10n);
  src.put(k('big'), Buffer.alloc(2 << 20, 7), 10n);
  return { src, view: new SnapshotView(src, 10n) };
}

describe('SnapshotView point reads', () => {
  it('a key read again (or twice at once) is asked of the source once; a missing key too', async () => {
    const { src, view } = setup();
    expect(await view.get(k('a'))).toEqual(k('1'));
    expect(await view.get(k('a'))).toEqual(k('1'));
    const [x, y] = await Promise.all([view.get(k('nope')), view.get(k('nope'))]);
    expect([x, y]).toEqual([null, null]);
    expect(await view.get(k('nope'))).toBeNull();
    expect(src.gets).toEqual(['a', 'nope']);
  });

  it('does not keep values past its byte bound, nor failures', async () => {
    const { src, view } = setup();
    expect((await view.get(k('big')))!.length).toBe(2 << 20);
    expect((await view.get(k('big')))!.length).toBe(2 << 20);
    src.failNext = true;
    await expect(view.get(k('a'))).rejects.toThrow('unavailable');
    expect(await view.get(k('a'))).toEqual(k('1'));
    expect(src.gets).toEqual(['big', 'big', 'a', 'a']);
  });

  it('reads at its own timestamp: views at other timestamps do not share answers', async () => {
    const src = new CountedGets();
    src.put(k('a'), k('old'), 10n);
    src.put(k('a'), k('new'), 20n);
    expect(await new SnapshotView(src, 15n).get(k('a'))).toEqual(k('old'));
    expect(await new SnapshotView(src, 25n).get(k('a'))).toEqual(k('new'));
  });
});

describe('SnapshotView scans with values', () => {
  it('size their pages by what a key costs: 256 KiB values come in pages of about 4 MiB, small ones grow to the page size', async () => {
    const src = new MemorySource();
    for (let i = 0; i < 300; i++) src.put(k(`big/${String(i).padStart(3, '0')}`), Buffer.alloc(256 << 10, i), 10n);
    for (let i = 0; i < 5000; i++) src.put(k(`small/${String(i).padStart(4, '0')}`), k(`v${i}`), 10n);
    const view = new SnapshotView(src, 10n);
    const big: number[] = [];
    let n = 0;
    for await (const page of view.scanPages(k('big/'), k('big0'))) {
      big.push(page.reduce((s, kv) => s + kv.value.length, 0));
      for (const kv of page) expect(kv.value[0]).toBe(n++ & 0xff);
    }
    expect(n).toBe(300);
    // Before: one page of 300 values, 75 MiB.
    expect(Math.max(...big)).toBeLessThanOrEqual(8 << 20);
    expect(big.length).toBeGreaterThan(15);
    const small: number[] = [];
    let m = 0;
    for await (const page of view.scanPages(k('small/'), k('small0'))) {
      small.push(page.length);
      m += page.length;
    }
    expect(m).toBe(5000);
    // 32, 128, 512, then full pages of 1024.
    expect(small.slice(0, 4)).toEqual([32, 128, 512, 1024]);
    // Keys only: full pages from the first.
    const keys: number[] = [];
    for await (const page of view.scanPages(k('small/'), k('small0'), { keysOnly: true })) keys.push(page.length);
    expect(keys[0]).toBe(1024);
  });
});
