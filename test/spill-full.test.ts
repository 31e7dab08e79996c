/**
 * A --spill-dir that fills up, on a real mount: the file that needed the disk is EIO with one
 * log line, its partial spill file goes, and the mount keeps serving everything else.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisStream } from '../src/fixture/redis.js';
import { writeFsm } from './fixture/fsm-writer.js';
import { isMounted, mount, sh, tempDir, type Mounted } from './helpers/mount.js';

const dir = tempDir('ekv-spillfull-');
const fsm = join(dir, 'snap', '0000000000000064.fsm');
mkdirSync(join(dir, 'snap'));
// A stream of ~10 MB of lines (past the 8 MiB a streamed file keeps in memory before it
// spills), read page by page from the .fsm between its writes; and one small string.
writeFsm(fsm, [
  ...redisStream(
    'big',
    Array.from({ length: 12_000 }, (_, i) => ({ ms: 1714400000000 + i, seq: 0, fields: ['f', `${String(i).padStart(6, '0')}${'x'.repeat(794)}`] })),
  ),
  { key: '!redis|str|small', value: 'small value\n' },
]);

describe('a --spill-dir that fills up', () => {
  const spill = tempDir('ekv-spilltmpfs-');
  let m: Mounted;
  beforeAll(async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', spill]);
    m = await mount(['--snapshot', fsm, '--spill-dir', spill]);
  });
  afterAll(async () => {
    if (m && isMounted(m.mnt)) await m.unmount();
    execFileSync('umount', [spill]);
  });

  it('fails the file being spilled (EIO, one log line), removes its spill file, and the mount serves the rest', async () => {
    const big = await sh('cat redis/db_0/streams/big.jsonl > /dev/null', m.mnt);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toMatch(/Input\/output error/);
    expect(isMounted(m.mnt)).toBe(true);
    expect((await sh('cat redis/db_0/strings/small.bin', m.mnt)).stdout).toBe('small value\n');
    expect((await sh('ls redis/db_0', m.mnt)).stdout).toContain('streams');
    const lines = m.stdout().split('\n').filter((l) => l.includes('ENOSPC'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.every((l) => l.includes('"path":"/redis/db_0/streams/big.jsonl"'))).toBe(true);
    expect(m.stdout()).not.toContain('fatal error');
    // What is left in the spill dir is the digest file's directory, not ~2 MB of a half-written
    // stream: before, the partial file stayed (2048 KiB used), and the disk with it full.
    const used = Number(execFileSync('df', ['--output=used', '-k', spill]).toString().split('\n')[1]!.trim());
    expect(used).toBeLessThan(1024);
    expect(readdirSync(spill).length).toBeGreaterThan(0);
    expect(await m.unmount()).toBe(0);
  });
});
