/**
 * The --demo data set: records in elastickv's internal layouts, loaded into the
 * dev cluster's in-memory MVCC store and mounted through the live path.
 */
import { MemorySource } from '../source/memory.js';

export const DEMO_TS = 1n << 40n;

export function buildDemoSource(): MemorySource {
  const src = new MemorySource('demo');
  const put = (k: string, v: Buffer | string): void => src.put(Buffer.from(k, 'latin1'), typeof v === 'string' ? Buffer.from(v, 'utf8') : v, DEMO_TS);
  put('!redis|str|greeting', 'hello from elastickv\n');
  put('!redis|str|session:abc123', '{"user":"alice"}');
  return src;
}
