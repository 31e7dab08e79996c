import { execFileSync } from 'node:child_process';

/** Tests drive the real built binaries: build once before the run. */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit', cwd: new URL('../..', import.meta.url).pathname });
}
