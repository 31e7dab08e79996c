/**
 * Rendered-content store: one byte-bounded LRU for rendered files (small ones packed
 * into slabs), and spill files on disk for large whole-scope files. Each file is produced at most
 * once while cached; concurrent readers share one in-flight render.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { FileFactory, Producer } from '../adapters/types.js';
import type { FileNode } from './node.js';
import { grown, PathTable } from './paths.js';
import { ownedCopy } from '../bytes.js';
import { noteAllocated } from '../memory.js';

export interface ContentStats {
  hits: number;
  misses: number;
  renders: number;
  spilledFiles: number;
  spilledBytes: number;
  /** Most bytes a streamed file ever had queued for its spill file, not written yet (see SPILL_QUEUE_BYTES). */
  spillQueuedMax: number;
}

/**
 * Bytes a streamed file may have queued for its spill file before its producer's `drain`
 * waits for them to be written. A producer that never waited queued its whole file: a
 * CHECKSUMS of a 1M-item table (108 MB) built in 1.3 s, faster than its writes, held all
 * of it at once (a copy of that table at --cache-size 64MiB peaked at 421-428 MiB).
 */
export const SPILL_QUEUE_BYTES = 4 << 20;

/** Where a streamed file's bytes live once produced: a spill file, or (small) the LRU. */
interface Produced {
  size: number;
  file?: { fh: FileHandle; path: string };
}

/** Run a producer into one buffer (for small streamed files evicted from the LRU). */
async function collect(produce: Producer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await produce(
    (c) => void chunks.push(Buffer.from(c)),
    async () => {},
    new AbortController().signal,
  );
  return Buffer.concat(chunks);
}

/**
 * What one large LRU entry really costs beyond its payload: the Buffer and ArrayBuffer
 * objects, the backing store's bookkeeping, the LRU's slots. Measured: 200k entries of 80
 * bytes under 56-byte string keys cost 362 B of heap and 160 B of external memory each.
 */
const ENTRY_OVERHEAD = 400;

/** Cached files up to this size are copied into the store's slabs (no object of their own). */
export const SLAB_ENTRY_MAX = 2048;
/** lenOf's flag on a small file the kernel holds whole (release); lengths are at most SLAB_ENTRY_MAX. */
const RELEASED = 0x8000;
const LENGTH = RELEASED - 1;
/** Slab size (smaller under a cache too small to hold a few of them); offsets in a slab are 16-bit. */
const SLAB_BYTES = 64 * 1024;

/**
 * Bytes each auxiliary cache (the snapshot's file pages, S3 chunks, the content cache's
 * served files) keeps: an eighth of --cache-size, between 4 and 32 MiB, so a small
 * --cache-size shrinks them too.
 */
export function auxCacheBytes(cacheBytes: number): number {
  return Math.min(32 << 20, Math.max(4 << 20, Math.floor(cacheBytes / 8)));
}

export interface ContentStoreOptions {
  /** Bytes of rendered content kept in memory. */
  cacheBytes: number;
  /** Bytes of it that files the kernel holds whole may keep (see release; default auxCacheBytes(cacheBytes)). */
  servedBytes?: number;
  /** Streamed files larger than this spill to disk. */
  spillThreshold?: number;
  /** Parent directory for spill files (default: os.tmpdir()). */
  spillDir?: string;
  /** The tree's path table: cached files are keyed by their path's id (default: a table of its own). */
  paths?: PathTable;
}

/**
 * The rendered-content cache. Most files of this tree are small (a DynamoDB item, a Redis
 * string: a few hundred bytes), and a copy caches a few hundred thousand of them. An LRU
 * entry per file costs ~400 B of objects beside its bytes (a Buffer, its slot in the LRU's
 * map and lists), and every full collection marks them all. So a small file is copied into
 * the current 64 KiB slab and found through three typed arrays indexed by its path id
 * (slab, offset, length): no object per file, and a cached byte pins nothing but cached
 * bytes (a rendered item is usually a view of a decode buffer, a snapshot page or Node's
 * shared 8 KiB pool). Slabs are entries of the byte-bounded LRU themselves (a hit touches
 * its slab), so files age out together with the files cached beside them; an index entry
 * whose slab was evicted is a miss. Larger files are LRU entries of their own, under
 * their id.
 */
export class ContentStore implements FileFactory {
  readonly stats: ContentStats = { hits: 0, misses: 0, renders: 0, spilledFiles: 0, spilledBytes: 0, spillQueuedMax: 0 };
  /** Large files by their path's id (> 0), and the slabs of small ones by -(slab number). */
  private readonly lru: LRUCache<number, Buffer>;
  /** Small files, by path id: slab number (0: none), offset in it, length. */
  private slabOf = new Uint32Array(1024);
  private offOf = new Uint16Array(1024);
  private lenOf = new Uint16Array(1024);
  private readonly slabBytes: number;
  /** The slab being filled (null: start one), its number and fill. */
  private slab: Buffer | null = null;
  private slabNo = 0;
  private slabUsed = 0;
  /** Files of each slab in the LRU not released yet, by slab number (see release). */
  private readonly slabLive = new Map<number, number>();
  /** LRU entries all of whose files the kernel holds, oldest first, with their sizes; at most servedMax bytes of them stay. */
  private readonly served = new Map<number, number>();
  private servedBytes = 0;
  private readonly servedMax: number;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  private readonly produced = new Map<number, Promise<Produced>>();
  /** Streamed files being produced, by path id: what abandon aborts. */
  private readonly producing = new Map<number, AbortController>();
  private readonly paths: PathTable;
  private readonly spillThreshold: number;
  private spillRoot: string | null = null;
  private readonly spillParent: string;
  private spillSeq = 0;

  constructor(opts: ContentStoreOptions) {
    this.paths = opts.paths ?? new PathTable();
    const maxSize = Math.max(1, opts.cacheBytes);
    // A cache too small for 64 KiB slabs still holds a few small files (tests, tiny --cache-size).
    this.slabBytes = Math.max(SLAB_ENTRY_MAX, Math.min(SLAB_BYTES, Math.floor(maxSize / 4)));
    this.lru = new LRUCache<number, Buffer>({
      maxSize,
      sizeCalculation: (b, key) => (key < 0 ? b.length : b.length + ENTRY_OVERHEAD),
      // A single file larger than the whole cache is still served (rendered on demand), just not kept.
      maxEntrySize: maxSize,
      // The slab being filled went: the next small file starts another.
      dispose: (_b, key) => {
        if (key === -this.slabNo) this.slab = null;
        if (key < 0) this.slabLive.delete(-key);
        const n = this.served.get(key);
        if (n !== undefined) {
          this.served.delete(key);
          this.servedBytes -= n;
        }
      },
    });
    this.servedMax = opts.servedBytes ?? auxCacheBytes(maxSize);
    this.spillThreshold = opts.spillThreshold ?? 8 << 20;
    this.spillParent = opts.spillDir ?? tmpdir();
  }

  /** Bytes of the per-path index of small cached files (by path id: it grows with the ids, not with what is cached). */
  get indexBytes(): number {
    return this.slabOf.byteLength + this.offOf.byteLength + this.lenOf.byteLength;
  }

  get cachedBytes(): number {
    return this.lru.calculatedSize ?? 0;
  }

  /** A file's cached bytes (a view of its slab for a small one), touching them; undefined when not in memory. */
  private lookup(id: number): Buffer | undefined {
    const no = id < this.slabOf.length ? this.slabOf[id]! : 0;
    if (no === 0) return this.lru.get(id);
    const slab = this.lru.get(-no);
    if (!slab) {
      this.slabOf[id] = 0; // its slab was evicted
      return undefined;
    }
    const at = this.offOf[id]!;
    return slab.subarray(at, at + (this.lenOf[id]! & LENGTH));
  }

  /** Keep a file's whole bytes under its id: a copy into the current slab, or an entry of its own. */
  private put(id: number, b: Buffer): void {
    const n = b.length;
    // A file's bytes never change (the tree is immutable), so its size picks the one place it is kept.
    if (n > SLAB_ENTRY_MAX) {
      noteAllocated(n);
      this.lru.set(id, ownedCopy(b));
      return;
    }
    if (this.slabBytes > this.lru.maxSize) return; // a cache smaller than one slab keeps no small files
    if (!this.slab || this.slabUsed + n > this.slabBytes) {
      const full = this.slab ? this.slabNo : 0;
      this.slab = Buffer.allocUnsafeSlow(this.slabBytes);
      this.slabUsed = 0;
      this.lru.set(-++this.slabNo, this.slab);
      // A slab whose every file was released while it was being filled is served once it is full.
      if (full !== 0 && this.slabLive.get(full) === 0) this.retire(-full);
    }
    if (this.slabOf.length <= id) {
      this.slabOf = grown(this.slabOf, id + 1, (k) => new Uint32Array(k));
      this.offOf = grown(this.offOf, id + 1, (k) => new Uint16Array(k));
      this.lenOf = grown(this.lenOf, id + 1, (k) => new Uint16Array(k));
    }
    b.copy(this.slab, this.slabUsed);
    this.slabOf[id] = this.slabNo;
    this.offOf[id] = this.slabUsed;
    this.lenOf[id] = n;
    this.slabUsed = (this.slabUsed + n + 7) & ~7; // 8-aligned starts
    this.slabLive.set(this.slabNo, (this.slabLive.get(this.slabNo) ?? 0) + 1);
  }

  /**
   * The kernel's page cache holds file `id` whole (pushed into it, or read to its end in order;
   * the mount opens files keep_cache, so those pages stay). A copy reads each file once and the
   * kernel answers the reads after, so kept as long as any other file such files filled
   * --cache-size with bytes nobody asks for again, and peak RSS grew with the data up to it.
   * Once all of an entry's files are released (a small file's slab, or a large file's own
   * entry), the entry is served: the most recently served stay, up to `servedBytes` in all (a
   * second pass over files the kernel dropped meanwhile, such as `sha256sum -c` after a copy,
   * finds the last of them here instead of rendering each again), and the others go.
   */
  release(id: number): void {
    const no = id < this.slabOf.length ? this.slabOf[id]! : 0;
    if (no === 0) return this.retire(id);
    const len = this.lenOf[id]!;
    if (len & RELEASED) return;
    this.lenOf[id] = len | RELEASED;
    const live = this.slabLive.get(no);
    if (live === undefined) return; // its slab was evicted already
    this.slabLive.set(no, live - 1);
    if (live === 1 && no !== this.slabNo) this.retire(-no);
  }

  /** LRU entry `key` holds nothing the kernel lacks: into the served entries, the oldest of which go past servedMax. */
  private retire(key: number): void {
    const b = this.lru.peek(key);
    if (b === undefined || this.served.has(key)) return;
    this.served.set(key, b.length);
    this.servedBytes += b.length;
    for (const [old] of this.served) {
      if (this.servedBytes <= this.servedMax) break;
      this.lru.delete(old); // its dispose takes it out of served
    }
  }

  private async getRendered(key: number, render: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.lookup(key);
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    let p = this.inflight.get(key);
    if (!p) {
      this.stats.misses++;
      p = (async () => {
        const b = await render();
        this.stats.renders++;
        this.put(key, b);
        return b;
      })().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    } else this.stats.hits++;
    return p;
  }

  cached(cacheKey: string): boolean {
    const id = this.paths.lookup(cacheKey);
    return id !== 0 && (this.sizeOfId(id) >= 0 || this.produced.has(id));
  }

  /** The whole bytes of the file at `path` while they are in memory (a hit counts as use). */
  peek(path: string): Buffer | undefined {
    const id = this.paths.lookup(path);
    return id === 0 ? undefined : this.peekId(id);
  }

  /** peek() by the path's id in the tree's path table. */
  peekId(id: number): Buffer | undefined {
    const b = this.lookup(id);
    if (b) this.stats.hits++;
    return b;
  }

  /** The size of a file whose bytes are in memory, by path id; -1 when they are not. Not a use. */
  sizeOfId(id: number): number {
    const no = id < this.slabOf.length ? this.slabOf[id]! : 0;
    if (no !== 0) return this.lru.has(-no) ? this.lenOf[id]! & LENGTH : -1;
    return this.lru.peek(id)?.length ?? -1;
  }

  /** Keep a file's whole bytes under its path (rendered by a listing pass, DirNode.entries, or another pass of an adapter). */
  keep(path: string, bytes: Buffer): void {
    this.keepId(this.paths.intern(path), bytes);
  }

  /** keep() by the path's id in the tree's path table. */
  keepId(id: number, bytes: Buffer): void {
    this.stats.renders++;
    this.put(id, bytes);
  }

  rendered(cacheKey: string, render: () => Promise<Buffer>): FileNode {
    const id = this.paths.intern(cacheKey);
    // The size, once rendered, is the node's own: getattr and the hash tracker ask for it
    // again without an LRU lookup (the bytes may be evicted; their length cannot change).
    let size = -1;
    return {
      kind: 'file',
      size: async () => (size >= 0 ? size : (size = (await this.getRendered(id, render)).length)),
      read: async (offset, length) => {
        const b = await this.getRendered(id, render);
        return b.subarray(offset, Math.min(b.length, offset + length));
      },
    };
  }

  private ensureSpillRoot(): string {
    if (!this.spillRoot) this.spillRoot = mkdtempSync(join(this.spillParent, 'ekv-mount-spill-'));
    return this.spillRoot;
  }

  private produce(key: number, produce: Producer): Promise<Produced> {
    let p = this.produced.get(key);
    if (p) return p;
    const ctl = new AbortController();
    p = (async (): Promise<Produced> => {
      let chunks: Buffer[] = [];
      let memBytes = 0;
      let size = 0;
      let spill: { path: string; fh: Promise<FileHandle> } | undefined;
      let pendingWrite: Promise<void> = Promise.resolve();
      /** Bytes handed to the spill file's writes and not written yet. */
      let queued = 0;
      /** The spill file's first failure (a full --spill-dir): every write after it throws it, so the producer stops. */
      let writeFailed: { e: unknown } | null = null;
      const enqueue = (fh: Promise<FileHandle>, chunk: Buffer, at: number): void => {
        queued += chunk.length;
        if (queued > this.stats.spillQueuedMax) this.stats.spillQueuedMax = queued;
        pendingWrite = pendingWrite.then(async () => {
          await writeAll(await fh, chunk, at);
          queued -= chunk.length;
        });
        // Handled here and thrown by the next write, drain() or the run's end: a rejection left
        // unhandled while a producer yields between writes would reach the daemon's
        // unhandledRejection handler, which unmounts (shown with such a producer in a test; the
        // real producers tried did not yield there).
        pendingWrite.catch((e: unknown) => {
          writeFailed ??= { e };
        });
      };
      const write = (chunk: Buffer): void => {
        ctl.signal.throwIfAborted();
        if (writeFailed) throw writeFailed.e;
        if (chunk.length === 0) return;
        const at = size;
        size += chunk.length;
        if (spill) return enqueue(spill.fh, chunk, at);
        chunks.push(Buffer.from(chunk));
        memBytes += chunk.length;
        if (memBytes > this.spillThreshold) {
          const path = join(this.ensureSpillRoot(), `f${++this.spillSeq}`);
          spill = { path, fh: open(path, 'w+', 0o600) };
          spill.fh.catch(() => {}); // its failure is the first write's
          const buffered = Buffer.concat(chunks);
          chunks = [];
          memBytes = 0;
          enqueue(spill.fh, buffered, 0);
        }
      };
      // Waits only with more than SPILL_QUEUE_BYTES queued (a write failed: rejects with its error).
      const drain = (): Promise<void> => (queued > SPILL_QUEUE_BYTES ? pendingWrite : Promise.resolve());
      /** A run that failed: its spill file closed and removed (a full disk gets its space back). */
      const dropSpill = async (): Promise<void> => {
        if (!spill) return;
        await (await spill.fh.catch(() => null))?.close().catch(() => {});
        await rm(spill.path, { force: true }).catch(() => {});
      };
      try {
        await produce(write, drain, ctl.signal);
        await pendingWrite;
      } catch (e) {
        await pendingWrite.catch(() => {});
        await dropSpill();
        if (this.produced.get(key) === p) this.produced.delete(key); // not a newer run (see abandon)
        throw e;
      } finally {
        if (this.producing.get(key) === ctl) this.producing.delete(key);
      }
      const file = spill ? { fh: await spill.fh, path: spill.path } : undefined;
      if (file) {
        this.stats.spilledFiles++;
        this.stats.spilledBytes += size;
        return { size, file };
      }
      // Small results live in the byte-bounded LRU like rendered files (produced again if evicted).
      this.put(key, Buffer.concat(chunks));
      return { size };
    })();
    this.produced.set(key, p);
    this.producing.set(key, ctl);
    return p;
  }

  /**
   * Stop a streamed file's run in progress (nobody waits for it any more): its producer is
   * aborted with `reason` and stops at its next check or write, and the next request starts a
   * new run. False when none is in progress (a finished file is kept).
   */
  abandon(cacheKey: string, reason: Error): boolean {
    const id = this.paths.lookup(cacheKey);
    const ctl = id === 0 ? undefined : this.producing.get(id);
    if (!ctl) return false;
    this.producing.delete(id);
    this.produced.delete(id);
    ctl.abort(reason);
    return true;
  }

  streamed(cacheKey: string, produce: Producer): FileNode {
    const id = this.paths.intern(cacheKey);
    return {
      kind: 'file',
      size: async () => (await this.produce(id, produce)).size,
      read: async (offset, length) => {
        const pr = await this.produce(id, produce);
        const end = Math.min(pr.size, offset + length);
        if (end <= offset) return Buffer.alloc(0);
        if (!pr.file) {
          const b = await this.getRendered(id, () => collect(produce));
          return b.subarray(offset, end);
        }
        const out = Buffer.allocUnsafe(end - offset);
        let done = 0;
        while (done < out.length) {
          const { bytesRead } = await pr.file!.fh.read(out, done, out.length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return out.subarray(0, done);
      },
    };
  }

  async close(): Promise<void> {
    for (const p of this.produced.values()) {
      const pr = await p.catch(() => null);
      await pr?.file?.fh?.close().catch(() => {});
    }
    if (this.spillRoot) rmSync(this.spillRoot, { recursive: true, force: true });
  }
}

async function writeAll(fh: FileHandle, b: Buffer, at: number): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done, at + done);
    done += bytesWritten;
  }
}
