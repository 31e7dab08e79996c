/**
 * Observability: --metrics-listen serves Prometheus text with the figures an
 * operator watches; a progress line is logged while reads happen.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenCases } from './helpers/golden.js';
import { writeFsm } from '../src/fixture/fsm.js';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import { mount, sh, tempDir, waitFor } from './helpers/mount.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || (!name.includes('{') && l.startsWith(name + '{')));
  if (!line) throw new Error(`metric ${name} missing`);
  return Number(line.split(' ').pop());
}

describe('metrics and progress', () => {
  it('serves pages fetched, bytes served, cache hit ratio, in-flight gauges; logs progress while reading', async () => {
    const gc = goldenCases().find((c) => c.name.includes('dynamodb-hash-range')) ?? goldenCases()[0]!;
    const port = await freePort();
    const m = await mount(['--snapshot', gc.fsm, '--metrics-listen', `127.0.0.1:${port}`, '--progress-interval', '0.2']);
    try {
      const copy = await sh(`tar -C '${m.mnt}' -cf - . | wc -c`);
      const tarBytes = Number(copy.stdout.trim());
      expect(tarBytes).toBeGreaterThan(0);
      await sh(`cat '${join(m.mnt, 'MANIFEST.json')}' > /dev/null`);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(metric(text, 'ekv_mount_pages_fetched_total')).toBeGreaterThan(0);
      const filesBytes = Number((await sh(`find . -type f -printf '%s\\n' | awk '{s+=$1} END {print s}'`, m.mnt)).stdout.trim());
      expect(metric(text, 'ekv_mount_bytes_served_total')).toBeGreaterThanOrEqual(filesBytes);
      expect(metric(text, 'ekv_mount_files_opened_total')).toBeGreaterThan(0);
      const ratio = metric(text, 'ekv_mount_cache_hit_ratio');
      expect(ratio).toBeGreaterThanOrEqual(0);
      expect(ratio).toBeLessThanOrEqual(1);
      expect(metric(text, 'ekv_mount_fuse_inflight')).toBeGreaterThanOrEqual(0);
      expect(text).toMatch(/# TYPE ekv_mount_read_errors_total counter/);
      expect(text).not.toMatch(/^ekv_mount_read_errors_total\{/m);
      await waitFor(() => /"msg":"progress"/.test(m.stdout()), 3000, 'a progress line');
      const progress = JSON.parse(m.stdout().split('\n').find((l) => l.includes('"msg":"progress"'))!) as Record<string, number>;
      expect(progress.bytes_served).toBeGreaterThan(0);
      expect(progress.files_opened).toBeGreaterThan(0);
      expect(typeof progress.rate_mib_s).toBe('number');
    } finally {
      expect(await m.unmount()).toBe(0);
    }
  });

  it('a corrupt record is one EIO, counted under read_errors_total{cause="record"}, logged once with its key; other files read', async () => {
    const fsm = join(tempDir('ekv-metrics-'), '0000000000000064.fsm');
    writeFsm(fsm, [
      { key: '!redis|str|good', value: 'fine' },
      // Current-format string header (magic 0xFF, version 1, has-TTL flag) with its TTL cut short.
      { key: '!redis|str|bad', value: Buffer.from([0xff, 0x01, 0x01, 0x00, 0x01]) },
    ]);
    const port = await freePort();
    const m = await mount(['--snapshot', fsm, '--metrics-listen', `127.0.0.1:${port}`]);
    try {
      const bad = await sh(`cat '${join(m.mnt, 'redis/db_0/strings/bad.bin')}'`);
      expect(bad.code).not.toBe(0);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(/Input\/output error/);
      expect((await sh(`cat '${join(m.mnt, 'redis/db_0/strings/good.bin')}'`)).stdout).toBe('fine');
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metric(text, 'ekv_mount_read_errors_total{cause="record"}')).toBeGreaterThanOrEqual(1);
      const logged = m.stdout().split('\n').filter((l) => l.includes('read failed'));
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged[0]).toContain('!redis|str|bad');
      expect(m.stdout()).not.toContain('fine'); // never record contents
    } finally {
      expect(await m.unmount()).toBe(0);
    }
  });
});

describe('the content cache during a copy', () => {
  it('keeps at most an eighth of --cache-size (4 MiB at least) of files the kernel was given whole; read again once the kernel dropped them, they are the same bytes', async () => {
    const fsm = join(tempDir('ekv-metrics-'), '0000000000000064.fsm');
    writeFsm(fsm, [
      ...ddbBenchEntries(1500, { table: 'items', perHash: 5 }),
      ...Array.from({ length: 20_000 }, (_, i) => ({ key: `!redis|str|s${String(i).padStart(5, '0')}`, value: `${'v'.repeat(500)}-${i}\n` })),
    ]);
    const port = await freePort();
    const m = await mount(['--snapshot', fsm, '--metrics-listen', `127.0.0.1:${port}`, '--cache-size', '32MiB']);
    try {
      const tar = `tar -C '${m.mnt}' --mtime=@0 -cf - dynamodb redis | sha256sum`;
      const first = await sh(tar);
      expect(first.code).toBe(0);
      const bytes = Number((await sh(`find dynamodb redis -type f -printf '%s\\n' | awk '{s+=$1} END {print s}'`, m.mnt)).stdout);
      expect(bytes).toBeGreaterThan(10_000_000);
      // Kept, the files would all fit in the cache; served, 4 MiB of them stay (and the slab being filled).
      const held = metric(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'ekv_mount_cache_bytes');
      expect(held).toBeLessThanOrEqual((4 << 20) + 2 * 64 * 1024);
      // The kernel drops its pages: the next copy's reads come to the mount, which renders them again.
      expect((await sh('sync && echo 1 > /proc/sys/vm/drop_caches')).code).toBe(0);
      expect((await sh(tar)).stdout).toBe(first.stdout);
      expect((await sh('sha256sum -c --quiet CHECKSUMS', m.mnt)).code).toBe(0);
    } finally {
      expect(await m.unmount()).toBe(0);
    }
  });
});

describe('instrumented source', () => {
  it('passes read-ahead hints through to the source under it (an S3 chunk size reaches the read-ahead)', async () => {
    const { Metrics } = await import('../src/metrics.js');
    const hints: [string, string | null, number][] = [];
    const inner = {
      label: 'spy',
      scanPage: async () => [],
      get: async () => null,
      expectValues: (start: Buffer, end: Buffer | null, bytesPerKey: number) => void hints.push([start.toString(), end && end.toString(), bytesPerKey]),
      close: async () => {},
    };
    const src = new Metrics().instrument(inner);
    src.expectValues?.(Buffer.from('!s3|blob|a'), Buffer.from('!s3|blob|b'), 1 << 20);
    expect(hints).toEqual([['!s3|blob|a', '!s3|blob|b', 1 << 20]]);
    // A source without read-ahead takes no hint, and the call is harmless.
    const plain = new Metrics().instrument({ label: 'plain', scanPage: async () => [], get: async () => null, close: async () => {} });
    expect(() => plain.expectValues?.(Buffer.from('a'), null, 1)).not.toThrow();
  });
});
