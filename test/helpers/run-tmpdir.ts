import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every temporary directory of a test run (mount points, spill files, rendered trees,
 * certificates) is made under one directory of its own: TMPDIR for the test processes and
 * the daemons they start, removed when the run ends (a run used to leave ~400 directories
 * in /tmp). A vitest global setup: the unit config uses it as it is, the full one after
 * its build.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'ekv-test-run-'));
  process.env.TMPDIR = dir;
  return () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      // A mount a failed test left behind keeps its directory (read-only: nothing in it is touched).
      process.stderr.write(`test temp directory ${dir} not removed: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  };
}
