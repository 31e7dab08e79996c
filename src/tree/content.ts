/**
 * Rendered-content store: one byte-bounded LRU for small rendered files, and
 * spill files on disk for large whole-scope files. Each file is produced at most
 * once while cached; concurrent readers share one in-flight render.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { FileFactory } from '../adapters/types.js';
import type { FileNode } from './node.js';
import { PathTable } from './paths.js';

export interface ContentStats {
  hits: number;
  misses: number;
  renders: number;
  spilledFiles: number;
  spilledBytes: number;
}

/** Where a streamed file's bytes live once produced: a spill file, or (small) the LRU. */
interface Produced {
  size: number;
  file?: { fh: FileHandle; path: string };
}

/** Run a producer into one buffer (for small streamed files evicted from the LRU). */
async function collect(produce: (write: (chunk: Buffer) => void, drain: () => Promise<void>) => Promise<void>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await produce(
    (c) => void chunks.push(Buffer.from(c)),
    async () => {},
  );
  return Buffer.concat(chunks);
}

/**
 * What one LRU entry really costs beyond its payload: the Buffer and ArrayBuffer objects,
 * the backing store's bookkeeping, the LRU's slots. Measured: 200k entries of 80 bytes
 * under 56-byte string keys cost 362 B of heap and 160 B of external memory each; keys are
 * path ids now (the path's bytes live in the tree's path table once, whatever is cached).
 */
const ENTRY_OVERHEAD = 400;

/** Cached entries up to this size are copied into the cache's own slabs. */
const SLAB_ENTRY_MAX = 2048;
const SLAB_BYTES = 64 * 1024;

/**
 * Memory for cached content that does not pin more than it holds. A small rendered
 * file is usually a view into something larger: a snapshot page, a decode buffer, or
 * Node's shared 8 KiB pool, where one cached 200-byte item keeps a whole slab of
 * other allocations' garbage alive (measured after a tar of 100k DynamoDB items:
 * 14.8k pool slabs, 116 MiB, held up by 20 MiB of cached items). So small entries
 * are copied, back to back, into 64 KiB slabs that hold cached bytes only: entries
 * cached one after another share a slab and age out of the LRU together, and
 * there is one ArrayBuffer per slab instead of one per entry for the collector.
 * Larger entries keep their buffer when it owns most of its backing store, and are
 * copied into an exact-size allocation otherwise.
 */
export class CacheArena {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  own(b: Buffer): Buffer {
    const n = b.length;
    if (n === 0) return b;
    if (n <= SLAB_ENTRY_MAX) {
      if (this.used + n > SLAB_BYTES) {
        this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
        this.used = 0;
      }
      const out = this.slab.subarray(this.used, this.used + n);
      b.copy(out);
      this.used = (this.used + n + 7) & ~7; // 8-aligned starts
      return out;
    }
    if (b.buffer.byteLength <= 2 * n + 64) return b;
    const out = Buffer.allocUnsafeSlow(n);
    b.copy(out);
    return out;
  }
}

export interface ContentStoreOptions {
  /** Bytes of rendered content kept in memory. */
  cacheBytes: number;
  /** Streamed files larger than this spill to disk. */
  spillThreshold?: number;
  /** Parent directory for spill files (default: os.tmpdir()). */
  spillDir?: string;
  /** The tree's path table: cached files are keyed by their path's id (default: a table of its own). */
  paths?: PathTable;
}

export class ContentStore implements FileFactory {
  readonly stats: ContentStats = { hits: 0, misses: 0, renders: 0, spilledFiles: 0, spilledBytes: 0 };
  /** Whole bytes of files, by their path's id. */
  private readonly lru: LRUCache<number, Buffer>;
  private readonly arena = new CacheArena();
  private readonly inflight = new Map<number, Promise<Buffer>>();
  private readonly produced = new Map<number, Promise<Produced>>();
  private readonly paths: PathTable;
  private readonly spillThreshold: number;
  private spillRoot: string | null = null;
  private readonly spillParent: string;
  private spillSeq = 0;

  constructor(opts: ContentStoreOptions) {
    this.paths = opts.paths ?? new PathTable();
    this.lru = new LRUCache<number, Buffer>({
      maxSize: Math.max(1, opts.cacheBytes),
      sizeCalculation: (b) => b.length + ENTRY_OVERHEAD,
      // A single file larger than the whole cache is still served (rendered on demand), just not kept.
      maxEntrySize: Math.max(1, opts.cacheBytes),
    });
    this.spillThreshold = opts.spillThreshold ?? 8 << 20;
    this.spillParent = opts.spillDir ?? tmpdir();
  }

  get cachedBytes(): number {
    return this.lru.calculatedSize ?? 0;
  }

  private async getRendered(key: number, render: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.lru.get(key);
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
        this.lru.set(key, this.arena.own(b));
        return b;
      })().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    } else this.stats.hits++;
    return p;
  }

  cached(cacheKey: string): boolean {
    const id = this.paths.lookup(cacheKey);
    return id !== 0 && (this.lru.has(id) || this.produced.has(id));
  }

  /** The whole bytes of the file at `path` while they are in memory (a hit counts as use). */
  peek(path: string): Buffer | undefined {
    const id = this.paths.lookup(path);
    return id === 0 ? undefined : this.peekId(id);
  }

  /** peek() by the path's id in the tree's path table. */
  peekId(id: number): Buffer | undefined {
    const b = this.lru.get(id);
    if (b) this.stats.hits++;
    return b;
  }

  /** Keep a file's whole bytes under its path (rendered by a listing pass, DirNode.entries, or another pass of an adapter). */
  keep(path: string, bytes: Buffer): void {
    this.keepId(this.paths.intern(path), bytes);
  }

  /** keep() by the path's id in the tree's path table. */
  keepId(id: number, bytes: Buffer): void {
    this.stats.renders++;
    this.lru.set(id, this.arena.own(bytes));
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

  private produce(key: number, produce: (write: (chunk: Buffer) => void, drain: () => Promise<void>) => Promise<void>): Promise<Produced> {
    let p = this.produced.get(key);
    if (p) return p;
    p = (async (): Promise<Produced> => {
      let chunks: Buffer[] = [];
      let memBytes = 0;
      let size = 0;
      let spill: { path: string; fh: Promise<FileHandle> } | undefined;
      let pendingWrite: Promise<void> = Promise.resolve();
      const write = (chunk: Buffer): void => {
        if (chunk.length === 0) return;
        const at = size;
        size += chunk.length;
        if (spill) {
          const s = spill;
          pendingWrite = pendingWrite.then(async () => writeAll(await s.fh, chunk, at));
          return;
        }
        chunks.push(Buffer.from(chunk));
        memBytes += chunk.length;
        if (memBytes > this.spillThreshold) {
          const path = join(this.ensureSpillRoot(), `f${++this.spillSeq}`);
          const s = (spill = { path, fh: open(path, 'w+', 0o600) });
          const buffered = Buffer.concat(chunks);
          chunks = [];
          memBytes = 0;
          pendingWrite = pendingWrite.then(async () => writeAll(await s.fh, buffered, 0));
        }
      };
      const closeSpill = async (): Promise<void> => {
        if (spill) await (await spill.fh.catch(() => null))?.close().catch(() => {});
      };
      try {
        await produce(write, () => pendingWrite);
        await pendingWrite;
      } catch (e) {
        await pendingWrite.catch(() => {});
        await closeSpill();
        this.produced.delete(key);
        throw e;
      }
      const file = spill ? { fh: await spill.fh, path: spill.path } : undefined;
      if (file) {
        this.stats.spilledFiles++;
        this.stats.spilledBytes += size;
        return { size, file };
      }
      // Small results live in the byte-bounded LRU like rendered files (produced again if evicted).
      this.lru.set(key, this.arena.own(Buffer.concat(chunks)));
      return { size };
    })();
    this.produced.set(key, p);
    return p;
  }

  streamed(cacheKey: string, produce: (write: (chunk: Buffer) => void, drain: () => Promise<void>) => Promise<void>): FileNode {
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
