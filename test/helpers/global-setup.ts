import { execFileSync } from 'node:child_process';
import runTmpdir from './run-tmpdir.js';

/** Tests drive the real built binaries: build once before the run; then the run's own TMPDIR (run-tmpdir.ts). */
export default function setup(): () => void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit', cwd: new URL('../..', import.meta.url).pathname });
  return runTmpdir();
}
