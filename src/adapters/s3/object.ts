/**
 * An S3 object body as one file: the manifest's parts in (partNo, partVersion,
 * inline-before-offloaded) order, each part's chunks in chunkNo order, the
 * concatenation the format owner writes. The size comes from the manifest's
 * chunk sizes (no data read); a read at any offset finds its first chunk by
 * binary search over cumulative offsets and fetches only the chunks it spans.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { retainedBytes } from '../../bytes.js';
import { prefixEnd, type SnapshotView } from '../../source/range.js';
import { RecordError, type FileNode } from '../../tree/node.js';
import { chunkBlobKey, chunkKey, decodeChunkRefValue, P_BLOB, P_CHUNKBLOB, P_CHUNKREF, seg, u64 } from './keys.js';
import type { Manifest } from './model.js';

/** Chunks of one object beyond this are refused (5 TiB at 1 MiB chunks is ~5M). */
const MAX_CHUNKS = 1 << 24;

/** One chunk to fetch. */
export interface Chunk {
  offloaded: boolean;
  /** !s3|blob| key, or !s3|chunkref| key when offloaded. */
  key: Buffer;
  /** Declared size, or null when the manifest does not say (legacy inline parts). */
  size: number | null;
}

interface LayoutPart {
  partNo: bigint;
  version: bigint;
  offloaded: boolean;
  count: number;
  /** Index of the part's first chunk in the object. */
  first: number;
}

/**
 * The chunk list the owner assembles (filterChunksForManifest + lessS3ChunkKey),
 * kept compact: parts plus one Float64 start offset per chunk (NaN = unknown
 * until the chunk is read); chunk keys are built on demand.
 */
export class Layout {
  readonly starts: Float64Array;
  constructor(
    private readonly loc: { bucket: Buffer; gen: bigint; object: Buffer; uploadId: Buffer },
    private readonly parts: LayoutPart[],
    readonly count: number,
    sizes: (number | null)[] | null,
  ) {
    this.starts = new Float64Array(count + 1);
    let pos = 0;
    for (let i = 0; i < count; i++) {
      this.starts[i] = pos;
      const sz = sizes ? sizes[i]! : null;
      pos = sz === null || Number.isNaN(pos) ? NaN : pos + sz;
    }
    this.starts[count] = pos;
  }

  /**
   * The key range of this object's inline chunks (`!s3|blob|` of its upload) and their largest
   * declared size; null when it has none of a known size.
   */
  inlineChunks(): { start: Buffer; end: Buffer | null; maxBytes: number } | null {
    let max = 0;
    for (const p of this.parts) {
      if (p.offloaded) continue;
      for (let i = p.first; i < p.first + p.count; i++) {
        const sz = this.starts[i + 1]! - this.starts[i]!;
        if (sz > max) max = sz; // NaN (unknown) never wins
      }
    }
    if (max === 0) return null;
    const start = Buffer.concat([P_BLOB, seg(this.loc.bucket), u64(this.loc.gen), seg(this.loc.object), seg(this.loc.uploadId)]);
    return { start, end: prefixEnd(start), maxBytes: max };
  }

  get total(): number | null {
    const t = this.starts[this.count]!;
    return Number.isNaN(t) ? null : t;
  }

  chunk(i: number): Chunk {
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.parts[mid]!.first <= i) lo = mid;
      else hi = mid - 1;
    }
    const p = this.parts[lo]!;
    const key = chunkKey(p.offloaded ? P_CHUNKREF : P_BLOB, { ...this.loc, partNo: p.partNo, chunkNo: BigInt(i - p.first), partVersion: p.version });
    const s = this.starts[i]!;
    const e = this.starts[i + 1]!;
    return { offloaded: p.offloaded, key, size: Number.isNaN(s) || Number.isNaN(e) ? null : e - s };
  }

  /** Index of the chunk holding byte `offset` (all starts known). */
  find(offset: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

export function buildLayout(bucket: Buffer, gen: bigint, object: Buffer, m: Manifest, manifestKey: Buffer): Layout {
  // Declared parts keyed by (partNo, effective version, offloaded); a repeated part keeps the last one.
  const declared = new Map<string, { partNo: bigint; version: bigint; offloaded: boolean; count: bigint; sizes: bigint[] | null }>();
  for (const p of m.parts) {
    const version = p.offloaded ? p.chunkRefVersion : p.partVersion;
    declared.set(`${p.partNo}/${version}/${p.offloaded ? 1 : 0}`, { partNo: p.partNo, version, offloaded: p.offloaded, count: p.chunkCount, sizes: p.chunkSizes });
  }
  const ordered = [...declared.values()].sort((a, b) =>
    a.partNo !== b.partNo ? (a.partNo < b.partNo ? -1 : 1) : a.version !== b.version ? (a.version < b.version ? -1 : 1) : Number(a.offloaded) - Number(b.offloaded),
  );
  const parts: LayoutPart[] = [];
  const sizes: (number | null)[] = [];
  let count = 0;
  for (const p of ordered) {
    if (p.count === 0n) continue;
    if (BigInt(count) + p.count > BigInt(MAX_CHUNKS)) throw new RecordError(manifestKey, `manifest declares more than ${MAX_CHUNKS} chunks`);
    const n = Number(p.count);
    parts.push({ partNo: p.partNo, version: p.version, offloaded: p.offloaded, count: n, first: count });
    const known = p.sizes !== null && p.sizes.length === n;
    for (let c = 0; c < n; c++) sizes.push(known ? Number(p.sizes![c]!) : null);
    count += n;
  }
  return new Layout({ bucket, gen, object, uploadId: m.uploadId }, parts, count, sizes);
}

/**
 * Chunks at least this large are announced to the read-ahead before they are read
 * (SnapshotView.expectValues): a reader of many small objects must not have a page of
 * hundreds of them asked for at once when a big object follows in the same bucket.
 */
const EXPECT_CHUNK_BYTES = 64 << 10;

/**
 * What the read-ahead assumes a chunk costs where no manifest has announced its object's
 * (the blob families' default): elastickv cuts bodies into chunks of up to 1 MiB, and a
 * page grown to 512 keys on small objects ran on into the chunks of a large object in a
 * directory not listed yet. At 32 KiB a key such pages ask for 128 keys, 128 MiB at worst.
 * Live tar of 2,000 objects of 2 KiB in a/ and one of 200 MiB in b/: peak 715-719 MiB
 * before, 283-334 after (at 128 KiB, 32 keys: 228-232). Live tar of 20,000 objects of
 * 2 KiB: 4.52-4.55 s before, 4.83-4.92 s after (at 128 KiB: 6.7-6.8 s).
 */
const ASSUMED_CHUNK_BYTES = 32 << 10;

/** Fetches chunk payloads (validated) through a byte-bounded LRU shared by all objects. */
export class ChunkReader {
  private readonly cache: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  constructor(
    private readonly view: SnapshotView,
    cacheBytes = 32 << 20,
  ) {
    this.cache = new LRUCache<string, Buffer>({ maxSize: cacheBytes, sizeCalculation: (b) => Math.max(1, retainedBytes(b)), maxEntrySize: cacheBytes });
    for (const family of [P_BLOB, P_CHUNKBLOB]) view.expectValues(family, prefixEnd(family), ASSUMED_CHUNK_BYTES);
  }

  /** Tell the read-ahead the size of an object's large inline chunks (see EXPECT_CHUNK_BYTES). */
  expect(l: Layout): void {
    const r = l.inlineChunks();
    if (r && r.maxBytes >= EXPECT_CHUNK_BYTES) this.view.expectValues(r.start, r.end, r.maxBytes);
  }

  fetch(c: Chunk): Promise<Buffer> {
    const id = c.key.toString('latin1');
    const hit = this.cache.get(id);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(id);
    if (!p) {
      p = this.load(c).finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async load(c: Chunk): Promise<Buffer> {
    let data: Buffer;
    if (!c.offloaded) {
      const v = await this.view.get(c.key);
      if (v === null) throw new RecordError(c.key, 'incomplete blob chunks for manifest-declared part: chunk missing');
      data = v;
    } else {
      const rv = await this.view.get(c.key);
      if (rv === null) throw new RecordError(c.key, 'incomplete blob chunks for manifest-declared part: chunkref missing');
      const ref = decodeChunkRefValue(rv);
      if (!ref) throw new RecordError(c.key, 'invalid S3 chunk reference');
      if (c.size !== null && ref.size !== BigInt(c.size)) throw new RecordError(c.key, 'chunkref size does not match manifest chunk size');
      const bk = chunkBlobKey(ref.sha256);
      const blob = await this.view.get(bk);
      if (blob === null) throw new RecordError(bk, 'incomplete blob chunks for manifest-declared part: chunkblob missing');
      if (!createHash('sha256').update(blob).digest().equals(ref.sha256)) throw new RecordError(bk, 'S3 chunkblob hash mismatch');
      if (BigInt(blob.length) !== ref.size) throw new RecordError(c.key, 'chunkblob size does not match chunkref size');
      data = blob;
    }
    if (c.size !== null && data.length !== c.size) throw new RecordError(c.key, `chunk is ${data.length} bytes, manifest declares ${c.size}`);
    this.cache.set(c.key.toString('latin1'), data);
    return data;
  }
}

/** The object body file. `layout` is resolved (and cached by the caller) on first use. */
export class ObjectBodyFile implements FileNode {
  readonly kind = 'file' as const;
  private resolved: Promise<Layout> | null = null;
  constructor(
    private readonly layout: () => Promise<Layout>,
    private readonly chunks: ChunkReader,
  ) {}

  private full(): Promise<Layout> {
    if (!this.resolved) {
      const p = this.layout().then((l) => {
        this.chunks.expect(l);
        return l.total !== null ? l : this.learnSizes(l);
      });
      p.catch(() => {
        if (this.resolved === p) this.resolved = null;
      });
      this.resolved = p;
    }
    return this.resolved;
  }

  /** Legacy manifests without chunk_sizes: the chunks themselves tell their sizes. */
  private async learnSizes(l: Layout): Promise<Layout> {
    let pos = 0;
    for (let i = 0; i < l.count; i++) {
      l.starts[i] = pos;
      pos += (await this.chunks.fetch(l.chunk(i))).length;
    }
    l.starts[l.count] = pos;
    return l;
  }

  async size(): Promise<number> {
    return (await this.full()).total!;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const l = await this.full();
    const total = l.total!;
    if (offset >= total || length <= 0 || l.count === 0) return Buffer.alloc(0);
    const end = Math.min(total, offset + length);
    const out: Buffer[] = [];
    let pos = offset;
    for (let i = l.find(offset); i < l.count && pos < end; i++) {
      const start = l.starts[i]!;
      const size = l.starts[i + 1]! - start;
      if (size === 0) continue;
      const data = await this.chunks.fetch(l.chunk(i));
      const from = pos - start;
      const to = Math.min(size, end - start);
      out.push(data.subarray(from, to));
      pos = start + to;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}
