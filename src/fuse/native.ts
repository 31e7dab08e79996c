/**
 * Kernel FUSE ops through our own libfuse3 low-level binding (native/ekvfuse.c)
 * to the Tree. Same public surface and behaviour as FuseMount (fuse-native,
 * libfuse2), but:
 *  - requests are answered asynchronously from the JS thread, many in flight at
 *    once (libfuse's multi-threaded loop only queues them);
 *  - the kernel talks inodes, so an inode table (path <-> ino, lookup counts,
 *    forget) lives here;
 *  - readdirplus hands entries with attributes to the kernel, so `ls -l`, tar
 *    and cp need no lookup per file; negative lookups are cached too.
 * Read-only: the mount carries `ro`, and every write-side op is answered
 * EROFS inside the addon. The tree is immutable for the life of the mount, so
 * entries, attributes, pages (keep_cache) and listings (cache_readdir) get long
 * kernel lifetimes.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Attr } from '../tree/tree.js';
import { TreeError } from '../tree/tree.js';
import { isMounted, type MountOptions } from './mount.js';

declare const handleBrand: unique symbol;
/** Opaque native mount handle (a napi external). */
interface Handle {
  readonly [handleBrand]: true;
}

type Dispatch = (op: number, id: number, ino: number, a: number, b: number, fh: number, name: string | undefined) => void;

interface Addon {
  mount(mountpoint: string, options: string, debug: boolean, uid: number, gid: number, timeSec: number, timeout: number, readdirplus: number, dispatch: Dispatch): Handle;
  unmount(h: Handle, cb: (err: string | null) => void): void;
  replyErr(h: Handle, id: number, errno: number): void;
  replyEntry(h: Handle, id: number, ino: number, kind: number, size: number): void;
  replyAttr(h: Handle, id: number, ino: number, kind: number, size: number): void;
  replyOpen(h: Handle, id: number, fh: number, flags: number): void;
  replyBuf(h: Handle, id: number, data: Buffer): void;
  replyDir(h: Handle, id: number, plus: boolean, size: number, names: string[], meta: Float64Array, firstOff: number): number;
  pending(h: Handle): number;
}

const OP_LOOKUP = 1;
const OP_GETATTR = 2;
const OP_OPENDIR = 3;
const OP_READDIR = 4;
const OP_READDIRPLUS = 5;
const OP_RELEASEDIR = 6;
const OP_OPEN = 7;
const OP_READ = 8;
const OP_FORGET = 9;
const OP_EXIT = 10;

const OPEN_KEEP_CACHE = 1;
const OPEN_CACHE_DIR = 2;

const KIND_FILE = 0;
const KIND_DIR = 1;
const KIND_UNKNOWN = 2;

const ROOT_INO = 1;

/** Positive errno values (libfuse replies take them positive). */
const ERRNO: Record<TreeError['errno'], number> = {
  ENOENT: 2,
  EIO: 5,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
};
const ESTALE = 116;

function errnoOf(e: unknown): number {
  return e instanceof TreeError ? ERRNO[e.errno] : ERRNO.EIO;
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

/** Size of a FUSE dirent / direntplus record for a name of `len` bytes (struct layout, 8-aligned). */
function direntSize(plus: boolean, len: number): number {
  return ((plus ? 152 : 24) + len + 7) & ~7;
}

interface InodeEntry {
  path: string;
  /** Kernel lookup count. */
  n: number;
}

/** path <-> inode number, with the kernel's lookup counts. Inode numbers are never reused. */
class Inodes {
  private readonly byIno = new Map<number, InodeEntry>();
  private readonly byPath = new Map<string, number>();
  private next = ROOT_INO + 1;

  constructor() {
    this.byIno.set(ROOT_INO, { path: '/', n: 1 });
    this.byPath.set('/', ROOT_INO);
  }

  path(ino: number): string | undefined {
    return this.byIno.get(ino)?.path;
  }

  peek(path: string): number {
    return this.byPath.get(path) ?? 0;
  }

  /** The inode for `path`, counting one kernel lookup. */
  ref(path: string): number {
    let ino = this.byPath.get(path);
    if (ino === undefined) {
      ino = this.next++;
      this.byPath.set(path, ino);
      this.byIno.set(ino, { path, n: 0 });
    }
    this.byIno.get(ino)!.n++;
    return ino;
  }

  forget(ino: number, n: number): void {
    if (ino === ROOT_INO) return;
    const e = this.byIno.get(ino);
    if (!e) return;
    e.n -= n;
    if (e.n <= 0) {
      this.byIno.delete(ino);
      if (this.byPath.get(e.path) === ino) this.byPath.delete(e.path);
    }
  }

  get size(): number {
    return this.byIno.size;
  }
}

function child(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function kindOf(a: Attr): number {
  return a.kind === 'dir' ? KIND_DIR : KIND_FILE;
}

export class NativeFuseMount {
  private h: Handle | null = null;
  private readonly inodes = new Inodes();
  /** Listings of open directories, by directory handle. */
  private readonly dirs = new Map<number, string[]>();
  private nextFh = 1;
  private readonly mountedAt = new Date();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  private exitedResolve: (() => void) | null = null;
  /** Resolves when the session loop has ended (our unmount, fusermount -u, or a failure). */
  readonly exited: Promise<void>;
  private ended = false;
  /** The kernel opens files without asking (FUSE_CAP_NO_OPEN_SUPPORT). */
  private zeroMessageOpens = false;

  constructor(private readonly o: MountOptions) {
    this.exited = new Promise((resolve) => (this.exitedResolve = resolve));
  }

  private track<T>(p: () => Promise<T>): Promise<T> {
    const g = this.o.inflight;
    if (!g) return p();
    g.inc();
    return p().finally(() => g.dec());
  }

  /** Requests seen, by op (logged at debug level when the session ends). */
  private readonly opCounts = new Array<number>(OP_EXIT + 1).fill(0);

  private readonly dispatch: Dispatch = (op, id, ino, a, b, fh, name) => {
    if (op > 0 && op <= OP_EXIT) this.opCounts[op]!++;
    try {
      switch (op) {
        case OP_LOOKUP:
          return this.lookup(id, ino, name ?? '');
        case OP_GETATTR:
          return this.getattr(id, ino);
        case OP_OPENDIR:
          return this.opendir(id, ino);
        case OP_READDIR:
        case OP_READDIRPLUS:
          return this.readdir(id, ino, a, b, fh, op === OP_READDIRPLUS);
        case OP_RELEASEDIR:
          this.dirs.delete(fh);
          return;
        case OP_OPEN:
          // Answered in the addon: the kernel opens only inodes a lookup returned as files of
          // this immutable tree. The first answer is ENOSYS (zero-message opens, a = 1): from
          // then on the kernel sends no OPEN/RELEASE, and a read at offset 0 counts as an open.
          if (a === 1) this.zeroMessageOpens = true; // its read at offset 0 counts it
          else this.o.tree.stats.filesOpened++;
          return;
        case OP_READ:
          return this.read(id, ino, a, b);
        case OP_FORGET:
          this.inodes.forget(ino, a);
          return;
        case OP_EXIT:
          return this.onExit(b);
        default:
          if (id) this.addon().replyErr(this.handle(), id, 38 /* ENOSYS */);
      }
    } catch (e) {
      this.o.log.error({ op, err: e instanceof Error ? e.message : String(e) }, 'fuse dispatch failed');
      if (id && this.h) this.addon().replyErr(this.h, id, ERRNO.EIO);
    }
  };

  private addon(): Addon {
    return loadAddon();
  }

  private handle(): Handle {
    if (!this.h) throw new Error('not mounted');
    return this.h;
  }

  /** Reply through `fn` unless the session has ended meanwhile (then the request is gone). */
  private answer(fn: (A: Addon, h: Handle) => void): void {
    const h = this.h;
    if (h) fn(this.addon(), h);
  }

  private fail(id: number): (e: unknown) => void {
    return (e) => this.answer((A, h) => A.replyErr(h, id, errnoOf(e)));
  }

  private lookup(id: number, parent: number, name: string): void {
    const dir = this.inodes.path(parent);
    if (dir === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    const path = child(dir, name);
    this.track(() => this.o.tree.getattr(path)).then(
      (a) => this.answer((A, h) => A.replyEntry(h, id, this.inodes.ref(path), kindOf(a), a.size)),
      (e) => {
        const n = errnoOf(e);
        // The tree is immutable: a missing name stays missing (negative entry, cached by the kernel).
        this.answer((A, h) => (n === ERRNO.ENOENT ? A.replyEntry(h, id, 0, KIND_FILE, 0) : A.replyErr(h, id, n)));
      },
    );
  }

  private getattr(id: number, ino: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    this.track(() => this.o.tree.getattr(path)).then((a) => this.answer((A, h) => A.replyAttr(h, id, ino, kindOf(a), a.size)), this.fail(id));
  }

  private opendir(id: number, ino: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    this.track(() => this.o.tree.readdir(path)).then((names) => {
      const fh = this.nextFh++;
      this.dirs.set(fh, names);
      this.answer((A, h) => A.replyOpen(h, id, fh, OPEN_KEEP_CACHE | OPEN_CACHE_DIR));
    }, this.fail(id));
  }

  private readdir(id: number, ino: number, size: number, off: number, fh: number, plus: boolean): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    const cached = this.dirs.get(fh);
    const listing = cached ? Promise.resolve(cached) : this.track(() => this.o.tree.readdir(path));
    listing.then((names) => {
      // The entries from `off` that fit in `size` bytes.
      const picked: string[] = [];
      let used = 0;
      for (let i = off; i < names.length; i++) {
        const name = names[i]!;
        const sz = direntSize(plus, Buffer.byteLength(name));
        if (used + sz > size) break;
        used += sz;
        picked.push(name);
      }
      const meta = new Float64Array(picked.length * 3);
      if (!plus) {
        for (let i = 0; i < picked.length; i++) {
          meta[3 * i] = this.inodes.peek(child(path, picked[i]!));
          meta[3 * i + 1] = KIND_UNKNOWN;
        }
        this.answer((A, h) => A.replyDir(h, id, false, size, picked, meta, off));
        return;
      }
      const paths = picked.map((n) => child(path, n));
      // A child whose attributes fail (e.g. EIO for a corrupt record) is listed without them;
      // its own lookup then reports the error, as with fuse-native.
      return this.track(() => Promise.all(paths.map((p) => this.o.tree.getattr(p).then((a) => a, () => null)))).then((attrs) => {
        const h = this.h;
        if (!h) return;
        const inos: number[] = [];
        for (let i = 0; i < attrs.length; i++) {
          const a = attrs[i];
          const ino = a ? this.inodes.ref(paths[i]!) : 0;
          inos.push(ino);
          meta[3 * i] = ino;
          meta[3 * i + 1] = a ? kindOf(a) : KIND_UNKNOWN;
          meta[3 * i + 2] = a ? a.size : 0;
        }
        const added = this.addon().replyDir(h, id, true, size, picked, meta, off);
        // Entries that did not make it into the reply were never counted by the kernel.
        for (let i = added; i < inos.length; i++) if (inos[i]) this.inodes.forget(inos[i]!, 1);
      });
    }).catch(this.fail(id));
  }

  private read(id: number, ino: number, size: number, off: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    if (off === 0 && this.zeroMessageOpens) this.o.tree.stats.filesOpened++;
    this.track(() => this.o.tree.read(path, off, size)).then(
      (data) => this.answer((A, h) => A.replyBuf(h, id, data.length > size ? data.subarray(0, size) : data)),
      this.fail(id),
    );
  }

  private onExit(code: number): void {
    this.ended = true;
    this.h = null;
    this.dirs.clear();
    if (code < 0) this.o.log.warn({ mountpoint: this.o.mountpoint, errno: -code }, 'fuse session ended with an error');
    const c = this.opCounts;
    const ops = { lookup: c[OP_LOOKUP], getattr: c[OP_GETATTR], opendir: c[OP_OPENDIR], readdir: c[OP_READDIR], readdirplus: c[OP_READDIRPLUS], open: c[OP_OPEN], read: c[OP_READ], forget: c[OP_FORGET] };
    this.o.log.debug({ mountpoint: this.o.mountpoint, ops, inodes: this.inodes.size }, 'fuse session ended');
    this.exitedResolve?.();
  }

  mount(): Promise<void> {
    try {
      const A = loadAddon();
      const timeout = this.o.cacheTimeout ?? 3600;
      const maxRead = this.o.maxRead ?? 1 << 20;
      const opts = ['ro', 'fsname=ekv-mount', 'subtype=ekv', 'default_permissions', `max_read=${maxRead}`].join(',');
      const rdp = process.env.EKV_FUSE_READDIRPLUS;
      const readdirplus = rdp === 'no' ? 0 : rdp === 'auto' ? 2 : 1; // default: always (tar, cp, ls -l need no lookups)
      this.h = A.mount(this.o.mountpoint, opts, this.o.debug ?? false, this.uid, this.gid, this.mountedAt.getTime() / 1000, timeout, readdirplus, this.dispatch);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  unmount(): Promise<void> {
    const h = this.h;
    if (!h || this.ended) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      loadAddon().unmount(h, (err) => {
        if (err && isMounted(this.o.mountpoint)) return reject(new Error(`unmount ${this.o.mountpoint}: ${err}`));
        // Lazy unmount: the session ends once the kernel lets go (at once unless something still
        // holds files open there). Do not wait for a busy mount forever: process exit ends it too.
        const t = setTimeout(() => {
          this.o.log.warn({ mountpoint: this.o.mountpoint }, 'fuse session still busy after unmount; leaving it to process exit');
          resolve();
        }, 5000);
        void this.exited.then(() => {
          clearTimeout(t);
          resolve();
        });
      });
    });
  }

  /** Inodes the kernel currently holds (diagnostics). */
  get inodeCount(): number {
    return this.inodes.size;
  }
}
