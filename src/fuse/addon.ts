/**
 * The ekvfuse addon (native/ekvfuse.c): where it is, its surface, and loading it once.
 * Kept apart from the mount code so the CLI can use the addon (a restart with other
 * node flags) without loading the whole tree first.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OffThreadSha256 } from '../tree/hashing.js';

declare const handleBrand: unique symbol;
/** Opaque native mount handle (a napi external). */
export interface Handle {
  readonly [handleBrand]: true;
}

export type Dispatch = (op: number, id: number, ino: number, a: number, b: number, fh: number, name: string | undefined) => void;

export interface Addon {
  mount(mountpoint: string, options: string, debug: boolean, uid: number, gid: number, timeSec: number, timeout: number, readdirplus: number, dispatch: Dispatch): Handle;
  unmount(h: Handle, cb: (err: string | null) => void): void;
  replyErr(h: Handle, id: number, errno: number): void;
  /** False when the request was answered already (EINTR after an interrupt, see interrupt): the kernel holds no lookup of ino then. */
  replyEntry(h: Handle, id: number, ino: number, kind: number, size: number): boolean;
  /**
   * The kernel interrupted request `id`: -1 answered already; 0 unanswered, its caller not
   * leaving (any signal but HUP/INT/QUIT/KILL/TERM); 1 answered EINTR now (caller leaving).
   */
  interrupt(h: Handle, id: number): number;
  replyAttr(h: Handle, id: number, ino: number, kind: number, size: number): void;
  replyOpen(h: Handle, id: number, fh: number, flags: number): void;
  replyBuf(h: Handle, id: number, data: Buffer): void;
  /** total: the listing's length (a reply reaching it lets the addon answer readdirs past it); -1: unknown. */
  replyDir(h: Handle, id: number, plus: boolean, size: number, names: string[], meta: Float64Array, firstOff: number, dirIno: number, total: number): number;
  pending(h: Handle): number;
  /**
   * Push bytes into the kernel page cache of a known inode; 0 or a positive errno. parkDir (not
   * 0): held until the kernel's next readdir of that directory (it has the reply's inodes then),
   * and the listing's end is answered after it. parkDir -1: a file about to be the answer of a
   * LOOKUP, held for the READ that follows it (answered by the addon); if none comes, pushed when
   * the push thread next wakes (every 32nd hold, or another push), 1 ms on at the earliest.
   */
  store(h: Handle, ino: number, offset: number, data: Buffer, parkDir: number): number;
  /**
   * Keep a listing of directory dirIno from offset `base` on (meta as replyDir's) for the kernel's
   * readdirplus at that offset and the ones after it, answered then by the addon; 0, or
   * ENOTCONN/ENOMEM/EINVAL/EAGAIN (the prepared listings hold their bound of bytes). The caller
   * has counted the entries' lookups; the entries the kernel never takes come back as forgets.
   */
  prepareDir(h: Handle, dirIno: number, names: string[], meta: Float64Array, base: number): number;
  /**
   * The kernel is expected to look up `name` in directory `parentIno` soon: the addon answers
   * that LOOKUP itself (ino, kind, size) and holds `data` (the file's whole bytes, or null) for the
   * READ after it. 0, or EAGAIN (the addon holds EXPECT_MAX_BYTES already), ENOMEM, ENOTCONN. The
   * caller has counted the lookup; an entry dropped unused (1024 at most are kept, the oldest go
   * first; one under the same name is replaced; expectClear) comes back as a forget, and each one
   * taken as an OP_EXPECTED notification (a: the bytes held for its READ).
   */
  expect(h: Handle, parentIno: number, name: string, ino: number, kind: number, size: number, data: Buffer | null): number;
  /** Drop every expected entry (their lookups come back as forgets); how many there were. */
  expectClear(h: Handle): number;
  /** Prepared listings the kernel took, those dropped untaken, pushes tried again after the kernel refused them, READs the addon answered from pushes not written yet, expected lookups answered, and those dropped unused. */
  sessionStats(h: Handle): [number, number, number, number, number, number];
  /** replyBuf of a READ of `ino`, sent once the pushes queued before it are in the page cache (at once while a push of `ino` is queued). */
  replyBufAfterStores(h: Handle, id: number, data: Buffer, ino: number): void;
  /** malloc_trim(0): freed malloc memory back to the kernel; whether any was released. */
  trimMalloc(): boolean;
  /** tree/hashing.ts's OffThreadSha256: in libuv's thread pool with Node's own OpenSSL, the Buffer read in place; false when not queued (no SHA256 in this process). */
  sha256(data: Buffer, cb: (err: string | null, digest: Buffer | null) => void): boolean;
  /** execv(path, argv): returns only on failure, with the errno. */
  reexec(path: string, argv: string[]): number;
}

/** Where the addon is built (native/build.sh), relative to dist/fuse/ and src/fuse/ alike. */
export const ADDON_PATH = fileURLToPath(new URL('../../native/build/ekvfuse.node', import.meta.url));

let addon: Addon | null = null;
let loadError: Error | null = null;

/** Load the addon once; throws (with the reason) when it is missing or cannot load. */
export function loadAddon(): Addon {
  if (addon) return addon;
  if (loadError) throw loadError;
  try {
    if (!existsSync(ADDON_PATH)) throw new Error(`${ADDON_PATH} is missing (run native/build.sh or scripts/setup.sh)`);
    const require = createRequire(import.meta.url);
    addon = require(ADDON_PATH) as Addon;
    return addon;
  } catch (e) {
    loadError = e instanceof Error ? e : new Error(String(e));
    throw loadError;
  }
}

/** glibc's malloc_trim through the addon, or null when the addon cannot load (fuse-native without a build). */
export function mallocTrimmer(): (() => boolean) | null {
  try {
    const A = loadAddon();
    return () => A.trimMalloc();
  } catch {
    return null;
  }
}

/** The addon's off-thread sha256 (tree/hashing.ts), or null when the addon cannot load (fuse-native without a build). */
export function addonSha256(): OffThreadSha256 | null {
  try {
    const A = loadAddon();
    return (data, cb) => A.sha256(data, cb);
  } catch {
    return null;
  }
}

/**
 * Replace this process with `argv` (execv: same pid, fds and environment). Returns only when
 * it could not: the errno, or the reason the addon did not load.
 */
export function reexecProcess(path: string, argv: string[]): string {
  let A: Addon;
  try {
    A = loadAddon();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return `execv failed: errno ${A.reexec(path, argv)}`;
}
