/**
 * DynamoDB numbers in file names: the small-integer fast paths of canonicalNumber() and
 * numericKeyToCanonical() must give what big.Rat's full parse gives.
 */
import { describe, expect, it } from 'vitest';
import { canonicalNumber, numericKeyBytes, numericKeyToCanonical, ratCanonical } from '../src/adapters/dynamodb/keys.js';

const samples: string[] = [];
for (const s of ['0', '-0', '+0', '7', '+7', '-7', '007', '-007', '10', '100', '120', '-1200', '999999999999999', '-999999999999999', '1000000000000000', '123456789012345', '0000000000000001']) samples.push(s);
for (let i = 0; i < 2000; i++) {
  const digits = String(Math.floor(Math.random() * 10 ** (1 + (i % 15))));
  samples.push((i % 3 === 0 ? '-' : i % 3 === 1 ? '+' : '') + digits);
}
// Forms the fast path must leave to the full parse.
const others = ['1.5', '-0.25', '1e3', '1E-2', '0x1f', '0b101', '0o17', '1_000', '12345678901234567890', '1/2', '', ' 12 ', 'abc', '.5', '5.'];

describe('dynamodb numbers: fast paths agree with the full big.Rat parse', () => {
  it('canonicalNumber of integer text', () => {
    for (const s of samples) expect(canonicalNumber(s), s).toBe(ratCanonical(s));
  });

  it('canonicalNumber of other forms (the full parse answers)', () => {
    for (const s of others) expect(canonicalNumber(s), s).toBe(ratCanonical(s.trim()));
    expect(canonicalNumber('007')).toBe('7');
    expect(canonicalNumber('-0')).toBe('0');
    expect(canonicalNumber('1.50')).toBe('3/2');
  });

  it('numericKeyToCanonical of ordered key bytes names the number as its text does', () => {
    for (const s of [...samples, '1.5', '-0.25', '1e3', '1E-2', '12345678901234567890', '1e20', '-3.75e16']) {
      const key = numericKeyBytes(s);
      expect(key, s).not.toBeNull();
      expect(numericKeyToCanonical(key!), s).toBe(ratCanonical(s));
    }
  });
});
