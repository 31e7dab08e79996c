import type { Logger } from 'pino';
import type { SnapshotView } from '../source/range.js';
import type { DirNode, FileNode } from '../tree/node.js';

export type AdapterName = 'dynamodb' | 's3' | 'redis' | 'sqs';
export const ADAPTER_NAMES: readonly AdapterName[] = ['dynamodb', 's3', 'redis', 'sqs'];

/**
 * Directories with more names than this do not keep their listing after readdir
 * (lookups then probe per name); smaller ones answer lookups from it.
 */
export const LISTING_KEEP_MAX = 50_000;

/** The owner's decode options that make sense for a mount (MANIFEST records each). */
export interface DecodeOptions {
  adapters: ReadonlySet<AdapterName>;
  /** adapter -> allowed scope names (tables, buckets, queues; redis: "0"/"db_0"); absent = all. */
  scopes: ReadonlyMap<AdapterName, ReadonlySet<string>>;
  includeIncompleteUploads: boolean;
  includeOrphans: boolean;
  preserveSqsVisibility: boolean;
  includeSqsSideRecords: boolean;
  dynamodbBundleMode: 'per-item' | 'jsonl';
  dynamodbBundleSize: number;
  renameCollisions: boolean;
}

export function defaultDecodeOptions(): DecodeOptions {
  return {
    adapters: new Set(ADAPTER_NAMES),
    scopes: new Map(),
    includeIncompleteUploads: false,
    includeOrphans: false,
    preserveSqsVisibility: false,
    includeSqsSideRecords: false,
    dynamodbBundleMode: 'per-item',
    dynamodbBundleSize: 64 << 20,
    renameCollisions: false,
  };
}

/**
 * Content helpers the tree provides to adapters so rendering is cached in one
 * byte-bounded LRU and large whole-scope files spill to disk.
 */
export interface FileFactory {
  /**
   * A small file rendered whole by `render` (one record's JSON, a `.bin` value).
   * Rendered at most once while cached. `cacheKey` is the file's absolute path in the
   * tree ("/redis/db_0/strings/k.bin"): the tree answers reads and sizes of a path
   * straight from the bytes cached under it.
   */
  rendered(cacheKey: string, render: () => Promise<Buffer>): FileNode;
  /**
   * Whether the file under `cacheKey` was rendered (or produced) and is still held: it
   * exists, so a lookup may skip its existence read. False says nothing.
   */
  cached(cacheKey: string): boolean;
  /**
   * Keep the whole bytes of the file at `cacheKey` (its absolute path), rendered by a pass
   * that read its record for something else: its size and reads are then answered from them
   * while they stay in the cache.
   */
  keep(cacheKey: string, bytes: Buffer): void;
  /**
   * A file produced by one streaming pass (messages.jsonl, a stream's .jsonl,
   * KEYMAP.jsonl, *_ttl.jsonl), under its absolute path as for rendered. `produce` writes chunks through `write`; content
   * beyond the memory bound spills to a temporary file. Produced at most once.
   * Every producer awaits `drain()` after its writes: it resolves at once unless more than a
   * few MiB wait for the spill file, and then once they are written, so a producer faster
   * than the disk holds no more than that.
   */
  streamed(cacheKey: string, produce: Producer): FileNode;
}

/**
 * A streamed file's pass (FileFactory.streamed). `signal` aborts when nobody waits for the file
 * any more (every request for it was interrupted): `write` throws its reason from then on, and
 * a producer with long stretches between writes checks it itself.
 */
export type Producer = (write: (chunk: Buffer) => void, drain: () => Promise<void>, signal: AbortSignal) => Promise<void>;

/** A producer's writes are chunks of about this many bytes. */
const CHUNK_BYTES = 64 << 10;

/**
 * A producer's small writes collected into ~64 KiB chunks, each written then drained (see
 * Producer): `push` returns a promise to await when it wrote a chunk; `flush` writes the rest.
 */
export function batched(write: (chunk: Buffer) => void, drain: () => Promise<void>): { push: (b: Buffer) => Promise<void> | undefined; flush: () => void } {
  let parts: Buffer[] = [];
  let n = 0;
  const flush = (): void => {
    if (n === 0) return;
    write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    parts = [];
    n = 0;
  };
  return {
    push: (b) => {
      parts.push(b);
      n += b.length;
      if (n < CHUNK_BYTES) return undefined;
      flush();
      return drain();
    },
    flush,
  };
}

/** batched() for text lines: they are joined as strings and encoded a chunk at a time. */
export function batchedLines(write: (chunk: Buffer) => void, drain: () => Promise<void>): { push: (line: string) => Promise<void> | undefined; flush: () => void } {
  let batch = '';
  const flush = (): void => {
    if (batch === '') return;
    write(Buffer.from(batch, 'utf8'));
    batch = '';
  };
  return {
    push: (line) => {
      batch += line;
      if (batch.length < CHUNK_BYTES) return undefined;
      flush();
      return drain();
    },
    flush,
  };
}

export interface AdapterContext {
  view: SnapshotView;
  options: DecodeOptions;
  files: FileFactory;
  log: Logger;
  /** Bytes a room may keep in caches of its own (a share of --cache-size). */
  roomCacheBytes: number;
}

/**
 * One adapter room: raw KV -> the `<adapter>/` directory of the logical tree.
 * `root` returns null when the adapter has nothing to show (the owner creates
 * no empty adapter directories).
 */
export interface Adapter {
  readonly name: AdapterName;
  root(ctx: AdapterContext): Promise<DirNode | null>;
}
