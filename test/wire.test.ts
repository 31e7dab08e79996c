import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { contract } from '../src/source/cluster.js';
import { decodeRawGetResponse, decodeRawScanAtResponse } from '../src/source/wire.js';
import { retainedBytes, VIEW_MIN } from '../src/bytes.js';

const b = (s: string): Buffer => Buffer.from(s);

describe('wire decoders', () => {
  it('decode RawScanAtResponse as the loader encodes it: keys and small values into owned copies, big values as views', () => {
    const c = contract();
    const big = Buffer.alloc(70_000, 7);
    const pairs = [
      { key: b('a'), value: b('1') },
      { key: b('b'), value: Buffer.alloc(0) },
      { key: Buffer.from([0, 0xff, 0x80]), value: big },
    ];
    const wire = c.RawKV.RawScanAt!.responseSerialize({ kv: pairs });
    const got = decodeRawScanAtResponse(wire);
    expect(got.kv.map((p) => [p.key.toString('hex'), p.value.toString('hex')])).toEqual(pairs.map((p) => [p.key.toString('hex'), p.value.toString('hex')]));
    // A value of VIEW_MIN bytes or more is a view of the message (not copied), and a cache
    // keeping it counts the message it keeps allocated.
    expect(big.length).toBeGreaterThanOrEqual(VIEW_MIN);
    expect(got.kv[2]!.value.buffer).toBe(wire.buffer);
    expect(retainedBytes(got.kv[2]!.value)).toBe(big.length); // most of its message
    // Keys and small values are owned: scribbling over the message changes none of them.
    wire.fill(0xee);
    expect(got.kv[0]!.key.toString()).toBe('a');
    expect(got.kv[0]!.value.toString()).toBe('1');
    expect(got.kv[2]!.key.toString('hex')).toBe('00ff80');
    expect(got.kv[2]!.value[0]).toBe(0xee);
    // Below VIEW_MIN: a copy of its own.
    const under = Buffer.alloc(VIEW_MIN - 1, 3);
    const wire2 = c.RawKV.RawScanAt!.responseSerialize({ kv: [{ key: b('k'), value: under }] });
    const got2 = decodeRawScanAtResponse(wire2);
    wire2.fill(0);
    expect(got2.kv[0]!.value.equals(under)).toBe(true);
    expect(decodeRawScanAtResponse(Buffer.alloc(0)).kv).toEqual([]);
  });

  it('agree with the loader on RawGetResponse, 64-bit index included', () => {
    const c = contract();
    for (const msg of [
      { read_at_index: '18446744073709551615', value: b('v'), exists: true },
      { read_at_index: '0', value: Buffer.alloc(0), exists: false },
      { read_at_index: '300', value: Buffer.alloc(0), exists: true },
    ]) {
      const wire = c.RawKV.RawGet!.responseSerialize(msg);
      const want = c.RawKV.RawGet!.responseDeserialize(wire) as { read_at_index: string; value: Buffer; exists: boolean };
      const got = decodeRawGetResponse(wire);
      expect(got).toEqual({ read_at_index: want.read_at_index, value: Buffer.from(want.value), exists: want.exists });
      expect(got.read_at_index).toBe(msg.read_at_index);
    }
  });

  it('skip unknown fields of every wire type and keep the last of a repeated scalar', () => {
    // pair: key=1 "x", unknown 3 varint, unknown 4 fixed64, unknown 5 fixed32, unknown 6 bytes, key=1 again "y", value=2 "v"
    const pair = Buffer.from([0x0a, 1, 0x78, 0x18, 0x96, 0x01, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4, 0x32, 2, 0x61, 0x62, 0x0a, 1, 0x79, 0x12, 1, 0x76]);
    // response: unknown field 2 (varint) before the pair
    const msg = Buffer.concat([Buffer.from([0x10, 0x05, 0x0a, pair.length]), pair]);
    const got = decodeRawScanAtResponse(msg);
    expect(got.kv).toHaveLength(1);
    expect(got.kv[0]!.key.toString()).toBe('y');
    expect(got.kv[0]!.value.toString()).toBe('v');
    // The loader reads the same bytes the same way.
    const want = contract().RawKV.RawScanAt!.responseDeserialize(msg) as { kv: { key: Buffer; value: Buffer }[] };
    expect(want.kv.map((p) => [p.key.toString(), p.value.toString()])).toEqual([['y', 'v']]);
  });

  it('throw on truncated or malformed input instead of returning short data', () => {
    const wire = contract().RawKV.RawScanAt!.responseSerialize({ kv: [{ key: b('key'), value: b('value') }] });
    for (let cut = 1; cut < wire.length; cut++) expect(() => decodeRawScanAtResponse(wire.subarray(0, cut)), `cut at ${cut}`).toThrow(/protobuf/);
    expect(() => decodeRawScanAtResponse(Buffer.from([0x0b]))).toThrow(/truncated group/); // start-group with no end
    expect(() => decodeRawScanAtResponse(Buffer.from([0x0b, 0x14]))).toThrow(/mismatched end group/); // group 1 ended as 2
    expect(() => decodeRawScanAtResponse(Buffer.from([0x0c]))).toThrow(/unexpected end group/);
    expect(() => decodeRawScanAtResponse(Buffer.from([0x0e]))).toThrow(/wire type 6/);
    expect(() => decodeRawScanAtResponse(Buffer.from([0x00, 0x00]))).toThrow(/field number 0/);
    expect(() => decodeRawScanAtResponse(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x10]))).toThrow(/over 2\^29-1/); // field 2^29
    // Go's rule: a varint is at most 10 bytes and the tenth byte at most 1.
    expect(() => decodeRawGetResponse(Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(/overflows 64 bits/);
    expect(() => decodeRawGetResponse(Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]))).toThrow(/overflows 64 bits/);
    expect(() => decodeRawScanAtResponse(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x7f]))).toThrow(/past the end/);
  });

  it('skip a group of unknown fields, nested groups included, as the Go runtime does', () => {
    // unknown group 3 { varint 1; group 4 { bytes 2 "zz" } } then the pair
    const group = Buffer.from([0x1b, 0x08, 0x05, 0x23, 0x12, 2, 0x7a, 0x7a, 0x24, 0x1c]);
    const pair = Buffer.from([0x0a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x76]); // kv { key "k", value "v" }
    const got = decodeRawScanAtResponse(Buffer.concat([group, pair]));
    expect(got.kv.map((p) => [p.key.toString(), p.value.toString()])).toEqual([['k', 'v']]);
    const want = contract().RawKV.RawScanAt!.responseDeserialize(Buffer.concat([group, pair])) as { kv: { key: Buffer; value: Buffer }[] };
    expect(want.kv.map((p) => [p.key.toString(), p.value.toString()])).toEqual([['k', 'v']]);
  });

  it('skip groups nested to Go\'s limit of 10,000 without recursion, and refuse one deeper', () => {
    const pair = Buffer.from([0x0a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x76]);
    const nested = (d: number): Buffer => Buffer.concat([Buffer.alloc(d, 0x1b), Buffer.alloc(d, 0x1c), pair]);
    expect(decodeRawScanAtResponse(nested(10_000)).kv).toHaveLength(1);
    expect(() => decodeRawScanAtResponse(nested(10_001))).toThrow(/maximum recursion depth/);
  });

  it('read a 64-bit varint exactly at every length', () => {
    const c = contract();
    for (const v of ['1', '127', '128', '16383', '16384', '9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551614']) {
      const got = decodeRawGetResponse(c.RawKV.RawGet!.responseSerialize({ read_at_index: v, value: Buffer.alloc(0), exists: true }));
      expect(got.read_at_index).toBe(v);
    }
  });
});

describe('the wire reader across full collections', () => {
  it('keeps its optimised code: no "weak objects" deopts of the decoders after a full GC', () => {
    // A child with V8's own traces, decoding pages of the built module between forced full
    // collections. Without a reader alive at a collection, V8 dropped the reader's hidden
    // class and threw away every optimised function that had seen it (102 such deopts here).
    const wireJs = new URL('../dist/source/wire.js', import.meta.url).href;
    const script = `
      import { decodeRawScanAtResponse } from ${JSON.stringify(wireJs)};
      const varint = (n) => { const o = []; while (n >= 128) { o.push((n & 127) | 128); n = Math.floor(n / 128); } o.push(n); return Buffer.from(o); };
      const field = (tag, b) => Buffer.concat([varint(tag), varint(b.length), b]);
      const page = (n, vlen) => Buffer.concat(Array.from({ length: n }, (_, i) => field(0x0a, Buffer.concat([field(0x0a, Buffer.from('!redis|str|k' + i)), field(0x12, Buffer.alloc(vlen, 65))]))));
      const small = page(1024, 40), big = page(16, 64 * 1024);
      for (let round = 0; round < 60; round++) {
        for (let j = 0; j < 20; j++) decodeRawScanAtResponse(Buffer.from(j % 5 ? small : big));
        if (round % 5 === 4) gc();
      }`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--trace-opt', '--trace-deopt', '--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    // Not vacuous: the decoder was optimised (and gc() runs every fifth round after).
    expect(r.stdout).toMatch(/completed optimizing .*decodeRawScanAtResponse/);
    // (Not `copy`: Node's Buffer.prototype.copy has that name too.)
    const weak = r.stdout.split('\n').filter((l) => l.includes('reason: weak objects') && /SharedFunctionInfo (WireReader|done|tag|num|payload|sub|decodeRawScanAtResponse)>/.test(l));
    expect(weak).toEqual([]);
  });
});
