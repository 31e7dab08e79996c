import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { redisFixtures } from '../golden/cases/redis.js';
import { renderEntries, text, type Rendered } from '../helpers/render.js';
import { redisHash, redisString, wide } from '../../src/fixture/redis.js';
import type { FsmEntry } from '../../src/fixture/fsm.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;

/** Every file under expected/redis as relative path -> bytes. */
function expectedRedis(caseName: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const base = join(GOLDEN, caseName, 'expected');
  const walk = (rel: string): void => {
    const abs = join(base, rel);
    for (const name of readdirSync(abs)) {
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(join(base, r)).isDirectory()) walk(r);
      else out.set(r, readFileSync(join(base, r)));
    }
  };
  try {
    walk('redis');
  } catch {
    /* no redis dir */
  }
  return out;
}

function redisFiles(r: Rendered): Map<string, Buffer> {
  return new Map([...r.files].filter(([p]) => p.startsWith('redis/')));
}

function fixture(name: string): FsmEntry[] {
  const f = redisFixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.entries;
}

async function expectGolden(name: string): Promise<Rendered> {
  const r = await renderEntries(fixture(name));
  const want = expectedRedis(name);
  const got = redisFiles(r);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [p, b] of want) expect(got.get(p)?.toString('latin1'), p).toBe(b.toString('latin1'));
  expect(r.errors.size).toBe(0);
  return r;
}

describe('redis strings', () => {
  it('redis-strings renders byte-identical to the owner (empty value, 1 KiB key, TTL sidecar, KEYMAP)', async () => {
    const r = await expectGolden('redis-strings');
    try {
      expect(r.files.get('redis/db_0/strings/empty.bin')).toEqual(Buffer.alloc(0));
      expect(text(r, 'redis/db_0/strings_ttl.jsonl')).toContain('{"key":"session%3Aabc","expire_at_ms":1900000000000}\n');
      expect(r.files.has('redis/db_0/hll_ttl.jsonl')).toBe(false);
    } finally {
      await r.close();
    }
  });

  it('a corrupt string value fails only its own file with EIO', async () => {
    const r = await renderEntries([
      ...redisString('good', 'ok', { ttlMs: 5 }),
      { key: '!redis|str|bad', value: Buffer.from([0xff, 0x01, 0x01, 0x00]) },
    ]);
    try {
      expect(r.errors.get('redis/db_0/strings/bad.bin')).toBe('EIO');
      expect(text(r, 'redis/db_0/strings/good.bin')).toBe('ok');
      expect(text(r, 'redis/db_0/strings_ttl.jsonl')).toBe('{"key":"good","expire_at_ms":5}\n');
      expect(r.logs.some((l) => l.key === '!redis|str|bad')).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('no redis records: no redis directory; scope filter hides db_0', async () => {
    const r = await renderEntries([{ key: '!txn|x', value: 'y' }]);
    try {
      expect([...r.files.keys()].some((p) => p.startsWith('redis/'))).toBe(false);
    } finally {
      await r.close();
    }
    const s = await renderEntries(redisString('a', 'b'), { options: { scopes: new Map([['redis', new Set(['1'])]]) } });
    try {
      expect([...s.files.keys()].some((p) => p.startsWith('redis/'))).toBe(false);
    } finally {
      await s.close();
    }
  });
});

describe('redis golden cases render byte-identical in process', () => {
  for (const name of ['redis-hash', 'redis-list', 'redis-set', 'redis-zset', 'redis-stream', 'redis-hll', 'redis-hll-nottl', 'redis-ttl-routing']) {
    it(name, async () => {
      const r = await expectGolden(name);
      await r.close();
    });
  }
});

export { redisHash, wide };
