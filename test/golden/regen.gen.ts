/**
 * Regenerates test/golden/<case>/ from test/golden/fixtures.ts with elastickv's
 * own decoder. Not part of the test suite; run through scripts/golden-regen.sh.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'vitest';
import { encodeFsm } from '../../src/fixture/fsm.js';
import { GOLDEN_FIXTURES } from './fixtures.js';

const decoder = process.env.EKV_DECODE;
const only = process.env.EKV_GOLDEN_ONLY ? new RegExp(process.env.EKV_GOLDEN_ONLY) : null;
const here = new URL('.', import.meta.url).pathname;

it('regenerates golden pairs with elastickv-snapshot-decode', () => {
  if (!decoder) throw new Error('set EKV_DECODE to the path of elastickv-snapshot-decode');
  for (const f of GOLDEN_FIXTURES) {
    if (only && !only.test(f.name)) continue;
    const dir = join(here, f.name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const fsm = join(dir, '0000000000000064.fsm');
    writeFileSync(fsm, encodeFsm(f.entries, f.lastCommitTS ?? 1000n));
    if (f.flags?.length) writeFileSync(join(dir, 'flags.json'), JSON.stringify(f.flags) + '\n');
    execFileSync(decoder, ['--input', fsm, '--output', join(dir, 'expected'), ...(f.flags ?? [])], { stdio: 'inherit' });
    // The owner leaves an empty .scratch/ behind after decoding S3 blobs: not part of the tree (git cannot hold it either).
    rmSync(join(dir, 'expected', '.scratch'), { recursive: true, force: true });
  }
});
