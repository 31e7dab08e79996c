import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Tests drive the real built binaries: build once before the run. Every temporary
 * directory of the run (mount points, spill files, rendered trees, certificates) is made
 * under one directory of its own (TMPDIR for the test processes and the daemons they
 * start), removed when the run ends: a run used to leave ~400 directories in /tmp.
 */
export default function setup(): () => void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit', cwd: new URL('../..', import.meta.url).pathname });
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
