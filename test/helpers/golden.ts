/** Golden pairs: `<case>/<index>.fsm` + `<case>/expected/` written by elastickv's own decoder. */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sh } from './mount.js';

export interface GoldenCase {
  name: string;
  fsm: string;
  expected: string;
  /** Decode flags the expected tree was made with (flags.json); passed to ekv-mount too. */
  flags: string[];
}

export const GOLDEN_DIRS = [join(ROOT, '..', 'shared', 'golden'), join(ROOT, 'test', 'golden')];

export function goldenCases(): GoldenCase[] {
  const out: GoldenCase[] = [];
  for (const base of GOLDEN_DIRS) {
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base).sort()) {
      const dir = join(base, name);
      if (!statSync(dir).isDirectory()) continue;
      const fsm = readdirSync(dir).find((f) => f.endsWith('.fsm'));
      const expected = join(dir, 'expected');
      if (!fsm || !existsSync(expected)) continue;
      const flagsFile = join(dir, 'flags.json');
      const flags = existsSync(flagsFile) ? (JSON.parse(readFileSync(flagsFile, 'utf8')) as string[]) : [];
      out.push({ name: `${base.includes('shared') ? 'shared' : 'local'}/${name}`, fsm: join(dir, fsm), expected, flags });
    }
  }
  return out;
}

/** MANIFEST.json without the fields that legitimately differ (wall time, source). */
export function normalizeManifest(text: string): string {
  const j = JSON.parse(text) as Record<string, unknown>;
  delete j.wall_time_iso;
  delete j.source;
  delete j.live;
  return JSON.stringify(j, null, 2);
}

/** CHECKSUMS without its MANIFEST.json line (MANIFEST's wall time differs). */
export function normalizeChecksums(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^\\?[0-9a-f]{64} {2}MANIFEST\.json$/.test(l))
    .join('\n');
}

/**
 * Copy `actual` (a mounted tree) and `expected` into scratch dirs, normalise the
 * root MANIFEST.json/CHECKSUMS in both, and `diff -r` them. Returns diff output ('' = identical).
 */
export async function diffAgainstExpected(actualCopy: string, expected: string, scratch: string): Promise<string> {
  const exp = join(scratch, 'expected');
  const r = await sh(`rm -rf '${exp}' && cp -a '${expected}' '${exp}'`);
  if (r.code !== 0) throw new Error(r.stderr);
  for (const dir of [actualCopy, exp]) {
    const m = join(dir, 'MANIFEST.json');
    if (existsSync(m)) writeFileSync(m, normalizeManifest(readFileSync(m, 'utf8')));
    const c = join(dir, 'CHECKSUMS');
    if (existsSync(c)) writeFileSync(c, normalizeChecksums(readFileSync(c, 'utf8')));
  }
  const d = await sh(`diff -r '${exp}' '${actualCopy}'`);
  return d.stdout + d.stderr;
}
