/**
 * Handing a pin to another host. The host that begins a pin can write its token
 * and read_ts to a file (--pin-token-file, mode 0600); another host joins with
 * `--pin-token @<file>` (or `--pin-token <hex> --read-ts <hlc>` from the stderr
 * lines). The token is a secret - whoever holds it can renew and end the pin -
 * so it never goes into the JSON logs, only into this file and, when no file is
 * asked for, onto stderr once.
 *
 * Format: `key=value` lines (pin_token, read_ts), `#` comments. Readable by eye,
 * by `grep`, and by a shell's `source`.
 */
import { chmodSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { SourceError } from '../source/types.js';
import { pinTokenFromText, pinTokenToText } from './session.js';

export interface PinFile {
  pinToken: Buffer;
  readTs: bigint;
}

export interface PinFileContext {
  endpoints: string[];
  ttlMs: number;
  mountpoint: string;
}

export function renderPinFile(p: PinFile, ctx: PinFileContext): string {
  return [
    '# ekv-mount backup pin. SECRET: whoever holds pin_token can renew and end the pin.',
    `# begun ${new Date().toISOString()} on ${hostname()} (pid ${process.pid}, mount ${ctx.mountpoint}), cluster ${ctx.endpoints.join(',')}, ttl ${ctx.ttlMs} ms`,
    '# join it from another host (the pin stays owned here: it is ended when this mount ends):',
    `#   ekv-mount <mountpoint> --cluster ${ctx.endpoints.join(',')} --pin-token @<this file> --scope <adapter>=<names>`,
    `pin_token=${pinTokenToText(p.pinToken)}`,
    `read_ts=${p.readTs}`,
    '',
  ].join('\n');
}

/** Write atomically with mode 0600 whatever the umask or an older file's mode. */
export function writePinFile(path: string, p: PinFile, ctx: PinFileContext): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, renderPinFile(p, ctx), { mode: 0o600, flag: 'wx' });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not created */
    }
    throw new Error(`--pin-token-file ${path}: cannot write it: ${(e as Error).message}`);
  }
}

/** Remove the file at unmount (the pin is ended), unless something else has replaced it since. */
export function removePinFile(path: string, token: Buffer): void {
  try {
    if (parsePinFile(readFileSync(path, 'utf8'), path).pinToken.equals(token)) unlinkSync(path);
  } catch {
    /* gone or replaced: leave it */
  }
}

export function parsePinFile(text: string, path: string): PinFile {
  const kv = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const tok = kv.get('pin_token');
  const ts = kv.get('read_ts');
  if (!tok || !ts) throw new SourceError('config', `--pin-token @${path}: not a pin file (expected pin_token=<hex> and read_ts=<hlc> lines, as --pin-token-file writes)`);
  if (!/^[0-9]+$/.test(ts) || BigInt(ts) >= 1n << 64n) throw new SourceError('config', `--pin-token @${path}: read_ts ${JSON.stringify(ts)} is not a uint64`);
  return { pinToken: pinTokenFromText(tok), readTs: BigInt(ts) };
}

export function readPinFile(path: string): PinFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SourceError('config', `--pin-token @${path}: cannot read it: ${(e as Error).message}`);
  }
  return parsePinFile(text, path);
}
