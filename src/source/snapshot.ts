/**
 * `.fsm` snapshot source: elastickv's native Pebble snapshot stream, read in place.
 *
 *   "EKVPBBL1" | lastCommitTS u64 LE |
 *   ( keyLen u64 LE | userKey ++ ^commitTS u64 BE | valLen u64 LE | flags u8 ++ expireAt u64 LE ++ body )*
 *
 * One sequential pass at open validates the framing and builds a sparse index
 * (one point per ~64 KiB or 128 entries). Scans and gets then touch only the
 * bytes they need. Entries are in Pebble's bytewise order of the *encoded* key,
 * which is not user-key order when one user key is a prefix of another
 * ("a"+^ts sorts after "ab"). Entries that arrive below the running maximum user
 * key are "displaced": kept in a small side list, merged back at read time, so
 * scans return strict user-key order. Memory is O(index points + displaced
 * entries), not O(file).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { compareKeys, FLAG_ENC_STATE_MASK, FLAG_RESERVED_MASK, FLAG_TOMBSTONE, isLive, TS_SUFFIX_BYTES, VALUE_HEADER_BYTES, lowerBound } from './mvcc.js';
import { EMPTY_VALUE, SourceError, type KV, type PageSource, type ScanPageOptions } from './types.js';
import { noteAllocated } from '../memory.js';

export const FSM_MAGIC = Buffer.from('EKVPBBL1', 'latin1');
const HEADER_BYTES = 16;
/** 1 MiB user key + ts suffix (the store's limit). */
export const MAX_ENCODED_KEY = (1 << 20) + TS_SUFFIX_BYTES;
/** 256 MiB user value + 9-byte header + 34-byte encryption envelope (the store's limit). */
export const MAX_ENCODED_VALUE = 256 * (1 << 20) + VALUE_HEADER_BYTES + 34;
/** Non-MVCC operational keys the store keeps beside the data; never user data. */
const PEBBLE_META_KEYS = new Set(['_meta_last_commit_ts', '_meta_min_retained_ts', '_meta_pending_min_retained_ts', '_meta_applied_index']);

const INDEX_EVERY_BYTES = 64 * 1024;
const INDEX_EVERY_ENTRIES = 128;
const READ_CHUNK = 1 << 20;
const TWO64 = 1n << 64n;

export interface FsmEntry {
  /** Byte offset of the entry's keyLen field. */
  offset: number;
  userKey: Buffer;
  commitTS: bigint;
  tombstone: boolean;
  expireAt: bigint;
  /** Offset and length of the user value body. */
  valueOffset: number;
  valueLength: number;
  /** Offset of the next entry. */
  next: number;
}

interface IndexPoint {
  offset: number;
  key: Buffer;
}

interface Displaced {
  key: Buffer;
  commitTS: bigint;
  tombstone: boolean;
  expireAt: bigint;
  valueOffset: number;
  valueLength: number;
}

/** Page size of the reader's page cache. */
export const PAGE_BYTES = 128 * 1024;
/** What a header read after a skipped large value reads (see ChunkReader.window). */
const SKIP_READ_BYTES = 4096;
/** Bytes of file pages kept by default (256 x 128 KiB). */
export const DEFAULT_PAGE_CACHE_BYTES = 32 << 20;

/**
 * A small LRU of aligned file pages, shared by every read of one snapshot:
 * point reads and page scans that land near each other (a directory walked in
 * key order, a record's keys) parse from memory instead of re-reading the file.
 */
class PageCache {
  private readonly pages: LRUCache<number, Buffer>;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  hits = 0;
  misses = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly fileSize: number,
    cacheBytes: number,
    private readonly io: IoStats,
  ) {
    this.pages = new LRUCache<number, Buffer>({ max: Math.max(4, Math.floor(cacheBytes / PAGE_BYTES)) });
  }

  /** The cached page holding [pos, pos+len), or null (not cached, or not inside one page). */
  cached(pos: number, len: number): { buf: Buffer; start: number } | null {
    const n = Math.floor(pos / PAGE_BYTES);
    const start = n * PAGE_BYTES;
    if (pos + len > start + PAGE_BYTES) return null;
    const hit = this.pages.get(n);
    if (!hit) return null;
    this.hits++;
    return { buf: hit, start };
  }

  /** The page holding byte `pos`, or null when [pos, pos+len) is not inside one page. */
  async page(pos: number, len: number): Promise<{ buf: Buffer; start: number } | null> {
    const n = Math.floor(pos / PAGE_BYTES);
    const start = n * PAGE_BYTES;
    if (pos + len > start + PAGE_BYTES) return null;
    const hit = this.cached(pos, len);
    if (hit) return hit;
    let p = this.inflight.get(n);
    if (!p) {
      this.misses++;
      const b = Buffer.allocUnsafe(Math.min(PAGE_BYTES, this.fileSize - start));
      p = readFully(this.fh, b, start, this.io).then(() => b);
      this.inflight.set(n, p);
      p.then(
        (b) => {
          this.pages.set(n, b);
          this.inflight.delete(n);
        },
        () => this.inflight.delete(n),
      );
    }
    return { buf: await p, start };
  }
}

/** Buffered positional reader over a file handle (through the page cache when it has one). */
class ChunkReader {
  buf: Buffer = Buffer.alloc(0);
  bufStart = 0;
  constructor(
    private readonly fh: FileHandle,
    readonly fileSize: number,
    private readonly io: IoStats,
    private readonly chunk = READ_CHUNK,
    private readonly cache: PageCache | null = null,
  ) {}

  /** Make the window cover [pos, pos+need) (clamped to EOF); reads at most max(chunk, need) bytes. */
  async window(pos: number, need: number): Promise<void> {
    const want = Math.min(need, this.fileSize - pos);
    if (pos >= this.bufStart && pos + want <= this.bufStart + this.buf.length) return;
    let len = Math.min(Math.max(this.chunk, need), this.fileSize - pos);
    if (this.cache) {
      // Past a value of a page or more (an S3 chunk), only the next entry's header is
      // wanted: read around it, not a whole page, unless that page is cached already.
      // A keys-only scan of S3 chunk keys read a 128 KiB page per key.
      const skipped = this.buf.length > 0 && pos >= this.bufStart + this.buf.length + PAGE_BYTES;
      const pg = skipped ? this.cache.cached(pos, want) : await this.cache.page(pos, want);
      if (pg) {
        this.buf = pg.buf;
        this.bufStart = pg.start;
        return;
      }
      if (skipped) len = Math.min(Math.max(SKIP_READ_BYTES, need), this.fileSize - pos);
    }
    const b = this.buf.length === len && !this.cache ? this.buf : Buffer.allocUnsafe(len);
    await readFully(this.fh, b, pos, this.io);
    this.buf = b;
    this.bufStart = pos;
  }
}

/** Reads of the file (after the index pass): count and bytes. */
export interface IoStats {
  reads: number;
  bytes: number;
}

async function readFully(fh: FileHandle, into: Buffer, pos: number, io?: IoStats): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, pos + done);
    if (bytesRead === 0) throw new SourceError('truncated', `snapshot truncated: unexpected EOF at offset ${pos + done}`);
    done += bytesRead;
  }
  if (io) {
    io.reads++;
    io.bytes += into.length;
  }
}

/** A u64 LE length as a number (saturating at 2^53-1: every limit check then fails it). */
function u64(b: Buffer, at: number): number {
  const lo = b.readUInt32LE(at);
  const hi = b.readUInt32LE(at + 4);
  return hi === 0 ? lo : hi < 0x200000 ? hi * 0x1_0000_0000 + lo : Number.MAX_SAFE_INTEGER;
}

/** The main-sequence user keys of one index block, for binary search by point reads. */
interface BlockKeys {
  /** Offset of the first version of each distinct user key, ascending by key. */
  offsets: number[];
  /** The keys, concatenated (one allocation per block); key i is keyData[keyEnds[i-1], keyEnds[i]). */
  keyData: Buffer;
  keyEnds: Uint32Array;
  /** Offset where the block ends (the next index point, or EOF). */
  end: number;
}

function blockKey(b: BlockKeys, i: number): Buffer {
  return b.keyData.subarray(i === 0 ? 0 : b.keyEnds[i - 1]!, b.keyEnds[i]!);
}

/** Blocks whose keys are kept (each ~128 keys), and at most this share of the page cache's bytes. */
const BLOCK_KEYS_CACHED = 2048;
const BLOCK_KEYS_SHARE = 2;
/** What a cached block costs besides its keys' bytes: its offsets, key ends and objects. */
const BLOCK_OVERHEAD = 256;

type Parsed = FsmEntry | { meta: true; next: number } | null;

/**
 * The framing of one entry, as `frame` finds it, in offsets into the reader's window.
 * One struct, reused: the index pass reads every entry of the file and allocates nothing
 * per entry (no object, key view or BigInt). Its garbage, 630k entries' worth for the
 * bench's 2.1 GiB .fsm, grew V8's young generation to its maximum and left those pages
 * resident for the life of the daemon. Window offsets also stay small integers where
 * file offsets pass 2^31 (the last 100 MB of that file), which V8 would box one by one.
 */
interface Frame {
  kind: typeof FRAME_ENTRY | typeof FRAME_META | typeof FRAME_EOF;
  /** The user key (the encoded key less the ts suffix): window offset and length. */
  wKey: number;
  userKeyLen: number;
  /** The value header (flags, expireAt). */
  wHeader: number;
  /** The user value body, and its length. */
  wValue: number;
  valueLength: number;
  /** The next entry. */
  wNext: number;
}
const FRAME_ENTRY = 0;
const FRAME_META = 1;
const FRAME_EOF = 2;
function newFrame(): Frame {
  return { kind: FRAME_EOF, wKey: 0, userKeyLen: 0, wHeader: 0, wValue: 0, valueLength: 0, wNext: 0 };
}
/** parseSync's frame (read synchronously, right after it is filled). */
const scratch = newFrame();

/**
 * Check the framing of the entry at window offset `o` of the reader and fill `f`.
 * Returns 0 when `f` is filled, or the number of bytes from the entry the window must
 * hold to parse it. Every length is checked against the store's limits before anything
 * is sized from it.
 */
function frame(r: ChunkReader, o: number, f: Frame): number {
  const w = r.buf;
  /** Bytes from the entry to the end of the file. */
  const left = r.fileSize - r.bufStart - o;
  if (left === 0) {
    f.kind = FRAME_EOF;
    return 0;
  }
  const avail = w.length - o;
  if (left < 8) throw new SourceError('truncated', `snapshot truncated mid-entry at offset ${r.bufStart + o} (partial key length)`);
  if (avail < 8) return 8;
  const keyLen = u64(w, o);
  if (keyLen > MAX_ENCODED_KEY) throw new SourceError('key-too-large', `snapshot key length ${keyLen} at offset ${r.bufStart + o} exceeds limit ${MAX_ENCODED_KEY}`);
  if (16 + keyLen > left) throw new SourceError('truncated', `snapshot truncated mid-entry at offset ${r.bufStart + o} (key of ${keyLen} bytes or value length runs past end of file)`);
  if (avail < 16 + keyLen) return 16 + keyLen;
  const valLen = u64(w, o + 8 + keyLen);
  if (valLen > MAX_ENCODED_VALUE) throw new SourceError('value-too-large', `snapshot value length ${valLen} at offset ${r.bufStart + o + 8 + keyLen} exceeds limit ${MAX_ENCODED_VALUE}`);
  if (16 + keyLen + valLen > left) throw new SourceError('truncated', `snapshot truncated mid-entry at offset ${r.bufStart + o} (value of ${valLen} bytes runs past end of file)`);
  const h = o + 16 + keyLen;
  f.wNext = h + valLen;
  if (keyLen < 32 && keyLen > 8 && w[o + 8] === 0x5f && PEBBLE_META_KEYS.has(w.toString('latin1', o + 8, o + 8 + keyLen))) {
    f.kind = FRAME_META;
    return 0;
  }
  if (keyLen < TS_SUFFIX_BYTES) throw new SourceError('short-key', `encoded key at offset ${r.bufStart + o} is ${keyLen} bytes, shorter than the 8-byte timestamp suffix`);
  if (valLen < VALUE_HEADER_BYTES) throw new SourceError('short-value', `encoded value at offset ${r.bufStart + o + 8 + keyLen} is ${valLen} bytes, shorter than the 9-byte value header`);
  if (avail < 16 + keyLen + VALUE_HEADER_BYTES) return 16 + keyLen + VALUE_HEADER_BYTES;
  const flags = w[h]!;
  if (flags & FLAG_RESERVED_MASK) throw new SourceError('encrypted-reserved', `value header at offset ${r.bufStart + h} carries reserved flag bits (0x${flags.toString(16)})`);
  const enc = (flags & FLAG_ENC_STATE_MASK) >> 1;
  if (enc === 1) throw new SourceError('encrypted', `snapshot contains encrypted entries (offset ${r.bufStart + o}); ekv-mount does not hold the decryption keyring`);
  if (enc !== 0) throw new SourceError('encrypted-reserved', `value header at offset ${r.bufStart + h} carries reserved encryption state ${enc}`);
  f.kind = FRAME_ENTRY;
  f.wKey = o + 8;
  f.userKeyLen = keyLen - TS_SUFFIX_BYTES;
  f.wHeader = h;
  f.wValue = h + VALUE_HEADER_BYTES;
  f.valueLength = valLen - VALUE_HEADER_BYTES;
  return 0;
}

/** The commit ts of the framed entry (its key's suffix is ^commitTS, big-endian). */
function frameCommitTS(w: Buffer, f: Frame): bigint {
  return TWO64 - 1n - w.readBigUInt64BE(f.wKey + f.userKeyLen);
}

/**
 * Parse the entry at file offset `pos` from the reader's window. Returns the entry
 * (userKey is a view into the window), null at a clean end of file, or the number of
 * bytes from `pos` the window must hold to parse it.
 */
function parseSync(r: ChunkReader, pos: number): Parsed | number {
  const need = frame(r, pos - r.bufStart, scratch);
  if (need !== 0) return need;
  if (scratch.kind === FRAME_EOF) return null;
  const base = r.bufStart;
  if (scratch.kind === FRAME_META) return { meta: true, next: base + scratch.wNext };
  const w = r.buf;
  return {
    offset: pos,
    userKey: w.subarray(scratch.wKey, scratch.wKey + scratch.userKeyLen),
    commitTS: frameCommitTS(w, scratch),
    tombstone: (w[scratch.wHeader]! & FLAG_TOMBSTONE) !== 0,
    expireAt: w.readBigUInt64LE(scratch.wHeader + 1),
    valueOffset: base + scratch.wValue,
    valueLength: scratch.valueLength,
    next: base + scratch.wNext,
  };
}

async function parseEntry(r: ChunkReader, pos: number): Promise<Parsed> {
  let need = 256;
  for (;;) {
    await r.window(pos, need);
    const p = parseSync(r, pos);
    if (typeof p !== 'number') return p;
    need = p;
  }
}

function isMeta(p: Parsed): p is { meta: true; next: number } {
  return p !== null && 'meta' in p;
}

/**
 * Bytewise comparison of a[as, ae) with b[bs, be), and a copy of src[s, e) to the start
 * of dst. Buffer#compare and Buffer#copy with offsets each make a view object per call:
 * two per entry in the index pass.
 */
function compareRange(a: Buffer, as: number, ae: number, b: Buffer, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) {
    const d = a[as + i]! - b[bs + i]!;
    if (d !== 0) return d;
  }
  return ae - as - (be - bs);
}

function copyRange(src: Buffer, s: number, e: number, dst: Buffer): void {
  for (let i = s; i < e; i++) dst[i - s] = src[i]!;
}

/**
 * The index pass over the whole file, one window at a time: `run` is synchronous, so its
 * offsets stay unboxed numbers (in an async function every assignment past 2^31, the
 * last 100 MB of the 2.1 GiB bench file, would box a heap number).
 */
class IndexPass {
  pos = HEADER_BYTES;
  /** The newest commit is the smallest ^commitTS suffix (compared as bytes: no BigInt, nor a number past 2^31, per entry); all ones is commit 0. */
  readonly minSuffix = Buffer.alloc(TS_SUFFIX_BYTES, 0xff);
  private readonly f: Frame = newFrame();
  /** The running maximum user key, in one reusable buffer. */
  private readonly maxBuf = Buffer.allocUnsafe(MAX_ENCODED_KEY);
  private maxLen = -1;
  private lastPointPos = -Infinity;
  private sincePoint = Infinity;

  constructor(
    private readonly index: IndexPoint[],
    private readonly displaced: Displaced[],
    private readonly stats: SnapshotStats,
  ) {}

  /** Index entries from `pos` while the window holds them. Returns 0 at the end of the file, or the bytes the window must hold at `pos`. */
  run(r: ChunkReader): number {
    const f = this.f;
    const maxBuf = this.maxBuf;
    const w = r.buf;
    // Offsets into the window: small integers, however large the file.
    let o = this.pos - r.bufStart;
    try {
      for (;;) {
        const need = frame(r, o, f);
        if (need !== 0) return need;
        if (f.kind === FRAME_EOF) return 0;
        if (f.kind === FRAME_META) {
          this.stats.metaKeys++;
          o = f.wNext;
          continue;
        }
        this.stats.entries++;
        const ks = f.wKey;
        const ke = ks + f.userKeyLen;
        if (compareRange(w, ke, ke + TS_SUFFIX_BYTES, this.minSuffix, 0, TS_SUFFIX_BYTES) < 0) copyRange(w, ke, ke + TS_SUFFIX_BYTES, this.minSuffix);
        const cmp = this.maxLen < 0 ? 1 : compareRange(w, ks, ke, maxBuf, 0, this.maxLen);
        if (cmp < 0) {
          this.displaced.push({
            key: Buffer.from(w.subarray(ks, ke)),
            commitTS: frameCommitTS(w, f),
            tombstone: (w[f.wHeader]! & FLAG_TOMBSTONE) !== 0,
            expireAt: w.readBigUInt64LE(f.wHeader + 1),
            valueOffset: r.bufStart + f.wValue,
            valueLength: f.valueLength,
          });
        } else {
          if (cmp > 0) {
            copyRange(w, ks, ke, maxBuf);
            this.maxLen = ke - ks;
            // Index points only at the first version of a user key in the main sequence.
            if (r.bufStart + o - this.lastPointPos >= INDEX_EVERY_BYTES || this.sincePoint >= INDEX_EVERY_ENTRIES) {
              const pos = r.bufStart + o;
              this.index.push({ offset: pos, key: Buffer.from(w.subarray(ks, ke)) });
              this.lastPointPos = pos;
              this.sincePoint = 0;
            }
          }
          this.sincePoint++;
        }
        o = f.wNext;
      }
    } finally {
      this.pos = r.bufStart + o;
    }
  }
}

export interface SnapshotStats {
  entries: number;
  metaKeys: number;
  displaced: number;
  indexPoints: number;
  fileSize: number;
}

export class SnapshotSource implements PageSource {
  readonly label: string;
  private index: IndexPoint[] = [];
  private displaced: Displaced[] = [];
  private readonly pages: PageCache;
  /** Reads of the file since it was indexed. */
  readonly io: IoStats = { reads: 0, bytes: 0 };
  /**
   * Block keys by block start. Bounded in bytes as well as blocks: keys can be large (a
   * Redis set's members are in its keys), and 2048 blocks of 1 KiB members held 26 MiB.
   */
  private readonly blocks: LRUCache<number, Promise<BlockKeys>>;
  stats: SnapshotStats = { entries: 0, metaKeys: 0, displaced: 0, indexPoints: 0, fileSize: 0 };

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly fileSize: number,
    readonly lastCommitTS: bigint,
    pageCacheBytes: number,
  ) {
    this.label = `snapshot:${path}`;
    this.pages = new PageCache(fh, fileSize, pageCacheBytes, this.io);
    this.blocks = new LRUCache<number, Promise<BlockKeys>>({ max: BLOCK_KEYS_CACHED, maxSize: Math.max(1 << 20, Math.floor(pageCacheBytes / BLOCK_KEYS_SHARE)) });
  }

  private newestTS = 0n;

  /** The newest commit timestamp of any entry, or the header's lastCommitTS if that is newer. */
  get maxCommitTS(): bigint {
    return this.newestTS > this.lastCommitTS ? this.newestTS : this.lastCommitTS;
  }

  /** Bytes the cached block keys are counted at (bounded: half the page cache's bytes, at least 1 MiB). */
  get blockKeysBytes(): number {
    return this.blocks.calculatedSize;
  }

  /** Page cache hits and misses (reads that needed the file). */
  get pageCacheStats(): { hits: number; misses: number } {
    return { hits: this.pages.hits, misses: this.pages.misses };
  }

  /** Open, validate the header, index the file. Throws SourceError on bad input. */
  static async open(path: string, opts: { pageCacheBytes?: number } = {}): Promise<SnapshotSource> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new SourceError('not-a-file', `${path} is not a regular file`);
      const lastCommitTS = await readHeader(fh, st.size, path);
      const src = new SnapshotSource(path, fh, st.size, lastCommitTS, opts.pageCacheBytes ?? DEFAULT_PAGE_CACHE_BYTES);
      await src.buildIndex();
      return src;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  private async buildIndex(): Promise<void> {
    const r = new ChunkReader(this.fh, this.fileSize, { reads: 0, bytes: 0 }, 4 << 20);
    const pass = new IndexPass(this.index, this.displaced, this.stats);
    await r.window(pass.pos, 256);
    for (let refilledAt = -1; ; ) {
      const need = pass.run(r);
      if (need === 0) break;
      // The window was refilled for this entry and still does not hold it (frame reports a real truncation first).
      if (pass.pos === refilledAt) throw new SourceError('truncated', `snapshot truncated mid-entry at offset ${pass.pos}`);
      refilledAt = pass.pos;
      await r.window(pass.pos, Math.max(need, 256));
    }
    this.newestTS = TWO64 - 1n - pass.minSuffix.readBigUInt64BE(0);
    this.displaced.sort((a, b) => compareKeys(a.key, b.key) || (a.commitTS > b.commitTS ? -1 : a.commitTS < b.commitTS ? 1 : 0));
    this.stats.displaced = this.displaced.length;
    this.stats.indexPoints = this.index.length;
    this.stats.fileSize = this.fileSize;
  }

  /** Offset of the last index point whose key < k (or the first entry). */
  private seekBelow(k: Buffer): number {
    const lo = lowerBound(this.index.length, (i) => compareKeys(this.index[i]!.key, k) < 0);
    return lo === 0 ? HEADER_BYTES : this.index[lo - 1]!.offset;
  }

  private displacedFrom(k: Buffer): number {
    return lowerBound(this.displaced.length, (i) => compareKeys(this.displaced[i]!.key, k) < 0);
  }

  /**
   * Walk user keys >= start in order, yielding for each the visible version at ts
   * (or null when hidden), merged across the main sequence and displaced entries.
   */
  private async *walk(start: Buffer, end: Buffer | null, ts: bigint): AsyncGenerator<{ key: Buffer; v: Displaced | null }> {
    const r = new ChunkReader(this.fh, this.fileSize, this.io, 256 * 1024, this.pages);
    let pos = this.seekBelow(start);
    let max: Buffer | null = null;
    let di = this.displacedFrom(start);
    let pending: FsmEntry | null = null; // main-sequence lookahead
    const nextMain = async (): Promise<FsmEntry | null> => {
      for (;;) {
        const e = await parseEntry(r, pos);
        if (e === null) return null;
        if (isMeta(e)) {
          pos = e.next;
          continue;
        }
        pos = e.next;
        if (max !== null && compareKeys(e.userKey, max) < 0) continue; // displaced: served from the side list
        if (max === null || compareKeys(e.userKey, max) > 0) max = Buffer.from(e.userKey);
        if (compareKeys(e.userKey, start) < 0) continue;
        return { ...e, userKey: Buffer.from(e.userKey) };
      }
    };
    // Point reads land mid-block: binary-search the block's keys (read once per block,
    // framing only: it was validated when the file was indexed) instead of decoding
    // every entry below `start`.
    {
      const blk = await this.blockKeys(pos);
      const lo = lowerBound(blk.offsets.length, (i) => compareKeys(blockKey(blk, i), start) < 0);
      if (lo > 0) {
        max = blockKey(blk, lo - 1);
        pos = lo < blk.offsets.length ? blk.offsets[lo]! : blk.end;
      }
    }
    pending = await nextMain();
    for (;;) {
      const dk = this.displaced[di]?.key ?? null;
      const mk = pending?.userKey ?? null;
      let key: Buffer;
      if (mk && (!dk || compareKeys(mk, dk) <= 0)) key = mk;
      else if (dk) key = dk;
      else return;
      if (end && compareKeys(key, end) >= 0) return;
      // Collect versions of `key` from both sequences; pick the newest with commitTS <= ts.
      let best: Displaced | null = null;
      const consider = (v: Displaced): void => {
        if (v.commitTS <= ts && (!best || v.commitTS > best.commitTS)) best = v;
      };
      while (pending && compareKeys(pending.userKey, key) === 0) {
        consider(pending as unknown as Displaced);
        pending = await nextMain();
      }
      while (di < this.displaced.length && compareKeys(this.displaced[di]!.key, key) === 0) {
        consider(this.displaced[di]!);
        di++;
      }
      const b = best as Displaced | null;
      yield { key, v: b && isLive(b, ts) ? b : null };
    }
  }

  /** The block starting at `start` (an index point or the first entry): its distinct main-sequence keys. */
  private blockKeys(start: number): Promise<BlockKeys> {
    const cached = this.blocks.get(start);
    if (cached) return cached;
    const read = this.readBlockKeys(start);
    // Counted as one byte while it is read, then as what it holds.
    this.blocks.set(start, read, { size: 1 });
    read.then(
      (b) => {
        if (this.blocks.peek(start) !== read) return;
        // Set again under its size (a set of the same value would keep the old size).
        this.blocks.delete(start);
        this.blocks.set(start, read, { size: BLOCK_OVERHEAD + b.keyData.length + 12 * b.offsets.length });
      },
      () => this.blocks.delete(start),
    );
    return read;
  }

  private async readBlockKeys(start: number): Promise<BlockKeys> {
    const lo = lowerBound(this.index.length, (i) => this.index[i]!.offset <= start);
    const end = lo < this.index.length ? this.index[lo]!.offset : this.fileSize;
    const r = new ChunkReader(this.fh, this.fileSize, this.io, 256 * 1024, this.pages);
    const offsets: number[] = [];
    const keys: Buffer[] = [];
    let max: Buffer | null = null;
    let keyBytes = 0;
    for (let pos = start; pos < end; ) {
      await r.window(pos, 16);
      let o = pos - r.bufStart;
      const keyLen = u64(r.buf, o);
      await r.window(pos, 16 + keyLen);
      o = pos - r.bufStart;
      const next = pos + 16 + keyLen + u64(r.buf, o + 8 + keyLen);
      const isPebbleMeta = keyLen < 32 && keyLen > 8 && r.buf[o + 8] === 0x5f && PEBBLE_META_KEYS.has(r.buf.toString('latin1', o + 8, o + 8 + keyLen));
      if (!isPebbleMeta && keyLen >= TS_SUFFIX_BYTES) {
        const uk = r.buf.subarray(o + 8, o + 8 + keyLen - TS_SUFFIX_BYTES);
        if (max === null || compareKeys(uk, max) > 0) {
          max = uk; // a view; copied into keyData below
          offsets.push(pos);
          keys.push(uk);
          keyBytes += uk.length;
        }
      }
      pos = next;
    }
    const keyData = Buffer.allocUnsafeSlow(keyBytes);
    const keyEnds = new Uint32Array(keys.length);
    let at = 0;
    keys.forEach((k, i) => {
      k.copy(keyData, at);
      at += k.length;
      keyEnds[i] = at;
    });
    return { offsets, keyData, keyEnds, end };
  }

  private async readValue(v: Displaced): Promise<Buffer> {
    if (v.valueLength === 0) return EMPTY_VALUE;
    noteAllocated(v.valueLength);
    const pg = v.valueLength <= PAGE_BYTES / 4 ? await this.pages.page(v.valueOffset, v.valueLength) : null;
    // A copy: callers may keep values (rendered content caches) and must not pin whole pages.
    if (pg) return Buffer.from(pg.buf.subarray(v.valueOffset - pg.start, v.valueOffset - pg.start + v.valueLength));
    const out = Buffer.allocUnsafe(v.valueLength);
    await readFully(this.fh, out, v.valueOffset, this.io);
    return out;
  }

  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    const out: KV[] = [];
    if (opts.limit < 1) return out;
    for await (const { key, v } of this.walk(start, end, ts)) {
      if (!v) continue;
      out.push({ key, value: opts.keysOnly ? EMPTY_VALUE : await this.readValue(v) });
      if (out.length >= opts.limit) break;
    }
    return out;
  }

  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    for await (const { key: k, v } of this.walk(key, null, ts)) {
      if (compareKeys(k, key) !== 0) return null;
      return v ? this.readValue(v) : null;
    }
    return null;
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}

async function readHeader(fh: FileHandle, size: number, path: string): Promise<bigint> {
  if (size < HEADER_BYTES) {
    if (size >= 8) {
      const m = Buffer.alloc(8);
      await readFully(fh, m, 0);
      if (!m.equals(FSM_MAGIC)) throw new SourceError('bad-magic', `${path}: not an elastickv snapshot (magic ${JSON.stringify(m.toString('latin1'))}, want "EKVPBBL1")`);
    }
    throw new SourceError('truncated', `${path}: snapshot truncated inside the 16-byte header (${size} bytes)`);
  }
  const h = Buffer.alloc(HEADER_BYTES);
  await readFully(fh, h, 0);
  if (!h.subarray(0, 8).equals(FSM_MAGIC)) {
    throw new SourceError('bad-magic', `${path}: not an elastickv snapshot (magic ${JSON.stringify(h.subarray(0, 8).toString('latin1'))}, want "EKVPBBL1")`);
  }
  return h.readBigUInt64LE(8);
}

/** The header alone (for tools that need lastCommitTS). */
export async function readFsmHeader(path: string): Promise<{ lastCommitTS: bigint }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    return { lastCommitTS: await readHeader(fh, st.size, path) };
  } finally {
    await fh.close();
  }
}

/** Every MVCC entry in file order (tombstones and all versions included); for loaders like the dev cluster. */
export async function* readFsmEntries(path: string): AsyncGenerator<{ key: Buffer; commitTS: bigint; tombstone: boolean; expireAt: bigint; value: Buffer }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    await readHeader(fh, st.size, path);
    const r = new ChunkReader(fh, st.size, { reads: 0, bytes: 0 }, 4 << 20);
    let pos = HEADER_BYTES;
    for (;;) {
      const e = await parseEntry(r, pos);
      if (e === null) return;
      if (isMeta(e)) {
        pos = e.next;
        continue;
      }
      const key = Buffer.from(e.userKey);
      let value: Buffer;
      if (e.valueLength <= READ_CHUNK) {
        await r.window(e.valueOffset, e.valueLength);
        const at = e.valueOffset - r.bufStart;
        value = Buffer.from(r.buf.subarray(at, at + e.valueLength));
      } else {
        value = Buffer.allocUnsafe(e.valueLength);
        await readFully(fh, value, e.valueOffset);
      }
      yield { key, commitTS: e.commitTS, tombstone: e.tombstone, expireAt: e.expireAt, value };
      pos = e.next;
    }
  } finally {
    await fh.close();
  }
}
