import { describe, expect, it } from 'vitest';
import { itemValue, renderItem } from '../../src/adapters/dynamodb/render.js';
import type { AttrValue, Item } from '../../src/adapters/dynamodb/proto.js';
import { marshal } from '../../src/format/gojson.js';
import { rng } from '../helpers/rng.js';

// Characters that take each of Go's escaping paths: plain ASCII, quote and backslash, control
// characters, HTML-escaped <>&, U+2028/U+2029, BMP and astral runes, a lone surrogate (\ufffd),
// and keys that sort differently as UTF-16 and as UTF-8 (U+FFFD against an astral rune).
const ALPHABET = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\t', '\x01', '\x1f', '<', '>', '&', '\u2028', '\u2029', 'é', 'ü', '漢', '\ufffd', '\u{1f600}', '\ud800', '/', '%'];

function str(r: () => number, max = 6): string {
  let s = '';
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

function attr(r: () => number, depth: number): AttrValue {
  const kinds = depth > 2 ? ['S', 'N', 'B', 'BOOL', 'NULL', 'none'] : ['S', 'N', 'B', 'BOOL', 'NULL', 'none', 'SS', 'NS', 'BS', 'L', 'M'];
  const many = <T>(f: () => T): T[] => Array.from({ length: Math.floor(r() * 4) }, f);
  switch (kinds[Math.floor(r() * kinds.length)]) {
    case 'S':
      return { t: 'S', v: str(r) };
    case 'N':
      return { t: 'N', v: String(Math.floor(r() * 1e6) - 5e5) };
    case 'B':
      return { t: 'B', v: Buffer.from(str(r), 'utf8') };
    case 'BOOL':
      return { t: 'BOOL', v: r() < 0.5 };
    case 'NULL':
      return { t: 'NULL', v: r() < 0.5 };
    case 'SS':
      return { t: 'SS', v: many(() => str(r)) };
    case 'NS':
      return { t: 'NS', v: many(() => String(Math.floor(r() * 100))) };
    case 'BS':
      return { t: 'BS', v: many(() => Buffer.from(str(r), 'utf8')) };
    case 'L':
      return { t: 'L', v: many(() => attr(r, depth + 1)) };
    case 'M':
      return { t: 'M', v: attrs(r, depth + 1) };
    default:
      return { t: 'none' };
  }
}

function attrs(r: () => number, depth: number): Map<string, AttrValue> {
  const m = new Map<string, AttrValue>();
  const n = Math.floor(r() * 6);
  for (let i = 0; i < n; i++) m.set(str(r, 4), attr(r, depth));
  return m;
}

describe('DynamoDB item rendering', () => {
  it('writes the bytes json.MarshalIndent of the Go values gives, for items of every type and escape', () => {
    const r = rng(20261206);
    let nonTrivial = 0;
    for (let i = 0; i < 3000; i++) {
      const item: Item = attrs(r, 0);
      const want = Buffer.from(marshal(itemValue(item), { indent: '  ' }), 'utf8');
      const got = renderItem(item);
      if (!got.equals(want)) expect(got.toString('utf8'), `item ${i}`).toBe(want.toString('utf8'));
      if (item.size > 1) nonTrivial++;
    }
    expect(nonTrivial).toBeGreaterThan(1000);
  });

  it('an empty item, empty sets, lists and maps', () => {
    const item: Item = new Map<string, AttrValue>([
      ['ss', { t: 'SS', v: [] }],
      ['l', { t: 'L', v: [] }],
      ['m', { t: 'M', v: new Map() }],
      ['n', { t: 'none' }],
    ]);
    expect(renderItem(new Map()).toString()).toBe('{}');
    expect(renderItem(item).toString()).toBe(marshal(itemValue(item), { indent: '  ' }));
    expect(renderItem(item).toString()).toContain('"L": []');
  });
});
