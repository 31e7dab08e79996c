/**
 * sha256 digests of the files the tree has served, by path id, for CHECKSUMS: 32-byte
 * slots in a temp file behind a small write-back cache of 64 KiB pages. Held in one
 * growing array instead, they cost 32 bytes a file for the life of the mount (8 MiB
 * after a copy of the bench's 262k-file dynamodb + redis, and the old array beside
 * the new one while it grew): memory that grew with the data. Here it is at most
 * `maxPages` pages, however many files the mount serves; the rest is in the kernel's
 * page cache, or on disk.
 *
 * - The file is unlinked as soon as it is opened, so nothing is left behind whatever
 *   ends the daemon, and it is created only once a page has to leave memory.
 * - A slot of zeros is "not known": a hole in the file reads as zeros. (A SHA-256 of
 *   32 zero bytes is never met in practice; one would only be hashed again.)
 * - An I/O error loses digests, never correctness: a digest not known is computed again
 *   when CHECKSUMS needs it. It is logged once.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

const DIGEST_BYTES = 32;
export const DIGEST_PAGE_BYTES = 64 * 1024;
const PER_PAGE = DIGEST_PAGE_BYTES / DIGEST_BYTES;
/** Pages kept in memory by default: 2 MiB, 65k digests. */
export const DIGEST_PAGES_IN_MEMORY = 32;

interface Page {
  no: number;
  buf: Buffer;
  dirty: boolean;
}

export interface DigestStoreOptions {
  /** Parent directory of the temp file. */
  dir: string;
  maxPages?: number;
  log?: Logger;
}

export class DigestStore {
  /** Pages in memory; Map order is least recently used first. */
  private readonly pages = new Map<number, Page>();
  /** The page used last (most accesses are to the same page as the one before). */
  private last: Page | null = null;
  private fd = -1;
  /** Pages from here on were never written out: they read as zeros without touching the file. */
  private written = 0;
  private ioFailed = false;
  readonly stats = { pageReads: 0, pageWrites: 0, ioErrors: 0 };
  private readonly maxPages: number;

  constructor(private readonly opts: DigestStoreOptions) {
    this.maxPages = Math.max(1, opts.maxPages ?? DIGEST_PAGES_IN_MEMORY);
  }

  hasId(id: number): boolean {
    const p = this.page(id, false);
    return p !== null && !isZero(p.buf, (id % PER_PAGE) * DIGEST_BYTES);
  }

  setId(id: number, digest: Buffer): void {
    const p = this.page(id, true)!;
    digest.copy(p.buf, (id % PER_PAGE) * DIGEST_BYTES, 0, DIGEST_BYTES);
    p.dirty = true;
  }

  /** The digest of path id `id` in hex, or null when it is not known. */
  hexId(id: number): string | null {
    const p = this.page(id, false);
    const at = (id % PER_PAGE) * DIGEST_BYTES;
    return p === null || isZero(p.buf, at) ? null : p.buf.toString('hex', at, at + DIGEST_BYTES);
  }

  close(): void {
    this.pages.clear();
    this.last = null;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** The page holding `id`; null (nothing known there) when it is in neither memory nor the file and `create` is false. */
  private page(id: number, create: boolean): Page | null {
    if (id <= 0) return null;
    const no = Math.floor(id / PER_PAGE);
    const l = this.last;
    if (l !== null && l.no === no) return l;
    let p = this.pages.get(no);
    if (p) {
      this.pages.delete(no);
      this.pages.set(no, p);
    } else {
      if (!create && no >= this.written) return null;
      p = { no, buf: Buffer.alloc(DIGEST_PAGE_BYTES), dirty: false };
      if (no < this.written) this.readPage(p);
      this.pages.set(no, p);
      if (this.pages.size > this.maxPages) this.evictOldest();
    }
    this.last = p;
    return p;
  }

  private evictOldest(): void {
    const [no, p] = this.pages.entries().next().value as [number, Page];
    this.pages.delete(no);
    if (this.last === p) this.last = null;
    if (p.dirty) this.writePage(p);
  }

  private readPage(p: Page): void {
    try {
      let done = 0;
      while (done < DIGEST_PAGE_BYTES) {
        const n = readSync(this.fd, p.buf, done, DIGEST_PAGE_BYTES - done, p.no * DIGEST_PAGE_BYTES + done);
        if (n === 0) break; // past the end: the rest is zeros (not known)
        done += n;
      }
      this.stats.pageReads++;
    } catch (e) {
      p.buf.fill(0); // not known: hashed again when needed
      this.failed(e);
    }
  }

  private writePage(p: Page): void {
    try {
      if (this.fd < 0) this.fd = openUnlinked(this.opts.dir);
      let done = 0;
      while (done < DIGEST_PAGE_BYTES) done += writeSync(this.fd, p.buf, done, DIGEST_PAGE_BYTES - done, p.no * DIGEST_PAGE_BYTES + done);
      this.stats.pageWrites++;
      if (p.no >= this.written) this.written = p.no + 1;
    } catch (e) {
      this.failed(e);
    }
  }

  private failed(e: unknown): void {
    this.stats.ioErrors++;
    if (this.ioFailed) return;
    this.ioFailed = true;
    this.opts.log?.warn({ err: e instanceof Error ? e.message : String(e), dir: this.opts.dir }, 'CHECKSUMS digest file: I/O failed; digests lost here are computed again when CHECKSUMS is read');
  }
}

/** A read-write file in a fresh directory under `parent`, already unlinked (and its directory removed). */
function openUnlinked(parent: string): number {
  const dir = mkdtempSync(join(parent, 'ekv-mount-digests-'));
  const path = join(dir, 'sha256');
  try {
    return openSync(path, 'w+', 0o600);
  } finally {
    try {
      unlinkSync(path);
    } catch {
      // not created
    }
    rmdirSync(dir);
  }
}

function isZero(b: Buffer, at: number): boolean {
  for (let i = at; i < at + DIGEST_BYTES; i += 4) if (b.readUInt32LE(i) !== 0) return false;
  return true;
}
