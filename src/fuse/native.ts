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
import { childPath, grown, KIND_DIR as PATH_DIR, KIND_FILE as PATH_FILE, type PathTable } from '../tree/paths.js';
import type { Attr, DirListing } from '../tree/tree.js';
import { TreeError } from '../tree/tree.js';
import { isMounted, type MountOptions } from './mount.js';
import { loadAddon, type Addon, type Dispatch, type Handle } from './addon.js';
import { LookAhead } from './lookahead.js';

export { addonSha256, loadAddon, mallocTrimmer } from './addon.js';

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
/** A notification: the kernel took a listing prepared ahead (ino: the directory). */
const OP_PREPARED = 11;
/** A notification: the kernel interrupted a request we hold (a: its id). */
const OP_INTERRUPT = 12;
/** A notification: the addon answered a lookup from an entry we expected (ino: the entry's; see LookAhead). */
const OP_EXPECTED = 13;
/** The waiters key of a directory's listing (a NUL never appears in a path). */
const LISTING_OF = '\0listing:';
/**
 * How often a request interrupted by a signal that does not end its caller is looked at
 * again: a later Ctrl-C sends no second INTERRUPT (the kernel sends one per request).
 */
const INTERRUPT_RECHECK_MS = 250;

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
const ENOTCONN = 107;

function errnoOf(e: unknown): number {
  return e instanceof TreeError ? ERRNO[e.errno] : ERRNO.EIO;
}

/** Size of a FUSE dirent / direntplus record for a name of `len` bytes (struct layout, 8-aligned). */
function direntSize(plus: boolean, len: number): number {
  return ((plus ? 152 : 24) + len + 7) & ~7;
}

/**
 * The kernel's inodes: an inode number is the path's id in the tree's PathTable (stable for
 * the life of the mount, never reused for another path), with the kernel's lookup counts
 * beside it in one typed array. A file the kernel holds costs 4 bytes here plus its entry in
 * the path table (its name and ~20 bytes), not a path string and a Map entry (~150 bytes a
 * file, which grew peak RSS by ~38 MiB over a copy of the 254k-file bench tree).
 */
class Inodes {
  /** Kernel lookup counts, by inode. */
  private counts = new Uint32Array(1024);
  private live = 1;

  constructor(private readonly paths: PathTable) {
    this.counts[ROOT_INO] = 1;
  }

  /** Whether the kernel holds (or we counted for it) a lookup of inode `ino`. */
  held(ino: number): boolean {
    return ino < this.counts.length && this.counts[ino]! > 0;
  }

  /** The path of an inode the kernel holds. */
  path(ino: number): string | undefined {
    return ino < this.counts.length && this.counts[ino]! > 0 ? this.paths.path(ino) : undefined;
  }

  /** The inode for `name` in directory inode `dir`, counting one kernel lookup. */
  ref(dir: number, name: string): number {
    return this.refId(this.paths.child(dir, name));
  }

  /** Count one kernel lookup of inode `ino` (a path id the tree handed out); returns it. */
  refId(ino: number): number {
    this.counts = grown(this.counts, ino + 1, (n) => new Uint32Array(n));
    const held = this.counts[ino]!;
    if (held === 0) this.live++;
    this.counts[ino] = held + 1;
    return ino;
  }

  forget(ino: number, n: number): void {
    if (ino === ROOT_INO || ino >= this.counts.length) return;
    const left = this.counts[ino]!;
    if (left === 0) return;
    this.counts[ino] = Math.max(0, left - n);
    if (this.counts[ino] === 0) this.live--;
  }

  get size(): number {
    return this.live;
  }
}

/**
 * Cross-file read-ahead. tar, cp -r and rsync read a directory's files one after
 * another in listing order, and most files of this tree are small: one READ round
 * trip (kernel -> libfuse thread -> JS -> kernel) per file is most of a copy's time.
 * When a file is read from byte 0, the next files of its listing that the kernel
 * already holds (from readdirplus) are rendered and pushed into the kernel's page
 * cache (notify_store), so their reads never leave the kernel. The window doubles
 * while reads keep landing ahead of it and never runs more than one window ahead.
 * The first window goes as soon as readdirplus has given the kernel its entries, so a
 * directory that fits in one window is copied without a single READ.
 *
 * Reads of pushed files never reach us, so each window leaves one file half a window
 * from its end unpushed: its READ is a sentinel that says where the reader is, and the
 * next window is rendered while the reader still has half a window of pushed files to
 * go. Without it the pipeline stops and goes: the reader waits for a whole window to
 * render, then we idle while it reads the window from the page cache.
 */
const PREFILL_FIRST = 16;
const PREFILL_MAX_FILES = 512;
/** Files larger than this are read through READ as usual (max_read pieces, kernel read-ahead). */
const PREFILL_MAX_FILE_BYTES = 1 << 20;

/** store()'s parkDir for a push held for the READ after a lookup (the addon's store_enqueue with hold). */
const HOLD = -1;

/** A listed entry's size as the cross-file read-ahead keeps it: a file it may push whole, else -1. */
function pushSize(isFile: boolean, size: number): number {
  return isFile && size > 0 && size <= PREFILL_MAX_FILE_BYTES ? size : -1;
}
const PREFILL_MAX_BYTES = 8 << 20;
/**
 * Listings remembered (the one being read, and those prepared ahead of it: see prepare), and
 * their entries together: a big listing (names, inodes, sizes, positions: ~60-100 bytes an
 * entry) is let go once another one is remembered past this many, not kept for the next 15,
 * unless a reader is still in it (see LISTING_IN_USE_MS).
 */
const LISTINGS_KEPT = 16;
const LISTINGS_KEPT_ENTRIES = 65536;
/**
 * A listing a reader is in (its pushes short of its end, and used this recently) is not let go
 * for either bound: a copy of a big directory keeps its pushes while something else lists
 * other directories (an `ls`, or a second `tar` walking small directories, beside a `tar` of
 * 80k files made that tar read every file by READ, 2-4x slower). Past LISTINGS_MAX, the least
 * recently used go all the same.
 */
export const LISTING_IN_USE_MS = 1000;
export const LISTINGS_MAX = 64;
/** Directories remembered as let go with files not pushed yet (see recall). */
const LET_GO_KEPT = 256;
/** Listings handed to the addon ahead of the kernel's readdir fit its one-page buffer. */
const PREPARE_MAX_BYTES = 4096;
/**
 * The rest of a big listing goes to the addon (prepareRest) up to this many entries: ~5 MiB there
 * and as much here while it is handed over. A bigger one (a table's million items in one
 * directory) is answered reply by reply, as before, without that memory.
 */
const PREPARE_REST_MAX = 131072;

interface Listing {
  dir: string;
  names: string[];
  /** Each entry's path id (its inode number once the kernel holds it). */
  ids: Uint32Array;
  /** Kernel inode (0: none yet) and size (-1: not a small regular file) per entry, from readdirplus. */
  inos: Float64Array;
  sizes: Float64Array;
  /** Entry index by inode. */
  pos: Map<number, number>;
  /** Entries below this index were pushed (or skipped). */
  pushedTo: number;
  window: number;
  /** When it was last used (performance.now()). */
  used: number;
}

/** Entry `i` of a listing as the kernel holds it: its inode, and the size the read-ahead may push (pushSize). */
function listed(l: Listing, i: number, ino: number, size: number): void {
  l.inos[i] = ino;
  l.sizes[i] = size;
  l.pos.set(ino, i);
}

const DIR_ATTR: Attr = { kind: 'dir', size: 4096 };

function kindOf(a: Attr): number {
  return a.kind === 'dir' ? KIND_DIR : KIND_FILE;
}

export class NativeFuseMount {
  private h: Handle | null = null;
  private readonly inodes: Inodes;
  /** Listings of open directories, by directory handle. */
  private readonly dirs = new Map<number, DirListing>();
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
  /** Listings of recently opened directories (cross-file read-ahead), least recently used first. */
  private readonly listings = new Map<string, Listing>();
  /** Their entries together (see LISTINGS_KEPT_ENTRIES). */
  private listedEntries = 0;
  /** Directories whose listings were let go with files not pushed yet, oldest first (see recall). */
  private readonly letGo = new Set<string>();
  /** Listings remade by recall. */
  recalledListings = 0;
  /** Listings let go with files not pushed yet, then listed again by the kernel (it forgot the directory's entries under memory pressure, and a reader lists it anew): remade by that listing, not by recall. */
  relistedListings = 0;
  /** Files pushed into the kernel page cache ahead of their reads. */
  prefilledFiles = 0;
  /** Listings handed to the addon ahead of the kernel's readdir (prepare). */
  preparedListings = 0;
  /** Big listings whose replies after the first were handed to the addon (prepareRest). */
  preparedRests = 0;
  /** Of those, the ones the kernel took and the ones dropped untaken; pushes tried again; READs the addon answered from pushes not written yet (read from the addon when the session ends). */
  private sessionStats: [number, number, number, number, number, number] = [0, 0, 0, 0, 0, 0];
  /** Lookups answered ahead for readers that open files by path in CHECKSUMS order (sha256sum -c). */
  private readonly lookAhead: LookAhead;
  private readonly onPrefetched = (path: string, l: DirListing): void => this.prepare(path, l);
  /** READs being answered, by inode. */
  private readonly readsInFlight = new Map<number, number>();

  constructor(private readonly o: MountOptions) {
    this.inodes = new Inodes(o.tree.paths);
    this.exited = new Promise((resolve) => (this.exitedResolve = resolve));
    this.lookAhead = new LookAhead(
      o.tree,
      {
        held: (id) => this.inodes.held(id),
        expect: (parentId, name, id, isDir, size, data) => {
          const h = this.h;
          if (!h) return ENOTCONN;
          // Counted now: the addon answers the kernel's lookup without telling us first (a forget comes back if it never does).
          const ino = this.inodes.refId(id);
          let rc = ENOTCONN;
          try {
            rc = this.addon().expect(h, parentId, name, ino, isDir ? KIND_DIR : KIND_FILE, isDir ? DIR_ATTR.size : size, data);
          } finally {
            if (rc !== 0) this.inodes.forget(ino, 1);
          }
          return rc;
        },
        clear: () => {
          if (this.h) this.addon().expectClear(this.h);
        },
      },
      o.log,
    );
  }

  private track<T>(p: () => Promise<T>): Promise<T> {
    const g = this.o.inflight;
    if (!g) return p();
    g.inc();
    return p().finally(() => g.dec());
  }

  /** Requests seen, by op (logged at debug level when the session ends). */
  private readonly opCounts = new Array<number>(OP_EXPECTED + 1).fill(0);
  /** Requests answered EINTR because their caller was leaving (see interrupted). */
  private interruptedRequests = 0;
  /** Interrupted requests still unanswered whose callers were not leaving: looked at again. */
  private readonly interruptWatch = new Set<number>();
  private interruptTimer: NodeJS.Timeout | null = null;
  /**
   * Requests in flight by the paths they wait on (a lookup, getattr or read: its own path; a
   * readdirplus: the children whose attributes it asked for, and LISTING_OF + the directory
   * while its listing is made), and the reverse: when the last one on a path is interrupted,
   * the render under way there stops (Tree.stopRender), or the listing (Tree.stopListing).
   */
  private readonly waiters = new Map<string, Set<number>>();
  private readonly waitedPaths = new Map<number, string[]>();

  private readonly dispatch: Dispatch = (op, id, ino, a, b, fh, name) => {
    if (op > 0 && op <= OP_EXPECTED) this.opCounts[op]!++;
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
        case OP_PREPARED: {
          // The walk is in this directory now: the read-ahead moves on from it.
          const path = this.inodes.path(ino);
          if (path !== undefined) this.o.tree.walked(path);
          return;
        }
        case OP_INTERRUPT:
          return this.interrupted(a);
        case OP_EXPECTED: {
          this.lookAhead.taken(ino);
          // Its READ at offset 0 is answered by the addon from the bytes handed over (a of them): an open we never see.
          if (a > 0) {
            this.o.tree.kernelHolds(ino);
            this.prefilledFiles++; // held for its READ, as holdLookedUp's
            if (this.zeroMessageOpens) this.o.tree.stats.filesOpened++;
          }
          return;
        }
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

  /**
   * The kernel interrupted request `id`: its caller got a signal. A caller that is leaving
   * (Ctrl-C, kill, timeout) is answered EINTR by the addon at once, instead of being held in
   * an uninterruptible wait until a long render ends (`ls -l` of the root builds CHECKSUMS: a
   * pass over the whole tree). Any other signal changes nothing, but the request is looked at
   * again while it waits, since the kernel sends no second INTERRUPT for a later Ctrl-C.
   */
  private interrupted(id: number): void {
    const h = this.h;
    const rc = h ? this.addon().interrupt(h, id) : -1;
    if (rc === 0) {
      this.interruptWatch.add(id);
      if (!this.interruptTimer) {
        this.interruptTimer = setInterval(() => {
          for (const w of this.interruptWatch) this.interrupted(w);
          if (this.interruptWatch.size === 0 && this.interruptTimer) {
            clearInterval(this.interruptTimer);
            this.interruptTimer = null;
          }
        }, INTERRUPT_RECHECK_MS);
        this.interruptTimer.unref();
      }
      return;
    }
    this.interruptWatch.delete(id);
    if (rc !== 1) return;
    this.interruptedRequests++;
    // A whole-file render, or a listing, that nobody else waits for stops (a record is kept).
    for (const key of this.unwait(id)) {
      const reason = 'every request waiting for it was interrupted';
      if (key.startsWith(LISTING_OF)) this.o.tree.stopListing(key.slice(LISTING_OF.length), reason);
      else this.o.tree.stopRender(key, reason);
    }
  }

  /** `fn` for request `id`, counted as waiting on `paths` while it runs (see waiters). */
  private waiting<T>(id: number, paths: string[], fn: () => Promise<T>): Promise<T> {
    for (const p of paths) {
      let ids = this.waiters.get(p);
      if (!ids) this.waiters.set(p, (ids = new Set()));
      ids.add(id);
    }
    this.waitedPaths.set(id, paths);
    return this.track(fn).finally(() => this.unwait(id));
  }

  /** Request `id` waits no more; the paths nobody else waits on now. */
  private unwait(id: number): string[] {
    const paths = this.waitedPaths.get(id);
    if (!paths) return [];
    this.waitedPaths.delete(id);
    const free: string[] = [];
    for (const p of paths) {
      const ids = this.waiters.get(p);
      if (!ids?.delete(id) || ids.size > 0) continue;
      this.waiters.delete(p);
      free.push(p);
    }
    return free;
  }

  private lookup(id: number, parent: number, name: string): void {
    const dir = this.inodes.path(parent);
    if (dir === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    const path = childPath(dir, name);
    this.waiting(id, [path], () => this.o.tree.getattr(path)).then(
      (a) =>
        this.answer((A, h) => {
          const ino = this.inodes.ref(parent, name);
          this.holdLookedUp(ino, a); // before the reply: the reader's READ comes right after it
          // Interrupted and answered EINTR meanwhile: the kernel holds no lookup of it.
          if (!A.replyEntry(h, id, ino, kindOf(a), a.size)) this.inodes.forget(ino, 1);
          else if (a.kind === 'file') this.lookAhead.looked(dir, name, ino);
        }),
      (e) => {
        const n = errnoOf(e);
        // The tree is immutable: a missing name stays missing (negative entry, cached by the kernel).
        this.answer((A, h) => (n === ERRNO.ENOENT ? A.replyEntry(h, id, 0, KIND_FILE, 0) : A.replyErr(h, id, n)));
      },
    );
  }

  /**
   * A file looked up by name (not listed: sha256sum -c, cat, a script's open) whose whole bytes
   * are in memory, most often because its size was just rendered for this lookup: handed to the
   * addon with the reply, which answers the READ after the open from them, with no round trip
   * through JS, or pushes them into the page cache if no READ comes (see HOLD).
   */
  private holdLookedUp(ino: number, a: Attr): void {
    if (pushSize(a.kind === 'file', a.size) <= 0 || this.readsInFlight.has(ino)) return;
    const data = this.o.tree.wholeIfCachedId(ino);
    if (data && data.length === a.size) this.push(ino, data, HOLD);
  }

  private getattr(id: number, ino: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    this.waiting(id, [path], () => this.o.tree.getattr(path)).then((a) => this.answer((A, h) => A.replyAttr(h, id, ino, kindOf(a), a.size)), this.fail(id));
  }

  private opendir(id: number, ino: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    this.waiting(id, [LISTING_OF + path], () => this.o.tree.dirListing(path, { stoppable: true })).then((listing) => {
      const fh = this.nextFh++;
      this.dirs.set(fh, listing);
      this.remember(path, listing);
      this.answer((A, h) => A.replyOpen(h, id, fh, OPEN_KEEP_CACHE | OPEN_CACHE_DIR));
    }, this.fail(id));
  }

  private readdir(id: number, ino: number, size: number, off: number, fh: number, plus: boolean): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    // fh 0: zero-message opendirs (the addon answered OPENDIR), so the listing is found by path.
    let at: DirListing | null | undefined = fh ? this.dirs.get(fh) : this.listings.get(path);
    if (!at && !fh) {
      // A listing made before (most often by the sibling read-ahead of a walk through small
      // directories) is answered in this callback: the reader waits on this reply.
      try {
        at = this.o.tree.keptListing(path);
      } catch (e) {
        return this.fail(id)(e);
      }
      if (at) this.remembered(path, at, off);
    }
    const answer = ({ names, ids }: DirListing): Promise<void> | void => {
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
          meta[3 * i] = ids[off + i]!;
          meta[3 * i + 1] = KIND_UNKNOWN;
        }
        this.answer((A, h) => A.replyDir(h, id, false, size, picked, meta, off, ino, names.length));
        return;
      }
      // Attributes the listing has at hand: a directory, or a file whose whole bytes are in memory
      // (a listing that renders its files). The others (all of them when the pin's gate refuses)
      // are asked of the tree; a child whose attributes fail there (e.g. EIO for a corrupt record),
      // or would cost a pass over the tree (CHECKSUMS), is listed without them, and its own lookup
      // then answers, as with fuse-native.
      const tree = this.o.tree;
      const attrs = new Array<Attr | null>(picked.length);
      const slow: number[] = [];
      let gated = true;
      try {
        tree.gateListing(path);
      } catch {
        gated = false;
      }
      for (let i = 0; i < picked.length; i++) {
        const kind = gated ? tree.paths.kind(ids[off + i]!) : 0;
        const size = kind === PATH_FILE ? tree.cachedSize(ids[off + i]!) : -1;
        if (kind === PATH_DIR) attrs[i] = DIR_ATTR;
        else if (size >= 0) attrs[i] = { kind: 'file', size };
        else slow.push(i);
      }
      const slowPaths = slow.map((i) => childPath(path, picked[i]!));
      const asked = slow.length === 0 ? null : this.waiting(id, slowPaths, () => Promise.all(slow.map((i, k) => tree.listingAttr(slowPaths[k]!).then((a) => (attrs[i] = a), () => (attrs[i] = null)))));
      const reply = (): void => {
        const h = this.h;
        if (!h) return;
        const l = this.listings.get(path);
        const mine = l !== undefined && l.names === names;
        const inos: number[] = [];
        for (let i = 0; i < attrs.length; i++) {
          const a = attrs[i];
          const childIno = a ? this.inodes.refId(ids[off + i]!) : 0;
          inos.push(childIno);
          meta[3 * i] = childIno;
          meta[3 * i + 1] = a ? kindOf(a) : KIND_UNKNOWN;
          meta[3 * i + 2] = a ? a.size : 0;
          if (mine && a && childIno) listed(l, off + i, childIno, pushSize(a.kind === 'file', a.size));
        }
        // The first window's attributes are in: push its files with this reply. A copy reads them
        // next, and their bytes were rendered for these sizes; waiting for the first READ costs the
        // round trip of one more request per directory (most directories of this tree fit in a
        // window). The pushes of bytes at hand are parked in the addon until the kernel asks for
        // more of the listing (it has the reply's inodes then), and the listing's end is answered
        // behind them, so the reader finds the pages instead of racing the pushes with READs.
        // (pushedTo stays 0 only until then: a window push always moves it past its first entry.)
        if (mine && l.pushedTo === 0 && off + picked.length >= Math.min(names.length, l.window)) this.pushAfter(l, -1, ino);
        // The rest of a big listing goes to the addon before this reply, which the kernel's next readdir follows.
        if (mine && gated && off === 0 && off + picked.length < names.length) this.prepareRest(l, ino, off + picked.length);
        const added = this.addon().replyDir(h, id, true, size, picked, meta, off, ino, names.length);
        // Entries that did not make it into the reply were never counted by the kernel (nor can take pushes).
        for (let i = added; i < inos.length; i++) {
          if (!inos[i]) continue;
          this.inodes.forget(inos[i]!, 1);
          if (mine) {
            l.inos[off + i] = 0;
            l.sizes[off + i] = -1;
            l.pos.delete(inos[i]!);
          }
        }
      };
      if (!asked) return reply();
      return asked.then(reply);
    };
    if (at) {
      try {
        const p = answer(at);
        if (p) p.catch(this.fail(id));
      } catch (e) {
        this.fail(id)(e);
      }
      return;
    }
    this.waiting(id, [LISTING_OF + path], () => this.o.tree.dirListing(path, { stoppable: true }))
      .then((l) => {
        if (!fh) this.remembered(path, l, off);
        return answer(l);
      })
      .catch(this.fail(id));
  }

  private read(id: number, ino: number, size: number, off: number): void {
    const path = this.inodes.path(ino);
    if (path === undefined) return this.answer((A, h) => A.replyErr(h, id, ESTALE));
    if (off === 0 && this.zeroMessageOpens) this.o.tree.stats.filesOpened++;
    this.readsInFlight.set(ino, (this.readsInFlight.get(ino) ?? 0) + 1);
    this.waiting(id, [path], () => this.o.tree.read(path, off, size))
      .finally(() => {
        const n = this.readsInFlight.get(ino)! - 1;
        if (n > 0) this.readsInFlight.set(ino, n);
        else this.readsInFlight.delete(ino);
      })
      .then(async (data) => {
        const reply = data.length > size ? data.subarray(0, size) : data;
        // An answer short of the size asked, or ending where the cached file does, reaches the
        // file's end; the kernel keeps the pages it is given (keep_cache).
        const toEnd = reply.length < size || this.o.tree.cachedSize(ino) === off + reply.length;
        const pushes = off === 0 ? this.prefill(ino, path) : null;
        if (!pushes || !pushes.wait) this.answer((A, h) => A.replyBuf(h, id, reply));
        else {
          await pushes.queued;
          // Answered behind the pushes, so the reader's next opens find their pages. Never for a
          // file that was pushed itself: the push thread may be waiting for this very page.
          this.answer((A, h) => (pushes.defer ? A.replyBufAfterStores(h, id, reply, ino) : A.replyBuf(h, id, reply)));
        }
        if (toEnd) this.o.tree.kernelHolds(ino);
      }, this.fail(id));
  }

  private remember(dir: string, { names, ids }: DirListing): Listing {
    const had = this.listings.get(dir);
    if (had?.names === names) return this.used(had);
    if (had) this.forgetListing(had);
    const n = names.length;
    const now = performance.now();
    const l: Listing = { dir, names, ids, inos: new Float64Array(n), sizes: new Float64Array(n).fill(-1), pos: new Map(), pushedTo: 0, window: PREFILL_FIRST, used: now };
    this.listings.set(dir, l);
    if (this.letGo.delete(dir)) this.relistedListings++;
    this.listedEntries += n;
    // Least recently used first, and only those no reader is in unless past LISTINGS_MAX.
    for (const old of this.listings.values()) {
      if (this.listings.size <= 1 || (this.listings.size <= LISTINGS_KEPT && this.listedEntries <= LISTINGS_KEPT_ENTRIES)) break;
      const inUse = old === l || (old.pushedTo < old.names.length && now - old.used < LISTING_IN_USE_MS);
      if (!inUse || this.listings.size > LISTINGS_MAX) this.forgetListing(old);
    }
    return l;
  }

  /** A listing in use again: last in the eviction order (if still remembered). */
  private used(l: Listing): Listing {
    l.used = performance.now();
    if (this.listings.get(l.dir) === l && this.listings.size > 1) {
      this.listings.delete(l.dir);
      this.listings.set(l.dir, l);
    }
    return l;
  }

  private forgetListing(l: Listing): void {
    if (this.listings.get(l.dir) !== l) return;
    this.listings.delete(l.dir);
    this.listedEntries -= l.names.length;
    if (l.pushedTo < l.names.length) {
      // Files of it may still be read: a read recalls it (recall).
      this.letGo.add(l.dir);
      if (this.letGo.size > LET_GO_KEPT) this.letGo.delete(this.letGo.values().next().value!);
    }
  }

  /**
   * A listing the tree's sibling read-ahead made before the kernel asked for it: handed to the
   * addon whole, with every entry's attributes, so the kernel's first readdirplus of the
   * directory is answered by a fuse thread at once, and the pushes of its files are parked
   * behind that reply as readdir's are. A walk through many small directories (the pk
   * directories of a DynamoDB table) then waits on this thread only when it outruns the
   * read-ahead. Not for a directory the kernel does not hold yet, one already answered or
   * prepared, a listing past one page, or one with an attribute not at hand.
   */
  private prepare(path: string, listing: DirListing): void {
    const h = this.h;
    if (!h || this.listings.has(path)) return;
    const tree = this.o.tree;
    const dirIno = tree.paths.lookup(path);
    if (dirIno === 0 || this.inodes.path(dirIno) === undefined) return;
    try {
      tree.gateListing(path);
    } catch {
      return;
    }
    const { names, ids } = listing;
    const n = names.length;
    if (n === 0) return;
    let bytes = 0;
    for (const name of names) if ((bytes += direntSize(true, Buffer.byteLength(name))) > PREPARE_MAX_BYTES) return;
    const meta = this.metaAtHand(ids, 0, n);
    if (!meta) return;
    const l = this.remember(path, listing);
    this.countListed(l, 0, meta);
    // The pushes are parked first: the addon may hand the listing to the kernel, and the kernel
    // ask for the listing's end, before this thread gets past prepareDir. (A readdir from offset 0
    // meanwhile, answered by us, does not release them.)
    this.pushAfter(l, -1, dirIno);
    if (this.addon().prepareDir(h, dirIno, names, meta, 0) !== 0) {
      // Not prepared: the kernel's readdir asks us, and the reply counts the lookups again.
      this.uncountListed(l, 0, meta);
      return;
    }
    this.preparedListings++;
  }

  /** prepareDir's attributes of entries [from, from + n) of a listing (inodes left 0), when every one is at hand; else null. */
  private metaAtHand(ids: ArrayLike<number>, from: number, n: number): Float64Array | null {
    const tree = this.o.tree;
    const meta = new Float64Array(n * 3);
    for (let k = 0; k < n; k++) {
      const id = ids[from + k]!;
      const kind = tree.paths.kind(id);
      const size = kind === PATH_FILE ? tree.cachedSize(id) : kind === PATH_DIR ? DIR_ATTR.size : -1;
      if (size < 0) return null;
      meta[3 * k + 1] = kind === PATH_DIR ? KIND_DIR : KIND_FILE;
      meta[3 * k + 2] = size;
    }
    return meta;
  }

  /** Count a lookup of entries [from, from + meta's length) of listing `l`, about to go to the addon: their inodes into `meta`, and into `l` (pushes may go to them). */
  private countListed(l: Listing, from: number, meta: Float64Array): void {
    for (let k = 0; k < meta.length / 3; k++) {
      const ino = this.inodes.refId(l.ids[from + k]!);
      meta[3 * k] = ino;
      listed(l, from + k, ino, pushSize(meta[3 * k + 1] === KIND_FILE, meta[3 * k + 2]!));
    }
  }

  /** Undo countListed: the addon did not take the entries. */
  private uncountListed(l: Listing, from: number, meta: Float64Array): void {
    for (let k = 0; k < meta.length / 3; k++) {
      const ino = meta[3 * k]!;
      this.inodes.forget(ino, 1);
      l.inos[from + k] = 0;
      l.sizes[from + k] = -1;
      l.pos.delete(ino);
    }
  }

  /**
   * The entries of listing `l` from `from` on, handed to the addon when all their attributes are
   * at hand: it answers the kernel's readdirplus replies after the first one (prepareDir with a
   * base), so a reader of a big directory does not wait on this thread for each reply (an
   * 80k-file directory takes ~430 of them). Their lookups are counted now; the addon gives back
   * as forgets those the kernel never takes.
   */
  private prepareRest(l: Listing, dirIno: number, from: number): void {
    const h = this.h;
    const n = l.names.length - from;
    if (!h || n <= 0 || n > PREPARE_REST_MAX) return;
    const meta = this.metaAtHand(l.ids, from, n);
    if (!meta) return;
    this.countListed(l, from, meta);
    if (this.addon().prepareDir(h, dirIno, l.names.slice(from), meta, from) === 0) {
      this.preparedRests++;
      return;
    }
    // Not prepared: the kernel's readdirs ask us, and the replies count the lookups again.
    this.uncountListed(l, from, meta);
  }

  /**
   * A file of a remembered listing was read from byte 0: queue the files after it for the
   * kernel page cache. `queued` resolves once they are queued; `defer` says whether this
   * read's answer may wait behind them (not when the file was pushed itself); `wait`, whether
   * it should (the reader outran the pushes; a sentinel's read is answered at once).
   */
  private prefill(ino: number, path: string): { queued: Promise<unknown>; defer: boolean; wait: boolean } | null {
    const cut = path.lastIndexOf('/');
    const dir = cut <= 0 ? '/' : path.slice(0, cut);
    const l = this.listings.get(dir) ?? this.recall(dir);
    const i = l?.pos.get(ino);
    if (!l || i === undefined) return null;
    return this.pushAfter(l, i);
  }

  /**
   * A listing let go before its files were read (rsync lists directories well ahead of
   * reading them, and other listings come in between): remade from the tree's kept listing
   * when one of its files is read, with the inodes the kernel holds and the sizes at hand, so
   * the pushes resume. Once per letting go (see letGo).
   */
  private recall(dir: string): Listing | undefined {
    if (!this.letGo.delete(dir)) return undefined;
    let kept: DirListing | null;
    try {
      kept = this.o.tree.keptListing(dir);
    } catch {
      return undefined;
    }
    if (!kept) return undefined;
    this.recalledListings++;
    return this.held(this.remember(dir, kept));
  }

  /**
   * A listing remembered for a readdir: one from past its start (the kernel read the start
   * from its own cache of the directory, and the listing was let go since) also knows the
   * entries the kernel holds from before, so reads of those push the files after them.
   */
  private remembered(dir: string, listing: DirListing, off: number): void {
    const l = this.remember(dir, listing);
    if (off > 0 && l.pos.size === 0) this.held(l);
  }

  /** Fill in the entries of `l` the kernel holds (inode, and size when at hand). */
  private held(l: Listing): Listing {
    const tree = this.o.tree;
    for (let i = 0; i < l.ids.length; i++) {
      const id = l.ids[i]!;
      if (this.inodes.path(id) === undefined) continue; // not held by the kernel: nothing to push to
      listed(l, i, id, tree.paths.kind(id) === PATH_FILE ? pushSize(true, tree.cachedSize(id)) : -1);
    }
    return l;
  }

  /**
   * Push the window after entry `i` of a listing (-1: from its first entry); see prefill.
   * Files whose bytes are in memory go at once (parked for directory inode `parkDir` when
   * given: see readdir); the others once rendered.
   */
  private pushAfter(l: Listing, i: number, parkDir = 0): { queued: Promise<unknown>; defer: boolean; wait: boolean } | null {
    this.used(l);
    const defer = !(i < l.pushedTo && l.sizes[i]! > 0);
    // Reads still well inside the pushed window need nothing; a read past it (or near its end) pushes more.
    if (i + 1 < l.pushedTo - (l.window >> 1)) return null;
    // A reader inside the pushed window (a sentinel's read) has pushed files ahead of it: answer
    // at once and render the next window meanwhile. One that outran the pushes waits for them.
    const wait = i + 1 >= l.pushedTo;
    if (wait) l.pushedTo = i + 1;
    else l.window = Math.min(PREFILL_MAX_FILES, l.window * 2);
    const end = Math.min(l.names.length, i + 1 + l.window);
    // The sentinel: its read comes with half a window of pushed files still ahead of the reader.
    const sentinel = l.window >= 4 && end < l.names.length ? end - (l.window >> 1) : -1;
    const jobs: number[] = [];
    let bytes = 0;
    let j = l.pushedTo;
    for (; j < end && bytes < PREFILL_MAX_BYTES; j++) {
      // A file with a READ in flight holds its page lock until we answer: never push it.
      if (j !== sentinel && l.sizes[j]! > 0 && l.inos[j]! > 0 && !this.readsInFlight.has(l.inos[j]!)) {
        jobs.push(j);
        bytes += l.sizes[j]!;
      } else l.sizes[j] = -1; // not pushed: its reads are answered directly
    }
    if (sentinel >= j && j < l.names.length && jobs.length > 2) {
      // Cut short by bytes before the sentinel: it moves half-way into what is pushed.
      const [k] = jobs.splice(jobs.length >> 1, 1);
      l.sizes[k!] = -1;
    }
    l.pushedTo = j;
    if (jobs.length === 0) return null;
    const later: number[] = [];
    for (const k of jobs) {
      const data = this.o.tree.wholeIfCachedId(l.inos[k]!);
      if (data && data.length === l.sizes[k]) this.push(l.inos[k]!, data, parkDir);
      else later.push(k);
    }
    const queued =
      later.length === 0
        ? Promise.resolve()
        : this.track(() =>
            Promise.all(
              later.map((k) =>
                this.o.tree.read(this.inodes.path(l.inos[k]!) ?? childPath(l.dir, l.names[k]!), 0, l.sizes[k]!).then(
                  // Only whole files: the kernel then holds the file's every page.
                  (data) => (data.length === l.sizes[k] ? this.push(l.inos[k]!, data, 0) : undefined),
                  () => {}, // the file's own read reports the error
                ),
              ),
            ),
          );
    return { queued, defer, wait };
  }

  /** One file's whole bytes into the kernel's page cache (parked for directory `parkDir` when above 0; HOLD: see holdLookedUp). */
  private push(ino: number, data: Buffer, parkDir: number): void {
    const h = this.h;
    if (!h) return;
    const rc = this.addon().store(h, ino, 0, data, parkDir);
    if (rc === 0) {
      this.o.tree.kernelHolds(ino);
      this.prefilledFiles++;
      if (this.zeroMessageOpens) this.o.tree.stats.filesOpened++;
    }
  }

  private onExit(code: number): void {
    this.sessionStats = this.h ? this.addon().sessionStats(this.h) : this.sessionStats;
    if (this.o.tree.onPrefetched === this.onPrefetched) this.o.tree.onPrefetched = null;
    this.ended = true;
    this.h = null;
    this.lookAhead.stop(); // the addon let its entries go with the session
    if (this.interruptTimer) clearInterval(this.interruptTimer);
    this.interruptTimer = null;
    this.interruptWatch.clear();
    this.waiters.clear();
    this.waitedPaths.clear();
    this.dirs.clear();
    this.listings.clear();
    this.letGo.clear();
    this.listedEntries = 0;
    if (code < 0) this.o.log.warn({ mountpoint: this.o.mountpoint, errno: -code }, 'fuse session ended with an error');
    const c = this.opCounts;
    const [answered, dropped, pushRetries, readsFromPushes, expectedAnswered, expectedDropped] = this.sessionStats;
    const la = this.lookAhead.stats;
    const ops = { lookup: c[OP_LOOKUP], getattr: c[OP_GETATTR], opendir: c[OP_OPENDIR], readdir: c[OP_READDIR], readdirplus: c[OP_READDIRPLUS], open: c[OP_OPEN], read: c[OP_READ], forget: c[OP_FORGET], prefilled: this.prefilledFiles, prepared: this.preparedListings, prepared_rests: this.preparedRests, prepared_answered: answered, prepared_dropped: dropped, recalled: this.recalledListings, relisted: this.relistedListings, push_retries: pushRetries, reads_from_pushes: readsFromPushes, interrupts: c[OP_INTERRUPT], interrupted_eintr: this.interruptedRequests, lookahead_runs: la.runs, lookahead_skips: la.skipped, expected: la.handedOver, expected_answered: expectedAnswered, expected_dropped: expectedDropped };
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
      // Listings made ahead go to the addon only when the kernel always asks with readdirplus.
      if (readdirplus === 1) this.o.tree.onPrefetched = this.onPrefetched;
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
