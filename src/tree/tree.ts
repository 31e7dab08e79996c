/**
 * The lazy virtual tree: path -> node, readdir, exact sizes, reads, caches.
 * Knows nothing of FUSE. Root layout: one directory per adapter with data,
 * MANIFEST.json, and CHECKSUMS last (so cp/tar read every other file first and
 * CHECKSUMS is built from hashes of bytes already streamed).
 */
import { createHash, type Hash } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { batchedLines, type Adapter, type AdapterContext, type AdapterName, type DecodeOptions } from '../adapters/types.js';
import { checksumLine, CHECKSUMS_FILE } from '../format/checksums.js';
import type { SnapshotView } from '../source/range.js';
import { SourceError } from '../source/types.js';
import { auxCacheBytes, ContentStore } from './content.js';
import { DigestStore } from './digests.js';
import { DigestQueue, type OffThreadSha256 } from './hashing.js';
import { BufferFile, RecordError, type DirNode, type Entry, type FileNode, type Node } from './node.js';
import { childPath, grown, KIND_DIR, KIND_FILE, PathTable } from './paths.js';

export const MANIFEST_FILE = 'MANIFEST.json';

export interface TreeOptions {
  view: SnapshotView;
  options: DecodeOptions;
  adapters: Adapter[];
  log: Logger;
  cacheBytes: number;
  spillDir?: string;
  /** Streamed files larger than this spill to disk (tests shrink it; default the content store's). */
  spillThreshold?: number;
  /** Pages of CHECKSUMS digests kept in memory (tests shrink it; default DIGEST_PAGES_IN_MEMORY). */
  digestPages?: number;
  /** Renders MANIFEST.json. */
  manifest: () => Promise<Buffer> | Buffer;
  /** Optional gate run before every data access (the live pin check). */
  guard?: () => void;
  /** sha256 of a big file off the JS thread, read in place (the ekvfuse addon's); default none: WebCrypto (see DigestQueue). */
  offThreadSha256?: OffThreadSha256 | null;
}

/** A directory's names and each child's path id, in listing order. */
export interface DirListing {
  names: string[];
  ids: Uint32Array;
}

export interface Attr {
  kind: 'dir' | 'file';
  size: number;
}

/** Errors the tree surfaces, mapped by the FUSE layer to errno. */
export class TreeError extends Error {
  constructor(
    readonly errno: 'ENOENT' | 'EIO' | 'ENOTDIR' | 'EISDIR' | 'EINVAL',
    message: string,
  ) {
    super(message);
    this.name = 'TreeError';
  }
}

export function isSafeName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= 255;
}

interface SeqHash {
  pos: number;
  hash: Hash;
  /** Reads that arrived ahead of `pos` (the kernel's parallel read-ahead), by offset. */
  ahead: Map<number, Buffer>;
  aheadBytes: number;
}

/**
 * Directory read-ahead: sibling directories listed ahead of a walk, after listings of at most so
 * many entries. Eight, not four, since the native backend answers listings made ahead without
 * the JS thread: a walk outran four more often (tar of 5000 pk directories: 170 against 350-400
 * readdirs reached JS, 2.07-2.10 against 2.16-2.32 s live).
 */
export const SIBLING_PREFETCH_DIRS = 8;
const SIBLING_PREFETCH_MAX_ENTRIES = 1024;

/**
 * A listing being made. `stop` aborts it (stopListing); `kept` when a caller that cannot
 * give up on it asked for it too (a CHECKSUMS walk, an export), which stopListing leaves.
 */
interface ListingInFlight {
  done: Promise<DirListing>;
  stop: AbortController;
  kept: boolean;
}

/** A CHECKSUMS build under way: directories listed, files listed and files read again so far, and its stop signal (see stopRender). */
interface ChecksumsBuild {
  dirs: number;
  files: number;
  hashedNow: number;
  signal: AbortSignal;
}

/**
 * The sorted walk's next entry in `stack` (CHECKSUMS build, walkAfter): the frame it is in, moved
 * past it (the entry is `order[at - 1]`), exhausted frames popped; null at the walk's end. The
 * caller pushes a directory's frame once it enters it.
 */
function nextInWalk(stack: WalkFrame[]): WalkFrame | null {
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.at < f.order.length) {
      f.at++;
      return f;
    }
    stack.pop();
  }
  return null;
}

/** One step of walkAfter: an entry, its parent directory's path and path id, its own path id, and whether it is a directory. */
export interface WalkStep {
  parent: string;
  parentId: number;
  name: string;
  id: number;
  isDir: boolean;
}

/** A directory of the CHECKSUMS walk: its children in CHECKSUMS order, and how far the walk is. */
interface WalkFrame {
  path: string;
  /** Its path id. */
  dirId: number;
  /** Its path relative to the root with a trailing "/" ("" for the root): the start of its files' lines. */
  rel: string;
  names: string[];
  ids: Uint32Array;
  /** KIND_FILE or KIND_DIR by child index (0: neither, left out). */
  kinds: Uint8Array;
  /** Child indexes in CHECKSUMS order. */
  order: Uint32Array;
  at: number;
}

/** Bytes of out-of-order reads held per file while its hash waits for the gap before them. */
const HASH_AHEAD_BYTES = 8 << 20;
/** ... and for all files together. */
const HASH_AHEAD_TOTAL = 32 << 20;
/** Files hashed at once (read from byte 0, not yet to the end). */
const HASH_FILES_IN_PROGRESS = 256;

export interface TreeStats {
  bytesServed: number;
  filesOpened: number;
  readErrors: Map<string, number>;
}

export class Tree {
  readonly content: ContentStore;
  readonly log: Logger;
  readonly stats: TreeStats = { bytesServed: 0, filesOpened: 0, readErrors: new Map() };
  /**
   * Resolved nodes by path. A walk needs only the directory at hand and the files the kernel
   * is about to read (it keeps entries and attributes itself); each node holds its record's
   * bytes, so more slots only hold memory (20k slots: ~53 MiB after a tar of 118k files).
   */
  private readonly nodes = new LRUCache<string, Node>({ max: 4096 });
  private readonly root: DirNode;
  private readonly adapterRoots = new Map<AdapterName, Promise<DirNode | null>>();
  private readonly ctx: AdapterContext;
  /** Every path the daemon keeps state about for the whole mount, as small ids (the FUSE adapter's inodes too). */
  readonly paths = new PathTable();
  /** sha256 of files read start-to-end, by path id. */
  private readonly fileHashes: DigestStore;
  /** Digests of whole files being taken off the JS thread (then kept in fileHashes). */
  private readonly digests: DigestQueue;
  /** Files being hashed as they stream through; a file read only in part ages out. */
  private readonly seq = new LRUCache<string, SeqHash>({
    max: HASH_FILES_IN_PROGRESS,
    dispose: (s) => {
      this.aheadBytes -= s.aheadBytes;
    },
  });
  /** Bytes held in every file's `ahead` together. */
  private aheadBytes = 0;
  private readonly loggedErrors = new Set<string>();
  /** Listings being made, by path: a readdir of a directory being read ahead waits for it. */
  private readonly listingsInFlight = new Map<string, ListingInFlight>();
  /** close() was called: no more read-ahead is started. */
  private closed = false;
  /** Told of each listing the sibling read-ahead made (the FUSE layer hands it to the kernel side ahead). */
  onPrefetched: ((path: string, listing: DirListing) => void) | null = null;
  /** Where the last directory read-ahead stood: a parent's id and the index in its listing. */
  private readonly siblingCursor = { parent: 0, at: 0 };
  private checksumsBuilt = false;
  /** The CHECKSUMS build under way (null: none), for progress lines. */
  private checksumsBuild: ChecksumsBuild | null = null;

  /** CHECKSUMS' path id (never hashed into itself). */
  private readonly checksumsId = this.paths.intern('/' + CHECKSUMS_FILE);

  constructor(private readonly opts: TreeOptions) {
    this.log = opts.log;
    this.content = new ContentStore({ cacheBytes: opts.cacheBytes, spillDir: opts.spillDir, spillThreshold: opts.spillThreshold, paths: this.paths });
    this.fileHashes = new DigestStore({ dir: opts.spillDir ?? tmpdir(), maxPages: opts.digestPages, log: opts.log });
    this.digests = new DigestQueue(
      {
        done: (id, d) => this.fileHashes.setId(id, d),
        failed: (id, e) => this.log.warn({ err: (e as Error).message, path: this.paths.path(id) }, 'sha256 off the JS thread failed: CHECKSUMS reads the file again'),
      },
      opts.offThreadSha256 ?? null,
    );
    this.ctx = { view: opts.view, options: opts.options, files: this.content, log: opts.log, roomCacheBytes: auxCacheBytes(opts.cacheBytes) };
    this.root = this.makeRoot();
  }

  private adapterRoot(a: Adapter): Promise<DirNode | null> {
    let p = this.adapterRoots.get(a.name);
    if (!p) {
      p = a.root(this.ctx);
      this.adapterRoots.set(a.name, p);
      p.catch(() => this.adapterRoots.delete(a.name));
    }
    return p;
  }

  private enabledAdapters(): Adapter[] {
    return this.opts.adapters.filter((a) => this.opts.options.adapters.has(a.name));
  }

  private makeRoot(): DirNode {
    const manifest = this.content.rendered('/' + MANIFEST_FILE, async () => this.opts.manifest());
    const checksums = this.content.streamed('/' + CHECKSUMS_FILE, (write, drain, signal) => this.produceChecksums(write, drain, signal));
    return {
      kind: 'dir',
      list: async () => {
        // Each adapter's root asks the source on its own: all at once, not one round trip after another.
        const adapters = this.enabledAdapters();
        const roots = await Promise.all(adapters.map((a) => this.adapterRoot(a)));
        const names: string[] = adapters.filter((_, i) => roots[i]).map((a) => a.name);
        names.push(MANIFEST_FILE, CHECKSUMS_FILE);
        return names;
      },
      lookup: async (name) => {
        if (name === MANIFEST_FILE) return manifest;
        if (name === CHECKSUMS_FILE) return checksums;
        const a = this.enabledAdapters().find((x) => x.name === name);
        return a ? this.adapterRoot(a) : null;
      },
    };
  }

  /** Resolve an absolute path ("/", "/redis/db_0"). */
  async resolve(path: string): Promise<Node | null> {
    if (path === '/' || path === '') return this.root;
    const hit = this.nodes.get(path);
    if (hit) return hit;
    const cut = path.lastIndexOf('/');
    const parentPath = cut <= 0 ? '/' : path.slice(0, cut);
    const name = path.slice(cut + 1);
    if (!isSafeName(name)) return null;
    const parent = await this.resolve(parentPath);
    if (!parent || parent.kind !== 'dir') return null;
    const node = await parent.lookup(name);
    if (node) {
      this.nodes.set(path, node);
      this.paths.setKind(this.paths.intern(path), node.kind === 'dir' ? KIND_DIR : KIND_FILE);
    }
    return node;
  }

  private fail(path: string, op: string, e: unknown): TreeError {
    if (e instanceof TreeError) return e;
    const cause = e instanceof RecordError ? 'record' : e instanceof SourceError ? e.code : 'internal';
    this.stats.readErrors.set(cause, (this.stats.readErrors.get(cause) ?? 0) + 1);
    const once = `${op}:${path}:${cause}`;
    if (!this.loggedErrors.has(once)) {
      this.loggedErrors.add(once);
      const fields: Record<string, unknown> = { path, op, cause, err: e instanceof Error ? e.message : String(e) };
      if (e instanceof RecordError) fields.key = typeof e.key === 'string' ? e.key : printableKey(e.key);
      if (cause === 'internal') this.log.error(fields, 'read failed');
      else this.log.warn(fields, 'read failed');
    }
    return new TreeError('EIO', e instanceof Error ? e.message : String(e));
  }

  /**
   * Bytes held per path for the life of the mount: the path table and the content store's
   * index (digests for CHECKSUMS are on disk past a few pages). The one memory that grows with
   * the number of files a mount has seen, whatever --cache-size says.
   */
  pathStateBytes(): number {
    return this.paths.heldBytes + this.content.indexBytes;
  }

  /** The live pin check: a refused gate is one EIO, counted and logged like any read error. */
  private gate(path: string, op: string): void {
    try {
      this.opts.guard?.();
    } catch (e) {
      throw this.fail(path, op, e);
    }
  }

  async getattr(path: string): Promise<Attr> {
    this.gate(path, 'getattr');
    // A file whose bytes are in memory (rendered by its listing, or read before) is that size.
    const cached = this.content.peek(path);
    if (cached) return { kind: 'file', size: cached.length };
    let node: Node | null;
    try {
      node = await this.resolve(path);
    } catch (e) {
      throw this.fail(path, 'lookup', e);
    }
    if (!node) throw new TreeError('ENOENT', `${path}: no such file or directory`);
    if (node.kind === 'dir') return { kind: 'dir', size: 4096 };
    try {
      return { kind: 'file', size: await node.size() };
    } catch (e) {
      throw this.fail(path, 'getattr', e);
    }
  }

  /**
   * Attributes for a listing (readdirplus): null for an entry whose size would cost a
   * pass over the whole tree (CHECKSUMS before it is built). The kernel looks such an
   * entry up when it is wanted, which for cp/tar/rsync is after every other file was
   * read, so CHECKSUMS is built from hashes already taken instead of by reading the
   * tree a second time.
   */
  async listingAttr(path: string): Promise<Attr | null> {
    if (path === '/' + CHECKSUMS_FILE && !this.checksumsBuilt) return null;
    return this.getattr(path);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.dirListing(path)).names;
  }

  /**
   * A directory's listing: its names, and each child's id in the path table (the kernel's
   * inode number of it; cachedSize() and wholeIfCachedId() take it). `stoppable`: the caller
   * may give up on it (a reader's readdir), and stopListing() may then stop it; a listing
   * any other caller asked for is made to its end.
   */
  async dirListing(path: string, opts: { stoppable?: boolean } = {}): Promise<DirListing> {
    const l = await this.listing(path, opts.stoppable ?? false);
    this.prefetchSiblingsSoon(path, l.names.length);
    return l;
  }

  /**
   * Stop the listing of `path` being made, when only callers that may give up on it asked
   * for it (every reader waiting for it left: a Ctrl-C'd `ls` of a table of millions of
   * items must not go on scanning it). It stops at its next batch of names; whoever still
   * waits for it gets EIO, and the next readdir starts it again. False when none was stopped.
   */
  stopListing(path: string, reason: string): boolean {
    const f = this.listingsInFlight.get(path);
    if (!f || f.kept) return false;
    this.listingsInFlight.delete(path);
    f.stop.abort(new TreeError('EIO', `${path}: listing stopped (${reason})`));
    this.log.info({ path, reason }, 'listing stopped');
    return true;
  }

  /**
   * A directory's listing if it was made before (dirListing's answer, at once: no promise to
   * wait for); null when it would have to be made. Throws as dirListing rejects (the gate).
   */
  keptListing(path: string): DirListing | null {
    this.gate(path, 'readdir');
    const l = this.kept(path);
    if (l) this.prefetchSiblingsSoon(path, l.names.length);
    return l;
  }

  /** A reader has the listing of this directory without asking (the FUSE layer answered it): the read-ahead moves on from it. */
  walked(path: string): void {
    const id = this.paths.lookup(path);
    const kept = id === 0 ? null : this.paths.listing(id);
    if (kept) this.prefetchSiblingsSoon(path, kept.length);
  }

  /**
   * The sibling read-ahead runs after the current callbacks: its first listing renders up
   * to its first wait at once, and the reply the caller is about to send (a reader waiting
   * on this directory) must not wait behind it.
   */
  private prefetchSiblingsSoon(path: string, count: number): void {
    if (count > SIBLING_PREFETCH_MAX_ENTRIES || path === '/') return;
    setImmediate(() => {
      if (!this.closed) this.prefetchSiblings(path);
    });
  }

  /** A directory listed before lists the same (the tree is immutable): from the path table, with no scan. */
  private kept(path: string): DirListing | null {
    const id = this.paths.lookup(path);
    const kept = id === 0 ? null : this.paths.listing(id);
    if (!kept) return null;
    const names = new Array<string>(kept.length);
    for (let i = 0; i < kept.length; i++) names[i] = this.paths.name(kept[i]!);
    return { names, ids: kept.slice() };
  }

  /** A directory's listing: kept from before, the listing being made, or a new one (see dirListing for `stoppable`). */
  private listing(path: string, stoppable: boolean): Promise<DirListing> {
    try {
      this.gate(path, 'readdir');
    } catch (e) {
      return Promise.reject(e);
    }
    // CHECKSUMS' walk after a copy, and a second ls, cost no RPC.
    const kept = this.kept(path);
    if (kept) return Promise.resolve(kept);
    let f = this.listingsInFlight.get(path);
    if (!f) {
      const stop = new AbortController();
      const made: ListingInFlight = { stop, kept: false, done: this.makeListing(path, stop.signal) };
      made.done = made.done.finally(() => {
        if (this.listingsInFlight.get(path) === made) this.listingsInFlight.delete(path);
      });
      this.listingsInFlight.set(path, made);
      f = made;
    }
    if (!stoppable) f.kept = true;
    return f.done;
  }

  /**
   * Directory read-ahead for walks through many small directories (`items/<pk>/` of a
   * DynamoDB table): once a small listing is made or asked for, the next few sibling
   * directories (in the parent's listing order, which is the order cp, tar and rsync take)
   * are listed in the background, rendering their files, while the reader copies this one.
   */
  private prefetchSiblings(path: string): void {
    const cut = path.lastIndexOf('/');
    const parentPath = cut <= 0 ? '/' : path.slice(0, cut);
    const parent = this.paths.lookup(parentPath);
    const kids = parent === 0 ? null : this.paths.listing(parent);
    const self = this.paths.lookup(path);
    if (!kids || self === 0) return;
    // Where this directory stands in its parent's listing: a walk goes forward from the last one.
    const c = this.siblingCursor;
    let at = c.parent === parent && c.at < kids.length ? c.at : 0;
    if (kids[at] !== self) {
      const found = kids.indexOf(self, at);
      at = found >= 0 ? found : kids.indexOf(self);
      if (at < 0) return;
    }
    c.parent = parent;
    c.at = at;
    const base = parentPath === '/' ? '/' : `${parentPath}/`;
    for (let j = at + 1, ahead = 0; j < kids.length && ahead < SIBLING_PREFETCH_DIRS; j++) {
      const id = kids[j]!;
      if (this.paths.kind(id) !== KIND_DIR) continue;
      ahead++;
      if (this.paths.listing(id)) continue;
      // A failure is the directory's own (logged once); its readdir reports it when asked.
      const p = base + this.paths.name(id);
      this.listing(p, true).then(
        (l) => {
          try {
            this.onPrefetched?.(p, l);
          } catch (e) {
            this.log.error({ path: p, err: e instanceof Error ? e.message : String(e) }, 'read-ahead listing not handed on');
          }
        },
        () => {},
      );
    }
  }

  private async makeListing(path: string, signal: AbortSignal): Promise<DirListing> {
    let node: Node | null;
    try {
      node = await this.resolve(path);
    } catch (e) {
      throw this.fail(path, 'lookup', e);
    }
    if (!node) throw new TreeError('ENOENT', `${path}: no such file or directory`);
    if (node.kind !== 'dir') throw new TreeError('ENOTDIR', `${path}: not a directory`);
    try {
      const dir = this.paths.intern(path);
      if (node.entries) return await this.listEntries(path, dir, node.entries(signal), signal);
      const names = await node.list(signal);
      signal.throwIfAborted();
      const safe = names.filter(isSafeName);
      if (safe.length !== names.length) this.log.error({ path, dropped: names.length - safe.length }, 'unsafe names dropped from listing');
      const ids = new Uint32Array(safe.length);
      for (let i = 0; i < safe.length; i++) ids[i] = this.paths.child(dir, safe[i]!);
      this.paths.setListing(dir, ids);
      return { names: safe, ids };
    } catch (e) {
      throw this.fail(path, 'readdir', e);
    }
  }

  /**
   * A listing made by DirNode.entries(): each child's kind is recorded, and each rendered
   * file's bytes are kept under its path, so the attributes a listing is asked for next
   * (readdirplus) and the reads of a copy are answered from them.
   */
  private async listEntries(path: string, dir: number, batches: AsyncGenerator<Entry[]>, signal: AbortSignal): Promise<DirListing> {
    const safe: string[] = [];
    let ids = new Uint32Array(256);
    let dropped = 0;
    for await (const batch of batches) {
      signal.throwIfAborted();
      for (const e of batch) {
        if (!isSafeName(e.name)) {
          dropped++;
          continue;
        }
        const id = this.paths.child(dir, e.name);
        this.paths.setKind(id, e.kind === 'dir' ? KIND_DIR : KIND_FILE);
        if (e.bytes) this.content.keepId(id, e.bytes);
        ids = grown(ids, safe.length + 1, (n) => new Uint32Array(n));
        ids[safe.length] = id;
        safe.push(e.name);
      }
    }
    if (dropped) this.log.error({ path, dropped }, 'unsafe names dropped from listing');
    const kept = ids.slice(0, safe.length);
    this.paths.setListing(dir, kept);
    return { names: safe, ids: kept };
  }

  async file(path: string): Promise<FileNode> {
    this.gate(path, 'open');
    let node: Node | null;
    try {
      node = await this.resolve(path);
    } catch (e) {
      throw this.fail(path, 'lookup', e);
    }
    if (!node) throw new TreeError('ENOENT', `${path}: no such file or directory`);
    if (node.kind !== 'file') throw new TreeError('EISDIR', `${path}: is a directory`);
    this.stats.filesOpened++;
    return node;
  }

  async read(path: string, offset: number, length: number): Promise<Buffer> {
    const cached = this.content.peek(path);
    if (cached) {
      // The whole file is in memory: no node to resolve, no render.
      this.gate(path, 'read');
      const data = cached.subarray(offset, Math.min(cached.length, offset + length));
      this.stats.bytesServed += data.length;
      await this.trackHash(path, async () => cached.length, offset, data);
      return data;
    }
    const node = await this.file(path);
    this.stats.filesOpened--; // file() counts opens; reads are not opens
    let data: Buffer;
    try {
      this.opts.guard?.();
      data = await node.read(offset, length);
      // A read that raced a pin loss must not serve bytes.
      this.opts.guard?.();
    } catch (e) {
      throw this.fail(path, 'read', e);
    }
    this.stats.bytesServed += data.length;
    await this.trackHash(path, () => node.size(), offset, data);
    return data;
  }

  /**
   * A file's whole bytes when they are in memory, served as a read of the whole file would
   * serve them (the gate passed, counted, hashed for CHECKSUMS), at once; null when they
   * are not in memory or the gate refuses. For pushes into the kernel's page cache.
   */
  wholeIfCachedId(id: number): Buffer | null {
    const b = this.content.peekId(id);
    if (!b) return null;
    try {
      this.opts.guard?.();
    } catch (e) {
      this.fail(this.paths.path(id) ?? `#${id}`, 'read', e); // counted and logged; the file's own read reports it
      return null;
    }
    this.stats.bytesServed += b.length;
    if (b.length > 0 && id !== this.checksumsId && !this.hashed(id)) this.digests.add(id, b);
    return b;
  }

  /**
   * The kernel's page cache now holds file `id`: it was pushed there whole, or a read reached its
   * end. Once the file has gone through whole and in order (its digest is taken), the content
   * cache keeps its bytes only among the most recently served (ContentStore.release).
   */
  kernelHolds(id: number): void {
    if (this.hashed(id)) this.content.release(id);
  }

  /** Whether file `id`'s digest is known or being taken (from bytes of its own). */
  private hashed(id: number): boolean {
    return this.digests.has(id) || this.fileHashes.hasId(id);
  }

  /** The size of the file with path id `id` when its whole bytes are in memory, else -1. */
  cachedSize(id: number): number {
    return this.content.sizeOfId(id);
  }

  /** The live pin check for a listing's attributes: throws the EIO a refused gate gives. */
  gateListing(path: string): void {
    this.gate(path, 'readdir');
  }

  /** Hash files that are read sequentially from byte 0 to the end: CHECKSUMS reuses the result. */
  private async trackHash(path: string, sizeOf: () => Promise<number>, offset: number, data: Buffer): Promise<void> {
    if (offset === 0 && data.length > 0 && path !== '/' + CHECKSUMS_FILE && data.length === (await sizeOf())) {
      // The whole file in one read (most files of this tree): hashed at once (off the JS thread
      // when big), no tracking; not again when read whole again (as wholeIfCachedId).
      const id = this.paths.intern(path);
      if (!this.hashed(id)) this.digests.add(id, data);
      this.seq.delete(path);
      return;
    }
    if (path === '/' + CHECKSUMS_FILE || this.hashed(this.paths.lookup(path))) return;
    let s = this.seq.get(path);
    if (!s) {
      if (offset !== 0) return;
      s = { pos: 0, hash: createHash('sha256'), ahead: new Map(), aheadBytes: 0 };
      this.seq.set(path, s);
    }
    if (data.length === 0) return;
    if (offset > s.pos) {
      // Ahead of the hash: hold it until the gap before it is read, within a bound.
      if (s.aheadBytes + data.length > HASH_AHEAD_BYTES || this.aheadBytes + data.length > HASH_AHEAD_TOTAL || s.ahead.has(offset)) this.seq.delete(path);
      else {
        s.ahead.set(offset, data);
        s.aheadBytes += data.length;
        this.aheadBytes += data.length;
      }
      return;
    }
    if (offset !== s.pos) return; // a re-read of bytes already hashed
    s.hash.update(data);
    s.pos += data.length;
    for (let next = s.ahead.get(s.pos); next; next = s.ahead.get(s.pos)) {
      s.ahead.delete(s.pos);
      s.aheadBytes -= next.length;
      this.aheadBytes -= next.length;
      s.hash.update(next);
      s.pos += next.length;
    }
    if (s.pos >= (await sizeOf())) {
      this.fileHashes.setId(this.paths.intern(path), s.hash.digest());
      this.seq.delete(path);
    }
  }

  /** Every regular file, depth-first in readdir order, as absolute paths. */
  async *walkFiles(dir = '/'): AsyncGenerator<string> {
    for (const name of await this.readdir(dir)) {
      const p = childPath(dir, name);
      const kind = await this.kindOf(p);
      if (kind === 'dir') yield* this.walkFiles(p);
      else if (kind === 'file') yield p;
    }
  }

  /** A child's kind, or null if it fails to resolve. A file already hashed needs no node. */
  private async kindOf(p: string): Promise<'file' | 'dir' | null> {
    const k = this.paths.kind(this.paths.lookup(p));
    if (k !== 0) return k === KIND_DIR ? 'dir' : 'file';
    const n = await this.resolve(p);
    return n ? n.kind : null;
  }

  /**
   * A directory of the CHECKSUMS walk, its children sorted by name bytes with a
   * subdirectory's name followed by its "/" (every path below it starts so), which makes the
   * depth-first walk globally sorted without holding every path of the tree. The order is of
   * child indexes, compared in the path table's name bytes. An object and two strings an entry
   * (its path and sort key), held while their directory was walked, outlived the young
   * generation: after a copy of the bench tree at twice its size (428k files, --cache-size
   * 64MiB) the build raised the heap by 59-64 MiB and RSS by 48-60, the peak of the whole
   * copy; now by 17-23 and 26-36, in the same time (0.62-0.86 s against 0.69-0.98).
   */
  private async walkFrame(path: string, b: ChecksumsBuild | null): Promise<WalkFrame> {
    const { names, ids } = await this.dirListing(path);
    if (b) {
      b.dirs++;
      b.signal.throwIfAborted();
    }
    const n = ids.length;
    const kinds = new Uint8Array(n);
    const order = new Uint32Array(n);
    let kept = 0;
    for (let i = 0; i < n; i++) {
      let k = this.paths.kind(ids[i]!);
      if (k === 0) {
        const node = await this.resolve(childPath(path, names[i]!));
        k = !node ? 0 : node.kind === 'dir' ? KIND_DIR : KIND_FILE;
      }
      kinds[i] = k;
      if (k !== 0) order[kept++] = i;
    }
    const paths = this.paths;
    const sorted = order.subarray(0, kept).sort((x, y) => paths.compareNames(ids[x]!, kinds[x] === KIND_DIR, ids[y]!, kinds[y] === KIND_DIR));
    return { path, dirId: this.paths.lookup(path), rel: path === '/' ? '' : `${path.slice(1)}/`, names, ids, kinds, order: sorted, at: 0 };
  }

  /**
   * What follows `path` in CHECKSUMS order (the sorted depth-first walk; a directory as it is
   * entered, then what is in it): the paths `sha256sum -c CHECKSUMS` opens after `path`, each
   * with its parent's path. Ends with the tree, or at once when `path` is not in it. Each
   * directory on the way is listed (dirListing) and sorted when the walk gets to it.
   */
  async *walkAfter(path: string): AsyncGenerator<WalkStep> {
    const parts = path.split('/').filter((x) => x !== '');
    const stack: WalkFrame[] = [];
    let dir = '/';
    for (const part of parts) {
      const f = await this.walkFrame(dir, null);
      const at = f.order.findIndex((i) => f.names[i] === part);
      if (at < 0) return;
      f.at = at + 1;
      stack.push(f);
      dir = childPath(dir, part);
    }
    for (let f = nextInWalk(stack); f; f = nextInWalk(stack)) {
      const i = f.order[f.at - 1]!;
      const isDir = f.kinds[i] === KIND_DIR;
      yield { parent: f.path, parentId: f.dirId, name: f.names[i]!, id: f.ids[i]!, isDir };
      if (isDir) stack.push(await this.walkFrame(childPath(f.path, f.names[i]!), null));
    }
  }

  /** The CHECKSUMS build under way, for progress lines: files listed and files read again so far; null when none runs. */
  checksumsProgress(): { dirs: number; files: number; hashed_now: number } | null {
    const b = this.checksumsBuild;
    return b ? { dirs: b.dirs, files: b.files, hashed_now: b.hashedNow } : null;
  }

  /**
   * Stop the render of a streamed file under way at `path` (a whole-scope file: `CHECKSUMS`,
   * an SQS `messages.jsonl`, a Redis TTL sidecar, a DynamoDB bundle part): nobody waits for it
   * any more (the FUSE layer answered every request for it EINTR). Its producer stops at its
   * next check; the next request renders it anew. A CHECKSUMS build keeps the digests it made,
   * so the next one reads only the files still unhashed. False if no render of it runs.
   */
  stopRender(path: string, reason: string): boolean {
    const b = path === '/' + CHECKSUMS_FILE ? this.checksumsBuild : null;
    if (!this.content.abandon(path, new TreeError('EIO', `${path}: render stopped (${reason})`))) return false;
    if (b) {
      if (this.checksumsBuild === b) this.checksumsBuild = null;
      this.log.info({ dirs: b.dirs, files: b.files, hashed_now: b.hashedNow, reason }, 'CHECKSUMS build stopped');
    } else this.log.info({ path, reason }, 'render stopped');
    return true;
  }

  /** A file's digest, read whole now (for a CHECKSUMS build: it stops between 1 MiB reads once `signal` aborts). */
  private async hashOf(path: string, signal: AbortSignal): Promise<string> {
    const node = await this.file(path);
    this.stats.filesOpened--;
    const h = createHash('sha256');
    const size = await node.size();
    const step = 1 << 20;
    for (let off = 0; off < size; off += step) {
      signal.throwIfAborted();
      h.update(await node.read(off, Math.min(step, size - off)));
    }
    const d = h.digest();
    this.fileHashes.setId(this.paths.intern(path), d);
    return d.toString('hex');
  }

  private async produceChecksums(write: (chunk: Buffer) => void, drain: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const t0 = performance.now();
    const b: ChecksumsBuild = { dirs: 0, files: 0, hashedNow: 0, signal };
    this.checksumsBuild = b;
    const out = batchedLines(write, drain);
    // A stat of CHECKSUMS (`ls -l` of the root) walks the whole tree: said at info, so a
    // waiting shell is explained in the log (progress lines carry the counts meanwhile).
    this.log.info('building CHECKSUMS: every file not read whole yet is read and hashed');
    try {
      const stack = [await this.walkFrame('/', b)];
      for (let f = nextInWalk(stack); f; f = nextInWalk(stack)) {
        const i = f.order[f.at - 1]!;
        const name = f.names[i]!;
        if (f.kinds[i] === KIND_DIR) {
          stack.push(await this.walkFrame(childPath(f.path, name), b));
          continue;
        }
        const id = f.ids[i]!;
        if (id === this.checksumsId) continue;
        b.files++;
        let hex = this.fileHashes.hexId(id);
        const taking = hex ? undefined : this.digests.settled(id);
        if (taking) {
          await taking;
          hex = this.fileHashes.hexId(id);
        }
        if (!hex) {
          b.hashedNow++;
          hex = await this.hashOf(childPath(f.path, name), signal);
        }
        // Lines die young: a string a line, written every 64 KiB.
        const pending = out.push(checksumLine(hex, f.rel + name));
        if (pending) await pending;
      }
      signal.throwIfAborted();
    } finally {
      if (this.checksumsBuild === b) this.checksumsBuild = null;
    }
    out.flush();
    this.checksumsBuilt = true;
    // hashed_now: files nobody had read whole, read again for their hash (0 after a full copy).
    this.log.info({ dirs: b.dirs, files: b.files, hashed_now: b.hashedNow, ms: Math.round(performance.now() - t0) }, 'CHECKSUMS built');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.digests.close();
    this.fileHashes.close();
    await this.content.close();
  }
}

/** A key for logs: printable ASCII kept, everything else \xHH; truncated. Never a value. */
export function printableKey(k: Buffer): string {
  let s = '';
  for (const c of k.subarray(0, 200)) s += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : '\\x' + c.toString(16).padStart(2, '0');
  return k.length > 200 ? s + `...(${k.length} bytes)` : s;
}

export { BufferFile };
