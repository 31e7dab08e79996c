/**
 * Every golden pair (../shared/golden/* and test/golden/*) is mounted and must
 * diff -r clean against the tree elastickv's own decoder wrote, except the
 * wall-time/source fields of MANIFEST.json and the MANIFEST.json CHECKSUMS line.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffAgainstExpected, goldenCases } from './helpers/golden.js';
import { mount, sh, tempDir } from './helpers/mount.js';

const cases = goldenCases();

describe('golden pairs over a snapshot mount', () => {
  it('finds golden pairs to check', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  for (const c of cases) {
    it(`${c.name}: cp -r of the mount diff -r clean against expected; sha256sum -c passes`, async () => {
      const m = await mount(['--snapshot', c.fsm, ...c.flags]);
      const scratch = tempDir('ekv-golden-');
      try {
        const inMount = await sh('sha256sum --quiet -c CHECKSUMS', m.mnt);
        expect(inMount.stdout + inMount.stderr).toBe('');
        expect(inMount.code).toBe(0);
        const copy = join(scratch, 'actual');
        const cp = await sh(`cp -r '${m.mnt}' '${copy}'`);
        expect(cp.stderr).toBe('');
        const onCopy = await sh('sha256sum --quiet -c CHECKSUMS', copy);
        expect(onCopy.code).toBe(0);
        // rsync -a and tar see the same tree, and stat sizes are the exact byte counts.
        const rs = join(scratch, 'rsync');
        const tr = join(scratch, 'tar');
        expect((await sh(`rsync -a '${m.mnt}/' '${rs}/'`)).code).toBe(0);
        expect((await sh(`mkdir '${tr}' && tar -C '${m.mnt}' -cf - . | tar -C '${tr}' -xf -`)).code).toBe(0);
        for (const other of [rs, tr]) expect((await sh(`diff -r '${copy}' '${other}'`)).stdout).toBe('');
        const statSizes = await sh(`find . -type f -exec stat -c '%n %s' {} + | sort`, m.mnt);
        const realSizes = await sh(`find . -type f -exec sh -c 'for f; do printf "%s %s\\n" "$f" "$(wc -c < "$f")"; done' _ {} + | sort`, copy);
        expect(statSizes.stdout).toBe(realSizes.stdout);
        expect(await diffAgainstExpected(copy, c.expected, scratch)).toBe('');
      } finally {
        expect(await m.unmount()).toBe(0);
      }
    });
  }
});
