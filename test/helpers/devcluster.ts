import { pino, type Logger } from 'pino';
import { MemorySource } from '../../src/source/memory.js';

export interface LogCapture {
  log: Logger;
  lines: Record<string, unknown>[];
  byMsg(msg: string): Record<string, unknown>[];
}

/** A pino logger whose JSON lines are kept in memory. */
export function captureLog(level = 'debug'): LogCapture {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, byMsg: (msg) => lines.filter((l) => l.msg === msg) };
}

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/**
 * A store exercising the MVCC rules: several versions, tombstones, store-level
 * expiry, binary keys, keys that are prefixes of others, an empty value.
 */
export function sampleSource(): MemorySource {
  const m = new MemorySource('sample');
  m.put(b('a'), b('a@10'), 10n);
  m.put(b('a'), b('a@20'), 20n);
  m.put(b('ab'), b('ab@15'), 15n);
  m.put(b('ab'), b(''), 25n, { tombstone: true });
  m.put(b('abc'), b(''), 12n);
  m.put(b('b'), b('b@5 expires 22'), 5n, { expireAt: 22n });
  m.put(Buffer.from([0x00]), b('zero'), 7n);
  m.put(Buffer.from([0xff, 0x00]), b('ff00'), 7n);
  m.put(Buffer.from([0x7f, 0x80]), b('7f80'), 8n);
  for (let i = 0; i < 2100; i++) m.put(b(`k/${String(i).padStart(5, '0')}`), b(`v${i}`), BigInt(10 + (i % 20)));
  m.put(b('k/00007'), b('v7-late'), 40n);
  return m;
}
