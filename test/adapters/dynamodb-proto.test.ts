import { describe, expect, it } from 'vitest';
import { decodeItem, decodeItemFields, encodeItem, type AttrValue, type Item } from '../../src/adapters/dynamodb/proto.js';
import { rng } from '../helpers/rng.js';

const TEXTS = ['', 'pk', 'user-00000001', 'é', '日本語', '🙂', 'x'.repeat(127), 'y'.repeat(128), 'z'.repeat(20_000), '\u0000', '-1.5e10'];

function attr(r: () => number, depth: number): AttrValue {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const k = Math.floor(r() * (depth > 1 ? 6 : 11));
  switch (k) {
    case 0:
      return { t: 'S', v: pick(TEXTS) };
    case 1:
      return { t: 'N', v: pick(['0', '1', '-3.25', '1e100']) };
    case 2:
      return { t: 'B', v: Buffer.from(pick(TEXTS) + '\xff', 'latin1') };
    case 3:
      return { t: 'BOOL', v: r() < 0.5 };
    case 4:
      return { t: 'NULL', v: r() < 0.8 };
    case 5:
      return { t: 'none' };
    case 6:
      return { t: 'SS', v: [pick(TEXTS), pick(TEXTS)] };
    case 7:
      return { t: 'NS', v: ['1', '2'] };
    case 8:
      return { t: 'BS', v: [Buffer.from([1, 2]), Buffer.alloc(0)] };
    case 9:
      return { t: 'L', v: [attr(r, depth + 1), attr(r, depth + 1)] };
    default:
      return { t: 'M', v: new Map([[pick(TEXTS), attr(r, depth + 1)]]) };
  }
}

function item(r: () => number): Item {
  const it: Item = new Map();
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) it.set(TEXTS[Math.floor(r() * TEXTS.length)]! + String(i % 3), attr(r, 0));
  return it;
}

/** What a decoder gives: the item, or the error it throws. */
function outcome(f: () => Item): unknown {
  try {
    return { ok: f() };
  } catch (e) {
    return { err: (e as Error).message };
  }
}

describe('DynamoItem decoding: the flat fast path and the general rules agree', () => {
  it('on encoded items of every value kind (scalars the fast path takes, the rest it hands over)', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const buf = encodeItem(item(rng(seed)));
      expect(outcome(() => decodeItem(buf)), `seed ${seed}`).toEqual(outcome(() => decodeItemFields(buf)));
    }
  });

  it('on damaged bytes: flipped, cut, inserted (same item or the same error)', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const r = rng(seed);
      const good = encodeItem(item(r));
      if (good.length === 0) continue;
      const bad = Buffer.from(good);
      const at = Math.floor(r() * bad.length);
      const how = Math.floor(r() * 3);
      let buf: Buffer;
      if (how === 0) {
        bad[at] = Math.floor(r() * 256);
        buf = bad;
      } else if (how === 1) buf = bad.subarray(0, at);
      else buf = Buffer.concat([bad.subarray(0, at), Buffer.from([Math.floor(r() * 256)]), bad.subarray(at)]);
      expect(outcome(() => decodeItem(buf)), `seed ${seed}`).toEqual(outcome(() => decodeItemFields(buf)));
    }
  });

  it('on the wire shapes the fast path must hand over: reordered, repeated, unknown, multi-byte bools, invalid UTF-8', () => {
    const entry = (body: number[]): number[] => [0x0a, body.length, ...body];
    const cases: number[][] = [
      entry([0x12, 3, 0x0a, 1, 0x61, 0x0a, 1, 0x6b]), // value before key
      entry([0x0a, 1, 0x6b, 0x12, 3, 0x0a, 1, 0x61, 0x12, 3, 0x12, 1, 0x31]), // value twice (merged: the last case wins)
      entry([0x0a, 1, 0x6b, 0x12, 6, 0x0a, 1, 0x61, 0x0a, 1, 0x62]), // S twice in one value
      entry([0x0a, 1, 0x6b, 0x12, 3, 0x20, 0x81, 0x00]), // BOOL as a two-byte varint
      entry([0x0a, 1, 0x6b, 0x12, 0]), // empty value: none
      entry([0x0a, 1, 0x6b]), // no value
      [...entry([0x0a, 1, 0x6b, 0x12, 3, 0x0a, 1, 0x61]), 0x10, 0x01], // unknown varint field after the entry
      [...entry([0x0a, 1, 0x6b, 0x12, 3, 0x0a, 1, 0x61]), ...entry([0x0a, 1, 0x6b, 0x12, 3, 0x0a, 1, 0x62])], // same key twice: the last wins
      entry([0x0a, 1, 0x6b, 0x12, 3, 0x0a, 1, 0xff]), // invalid UTF-8 in S
      entry([0x0a, 1, 0xc3, 0x12, 3, 0x0a, 1, 0x61]), // invalid UTF-8 in the key
      entry([0x0a, 1, 0x6b, 0x12, 4, 0x0a, 1, 0x61, 0x00]), // trailing byte in the value
      entry([0x0a, 1, 0x6b, 0x12, 3, 0x1a, 1, 0x00, 0x18, 0x01]), // an unknown field of the entry
    ];
    for (const c of cases) {
      const buf = Buffer.from(c);
      expect(outcome(() => decodeItem(buf)), Buffer.from(c).toString('hex')).toEqual(outcome(() => decodeItemFields(buf)));
    }
    // The common shape decodes to what it says.
    const plain = Buffer.from(entry([0x0a, 2, 0x70, 0x6b, 0x12, 5, 0x0a, 3, 0x61, 0xc3, 0xa9]));
    expect(decodeItem(plain)).toEqual(new Map([['pk', { t: 'S', v: 'aé' }]]));
  });
});
