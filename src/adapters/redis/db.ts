/**
 * One logical Redis database (`redis/db_0/`) read lazily from the keyspace.
 *
 * Every per-key file is rendered from point reads and scans bounded to that
 * key's rows; directory listings page through their family's key range
 * (wide-column families skip over each key's rows after its first one); the
 * whole-scope sidecars (strings_ttl.jsonl, hll_ttl.jsonl, KEYMAP.jsonl) are
 * produced in one streaming pass.
 *
 * TTL routing follows the format owner's single ordered pass: an
 * `!redis|ttl|<k>` record belongs to the type whose record for <k> was seen
 * last before it in key order (string > HLL > list > hash); if none, it is
 * parked and claimed by the first of legacy zset blob, stream, set, zset that
 * appears for <k>. A collection meta value carrying an inline TTL owns the
 * key's TTL outright.
 */
import { batchedLines, type AdapterContext, type FileFactory } from '../types.js';
import type { KV } from '../../source/types.js';
import { ownedCopy } from '../../bytes.js';
import { nextKey, prefixEnd, type SnapshotView } from '../../source/range.js';
import { encodeSegment, needsKeymap, decodeSegment, isShaFallback } from '../../format/filename.js';
import { keymapLine, KEYMAP_FILE } from '../../format/keymap.js';
import { RecordError, type DirNode, type Entry, type FileNode, type Node } from '../../tree/node.js';
import { grown } from '../../tree/paths.js';
import {
  DecodeError,
  decodeCountMeta,
  decodeListMeta,
  decodeSimpleValue,
  decodeStreamEntry,
  decodeStreamMeta,
  decodeTtlValue,
  decodeZSetBlob,
  decodeZSetScore,
  HLL_VERSION,
  type SimpleValue,
  isNewFormat,
  STR_VERSION,
  type InlineTtl,
} from './codec.js';
import { cat, endOf, LIST_SEQ_BYTES, listMetaKey, mk, P, parseWide, STREAM_ID_BYTES, unmk, wideKey } from './keys.js';
import { hashJson, listJson, setJson, streamEntryLine, streamMetaLine, ttlLine, zsetJson } from './render.js';

export type BlobKind = 'strings' | 'hll';
export type WideKind = 'hashes' | 'lists' | 'sets' | 'zsets' | 'streams';
const WIDE_KINDS: WideKind[] = ['hashes', 'lists', 'sets', 'zsets', 'streams'];
const COLLECTION_KINDS = ['hashes', 'lists', 'sets', 'zsets'] as const;

export const STRINGS_TTL_FILE = 'strings_ttl.jsonl';
export const HLL_TTL_FILE = 'hll_ttl.jsonl';

/** A blob value decoded, or null when it does not decode (the record's own .bin then reports it). */
function simpleOrNull(raw: Buffer, version: number): SimpleValue | null {
  try {
    return decodeSimpleValue(raw, version);
  } catch (e) {
    if (e instanceof DecodeError) return null;
    throw e;
  }
}

/** Run a decoder; a DecodeError becomes a RecordError naming the key. */
function decoded<T>(key: Buffer, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DecodeError) throw new RecordError(key, e.message);
    throw e;
  }
}

/** Forward-only cursor over an ascending scan, for merge joins. */
class SeekCursor {
  private cur: KV | null | undefined;
  constructor(private readonly it: AsyncGenerator<KV>) {}
  /** The row whose key equals `key`, advancing past smaller keys; keys asked must ascend. */
  async seek(key: Buffer): Promise<KV | null> {
    for (;;) {
      if (this.cur === undefined) {
        const n = await this.it.next();
        this.cur = n.done ? null : n.value;
      }
      if (this.cur === null) return null;
      const c = Buffer.compare(this.cur.key, key);
      if (c === 0) return this.cur;
      if (c > 0) return null;
      this.cur = undefined;
    }
  }
  async close(): Promise<void> {
    await this.it.return(undefined);
  }
}

export class RedisDb {
  readonly view: SnapshotView;
  private readonly files: FileFactory;
  private readonly dirs = new Map<string, Promise<boolean>>();
  private readonly children = new Map<string, DirNode>();
  private readonly sidecarProbe = new Map<string, Promise<boolean>>();
  private readonly blobCensuses = new Map<BlobKind, BlobCensus>();
  private readonly collectionCensuses = new Map<Exclude<WideKind, 'streams'>, Promise<CollectionCensus | null>>();

  constructor(
    private readonly ctx: AdapterContext,
    readonly dirPath: string,
  ) {
    this.view = ctx.view;
    this.files = ctx.files;
  }

  // ------------------------------------------------------------ primitives

  private async anyIn(start: Buffer, end: Buffer | null): Promise<boolean> {
    return (await this.view.page(start, end, 1, true)).length > 0;
  }

  private anyUnder(prefix: Buffer): Promise<boolean> {
    return this.anyIn(prefix, endOf(prefix));
  }

  /** Meta-key ranges of a family whose `…|meta|d|` deltas share the meta prefix. */
  private metaRanges(meta: Buffer, delta: Buffer): [Buffer, Buffer | null][] {
    const out: [Buffer, Buffer | null][] = [[meta, delta]];
    const afterDelta = endOf(delta);
    if (afterDelta) out.push([afterDelta, endOf(meta)]);
    return out;
  }

  private async anyMeta(meta: Buffer, delta: Buffer): Promise<boolean> {
    for (const [s, e] of this.metaRanges(meta, delta)) if (await this.anyIn(s, e)) return true;
    return false;
  }

  /**
   * Distinct user keys of a wide-column family in [start,end), ascending by
   * (len, key). After a page, the cursor skips the rest of the last key's rows.
   */
  private async *wideUserKeys(prefix: Buffer, start: Buffer = prefix, end: Buffer | null = endOf(prefix)): AsyncGenerator<Buffer> {
    const limit = this.view.pageSize;
    let cursor = start;
    for (;;) {
      const page = await this.view.page(cursor, end, limit, true);
      let last: Buffer | null = null;
      let lastParsed = false;
      for (const kv of page) {
        const p = parseWide(kv.key, prefix);
        lastParsed = p !== null;
        if (!p) continue;
        if (last && p.userKey.equals(last)) continue;
        last = Buffer.from(p.userKey);
        yield last;
      }
      if (page.length < limit) return;
      const lastKey = page[page.length - 1]!.key;
      if (lastParsed && last) {
        const skip = endOf(wideKey(prefix, last));
        if (!skip) return;
        cursor = Buffer.compare(skip, lastKey) > 0 ? skip : nextKey(lastKey);
      } else cursor = nextKey(lastKey);
    }
  }

  private async *metaUserKeys(meta: Buffer, delta: Buffer): AsyncGenerator<Buffer> {
    for (const [s, e] of this.metaRanges(meta, delta)) yield* this.wideUserKeys(meta, s, e);
  }

  /**
   * Every user key of a family that the owner holds state for (streams: only
   * those with a meta row, the ones that get a file). A key may repeat (meta
   * row and member rows, list items): callers deduplicate.
   */
  private async *familyUserKeys(kind: WideKind): AsyncGenerator<Buffer> {
    switch (kind) {
      case 'hashes':
        yield* this.metaUserKeys(P.hashMeta, P.hashMetaDelta);
        yield* this.wideUserKeys(P.hashField);
        return;
      case 'sets':
        yield* this.metaUserKeys(P.setMeta, P.setMetaDelta);
        yield* this.wideUserKeys(P.setMember);
        return;
      case 'zsets':
        yield* this.metaUserKeys(P.zsetMeta, P.zsetMetaDelta);
        yield* this.wideUserKeys(P.zsetMember);
        for await (const kv of this.view.scanPrefix(P.zsetLegacy, { keysOnly: true })) yield kv.key.subarray(P.zsetLegacy.length);
        return;
      case 'streams':
        yield* this.wideUserKeys(P.streamMeta);
        return;
      case 'lists':
        for (const [s, e] of this.metaRanges(P.listMeta, P.listMetaDelta)) {
          for await (const kv of this.view.scan(s, e, { keysOnly: true })) yield kv.key.subarray(P.listMeta.length);
        }
        for await (const kv of this.view.scanPrefix(P.listItem, { keysOnly: true })) {
          const rest = kv.key.subarray(P.listItem.length);
          if (rest.length >= LIST_SEQ_BYTES) yield rest.subarray(0, rest.length - LIST_SEQ_BYTES);
        }
        return;
    }
  }

  /** Distinct user keys of a family passing `keep`, ascending by bytes. */
  async userKeys(kind: WideKind, keep: (k: Buffer) => boolean = () => true): Promise<Buffer[]> {
    const seen = new Set<string>();
    for await (const k of this.familyUserKeys(kind)) if (keep(k)) seen.add(mk(k));
    return [...seen].map(unmk).sort(Buffer.compare);
  }

  // ------------------------------------------------------------ existence

  /** Whether the owner would create `<kind>/` (it does for streams even when every stream lacks meta). */
  hasDir(kind: BlobKind | WideKind): Promise<boolean> {
    let p = this.dirs.get(kind);
    if (!p) {
      p = this.probeDir(kind);
      this.dirs.set(kind, p);
      p.catch(() => this.dirs.delete(kind));
    }
    return p;
  }

  private async probeDir(kind: BlobKind | WideKind): Promise<boolean> {
    switch (kind) {
      case 'strings':
        return this.anyUnder(P.str);
      case 'hll':
        return this.anyUnder(P.hll);
      case 'hashes':
        return (await this.anyUnder(P.hashField)) || this.anyMeta(P.hashMeta, P.hashMetaDelta);
      case 'lists':
        return (await this.anyUnder(P.listItem)) || this.anyMeta(P.listMeta, P.listMetaDelta);
      case 'sets':
        return (await this.anyUnder(P.setMember)) || this.anyMeta(P.setMeta, P.setMetaDelta);
      case 'zsets':
        return (await this.anyUnder(P.zsetMember)) || (await this.anyUnder(P.zsetLegacy)) || this.anyMeta(P.zsetMeta, P.zsetMetaDelta);
      case 'streams':
        return (await this.anyUnder(P.streamMeta)) || this.anyUnder(P.streamEntry);
    }
  }

  /**
   * Item rows of one list: `!lst|itm|<k><seq 8>`. Rows of lists whose names
   * extend <k> interleave with them (no length prefix); a page ending in such a
   * foreign row resumes after every key sharing its first 8 bytes past <k>,
   * where none of this list's keys can be.
   */
  private async *listItems(userKey: Buffer, keysOnly = false): AsyncGenerator<KV> {
    const prefix = cat(P.listItem, userKey);
    const end = endOf(prefix);
    const want = prefix.length + LIST_SEQ_BYTES;
    const limit = this.view.pageSize;
    let cursor = prefix;
    for (;;) {
      const page = await this.view.page(cursor, end, limit, keysOnly);
      for (const kv of page) if (kv.key.length === want) yield kv;
      if (page.length < limit) return;
      const lastKey = page[page.length - 1]!.key;
      cursor = nextKey(lastKey);
      if (lastKey.length > want) {
        const skip = endOf(lastKey.subarray(0, want));
        if (!skip) return;
        if (Buffer.compare(skip, cursor) > 0) cursor = skip;
      }
      if (end && Buffer.compare(cursor, end) >= 0) return;
    }
  }

  private async listItemsExist(userKey: Buffer): Promise<boolean> {
    const it = this.listItems(userKey, true);
    const first = await it.next();
    await it.return(undefined);
    return !first.done;
  }

  /** Whether the owner would hold state for `userKey` as this type (a file, except for meta-less streams). */
  async hasState(kind: WideKind, userKey: Buffer): Promise<boolean> {
    switch (kind) {
      case 'hashes':
        return (await this.view.get(wideKey(P.hashMeta, userKey))) !== null || this.anyUnder(wideKey(P.hashField, userKey));
      case 'sets':
        return (await this.view.get(wideKey(P.setMeta, userKey))) !== null || this.anyUnder(wideKey(P.setMember, userKey));
      case 'zsets':
        return (
          (await this.view.get(wideKey(P.zsetMeta, userKey))) !== null ||
          (await this.view.get(cat(P.zsetLegacy, userKey))) !== null ||
          this.anyUnder(wideKey(P.zsetMember, userKey))
        );
      case 'streams':
        return (await this.view.get(wideKey(P.streamMeta, userKey))) !== null || this.anyUnder(wideKey(P.streamEntry, userKey));
      case 'lists': {
        const mkey = listMetaKey(userKey);
        if (mkey && (await this.view.get(mkey)) !== null) return true;
        return this.listItemsExist(userKey);
      }
    }
  }

  // ------------------------------------------------------------ TTL

  /**
   * The expiry an `!redis|ttl|<k>` record gives a collection of this type, or
   * null when the record is absent or routed elsewhere.
   */
  async recordTtl(kind: WideKind, userKey: Buffer): Promise<bigint | null> {
    const tkey = cat(P.ttl, userKey);
    const raw = await this.view.get(tkey);
    if (raw === null) return null;
    let owner: WideKind | 'other' | null = null;
    if ((await this.view.get(cat(P.str, userKey))) !== null || (await this.view.get(cat(P.hll, userKey))) !== null) owner = 'other';
    else if (await this.hasState('lists', userKey)) owner = 'lists';
    else if (await this.hasState('hashes', userKey)) owner = 'hashes';
    else if ((await this.view.get(cat(P.zsetLegacy, userKey))) !== null) owner = 'zsets';
    else if (await this.hasState('streams', userKey)) owner = 'streams';
    else if (await this.hasState('sets', userKey)) owner = 'sets';
    else if (await this.hasState('zsets', userKey)) owner = 'zsets';
    if (owner !== kind) return null;
    return decoded(tkey, () => decodeTtlValue(raw));
  }

  /** Inline meta TTL wins (0 = none); otherwise the routed `!redis|ttl|` record. */
  private async collectionTtl(kind: WideKind, userKey: Buffer, inline: InlineTtl): Promise<bigint | null> {
    if (inline !== null) return inline === 0n ? null : inline;
    return this.recordTtl(kind, userKey);
  }

  // ------------------------------------------------------------ per-key rendering

  blobKey(kind: BlobKind, userKey: Buffer): Buffer {
    return cat(kind === 'strings' ? P.str : P.hll, userKey);
  }

  /** The .bin bytes; `known` is the raw value when the caller just read it. */
  async renderBlob(kind: BlobKind, userKey: Buffer, known: Buffer | null = null): Promise<Buffer> {
    const key = this.blobKey(kind, userKey);
    const raw = known ?? (await this.view.get(key));
    if (raw === null) throw new RecordError(key, 'record vanished');
    return decoded(key, () => decodeSimpleValue(raw, kind === 'strings' ? STR_VERSION : HLL_VERSION)).body;
  }

  private async metaInline(key: Buffer | null, decode: (raw: Buffer) => InlineTtl): Promise<InlineTtl> {
    if (!key) return null;
    const raw = await this.view.get(key);
    return raw === null ? null : decoded(key, () => decode(raw));
  }

  async renderHash(userKey: Buffer): Promise<Buffer> {
    const inline = await this.metaInline(wideKey(P.hashMeta, userKey), decodeCountMeta);
    const prefix = wideKey(P.hashField, userKey);
    const fields: [Buffer, Buffer][] = [];
    for await (const kv of this.view.scanPrefix(prefix)) fields.push([kv.key.subarray(prefix.length), kv.value]);
    return hashJson(fields, await this.collectionTtl('hashes', userKey, inline));
  }

  async renderList(userKey: Buffer): Promise<Buffer> {
    const inline = await this.metaInline(listMetaKey(userKey), decodeListMeta);
    const items: Buffer[] = [];
    for await (const kv of this.listItems(userKey)) items.push(kv.value);
    return listJson(items, await this.collectionTtl('lists', userKey, inline));
  }

  async renderSet(userKey: Buffer): Promise<Buffer> {
    const inline = await this.metaInline(wideKey(P.setMeta, userKey), decodeCountMeta);
    const prefix = wideKey(P.setMember, userKey);
    const members: Buffer[] = [];
    for await (const kv of this.view.scanPrefix(prefix, { keysOnly: true })) members.push(kv.key.subarray(prefix.length));
    return setJson(members, await this.collectionTtl('sets', userKey, inline));
  }

  async renderZSet(userKey: Buffer): Promise<Buffer> {
    const inline = await this.metaInline(wideKey(P.zsetMeta, userKey), decodeCountMeta);
    const prefix = wideKey(P.zsetMember, userKey);
    let members: [Buffer, number][] = [];
    for await (const kv of this.view.scanPrefix(prefix)) {
      members.push([kv.key.subarray(prefix.length), decoded(kv.key, () => decodeZSetScore(kv.value))]);
    }
    if (members.length === 0) {
      // No wide-column member rows: the legacy blob (if any) is the zset.
      const lkey = cat(P.zsetLegacy, userKey);
      const raw = await this.view.get(lkey);
      if (raw !== null) {
        const byMember = new Map<string, number>();
        for (const e of decoded(lkey, () => decodeZSetBlob(raw))) byMember.set(mk(e.member), e.score);
        members = [...byMember.entries()].map(([m, s]) => [unmk(m), s] as [Buffer, number]).sort((a, b) => Buffer.compare(a[0], b[0]));
      }
    }
    return zsetJson(members, await this.collectionTtl('zsets', userKey, inline));
  }

  async produceStream(userKey: Buffer, write: (chunk: Buffer) => void, drain: () => Promise<void>): Promise<void> {
    const mkey = wideKey(P.streamMeta, userKey);
    const raw = await this.view.get(mkey);
    if (raw === null) throw new RecordError(mkey, 'stream meta vanished');
    const meta = decoded(mkey, () => decodeStreamMeta(raw));
    const prefix = wideKey(P.streamEntry, userKey);
    const out = batchedLines(write, drain);
    for await (const kv of this.view.scanPrefix(prefix)) {
      const id = kv.key.subarray(prefix.length);
      if (id.length !== STREAM_ID_BYTES) throw new RecordError(kv.key, 'malformed stream entry key');
      const fields = decoded(kv.key, () => decodeStreamEntry(kv.value));
      const pending = out.push(streamEntryLine(id.readBigUInt64BE(0), id.readBigUInt64BE(8), fields));
      if (pending) await pending;
    }
    const last = out.push(streamMetaLine(meta.length, meta.lastMs, meta.lastSeq, await this.collectionTtl('streams', userKey, meta.inline)));
    if (last) await last;
    out.flush();
  }

  // ------------------------------------------------------------ sidecars

  /** Which sidecar a `!redis|ttl|` record lands in, given the key's string and HLL values. */
  private static ttlSidecar(str: Buffer | null, hll: Buffer | null): BlobKind | null {
    const owned = (str !== null && isNewFormat(str, STR_VERSION)) || (hll !== null && isNewFormat(hll, HLL_VERSION));
    if (str !== null) return owned ? null : 'strings';
    if (hll !== null) return owned ? null : 'hll';
    return null;
  }

  /**
   * strings_ttl.jsonl / hll_ttl.jsonl in the owner's order: inline TTLs of
   * new-format values in key order, then `!redis|ttl|` records routed to this
   * sidecar (legacy values) in key order. One pass over this type's values
   * emits the first part and marks which TTL records route here (a bit per
   * record); a keys-only pass over the TTL records emits the second part.
   */
  private async *sidecarLines(kind: BlobKind, census?: BlobCensus): AsyncGenerator<string> {
    const own = kind === 'strings' ? P.str : P.hll;
    const other = kind === 'strings' ? P.hll : P.str;
    const version = kind === 'strings' ? STR_VERSION : HLL_VERSION;
    const routed: number[] = [];
    const ttlIt = this.view.scanPrefix(P.ttl, { keysOnly: true });
    // For strings the HLL's format matters (a new-format HLL owns the key's TTL); for HLLs only a string's presence does.
    const otherCur = new SeekCursor(this.view.scanPrefix(other, { keysOnly: kind === 'hll' }));
    try {
      let ttl = await ttlIt.next();
      let idx = 0;
      for await (const page of this.view.scanPages(own, prefixEnd(own))) for (const kv of page) {
        const uk = kv.key.subarray(own.length);
        // A TTL record with no `own` record for its key never routes to this sidecar.
        while (!ttl.done && Buffer.compare(ttl.value.key.subarray(P.ttl.length), uk) < 0) {
          ttl = await ttlIt.next();
          idx++;
        }
        if (!ttl.done && ttl.value.key.subarray(P.ttl.length).equals(uk)) {
          const o = (await otherCur.seek(cat(other, uk)))?.value ?? null;
          const file = kind === 'strings' ? RedisDb.ttlSidecar(kv.value, o) : RedisDb.ttlSidecar(o, kv.value);
          if (file === kind) routed.push(idx);
        }
        const v = simpleOrNull(kv.value, version);
        const seg = census ? census.add(uk, v) : null;
        if (v !== null && v.expireAtMs !== 0n) yield ttlLine(seg ?? encodeSegment(uk), v.expireAtMs);
      }
    } finally {
      await ttlIt.return(undefined);
      await otherCur.close();
    }
    if (census) this.blobCensuses.set(kind, census);
    if (routed.length === 0) return;
    let idx = 0;
    let next = 0;
    for await (const kv of this.view.scanPrefix(P.ttl, { keysOnly: true })) {
      if (idx++ !== routed[next]) continue;
      next++;
      const raw = await this.view.get(kv.key);
      if (raw === null) throw new RecordError(kv.key, 'ttl record vanished');
      yield ttlLine(encodeSegment(kv.key.subarray(P.ttl.length)), decoded(kv.key, () => decodeTtlValue(raw)));
      if (next >= routed.length) return;
    }
  }

  /**
   * KEYMAP.jsonl in the owner's write order: each SHA-fallback name once per
   * use — blob then inline TTL line (hll, then strings, in key order), TTL
   * records routed to a sidecar, then hashes, lists, sets, zsets, streams
   * sorted by user key.
   */
  private async *keymapLines(): AsyncGenerator<string> {
    const line = (k: Buffer): string => keymapLine(encodeSegment(k), k, 'sha-fallback');
    const fallback = (k: Buffer): boolean => needsKeymap(encodeSegment(k));
    // Every type's pass starts now, side by side (the source serves one while this renders another).
    const censuses = new Map(COLLECTION_KINDS.map((k) => [k, this.collectionCensus(k)] as const));
    for (const p of censuses.values()) p.catch(() => {}); // awaited below, in order
    // The blob types' lines come from the pass that makes their *_ttl.jsonl (see blobCensus).
    const blobs = (['hll', 'strings'] as BlobKind[]).map((k) => this.blobCensus(k));
    for (const p of blobs) p.catch(() => {});
    for (const p of blobs) yield* (await p).keymap;
    for await (const kv of this.view.scanPrefix(P.ttl, { keysOnly: true })) {
      const uk = kv.key.subarray(P.ttl.length);
      if (!fallback(uk)) continue;
      const file = RedisDb.ttlSidecar(await this.view.get(cat(P.str, uk)), await this.view.get(cat(P.hll, uk)));
      if (file !== null) yield line(uk);
    }
    for (const kind of WIDE_KINDS) {
      const c = kind === 'streams' ? null : await censuses.get(kind)!;
      const keys = c ? c.fallbackKeys : await this.userKeys(kind, fallback);
      for (const uk of keys) yield line(uk);
    }
  }

  /**
   * What the pass over a blob type's values that makes its *_ttl.jsonl also learned: the
   * type's file names, its KEYMAP lines, and (kept in the content cache) its files' bytes.
   * Made by producing that sidecar (once; it is cached like any file), so a copy's listing of
   * db_0 (it asks for the sidecars' sizes) reads each string once for the sidecar, KEYMAP.jsonl
   * and strings/ together.
   */
  private async blobCensus(kind: BlobKind): Promise<BlobCensus> {
    if (!this.blobCensuses.has(kind)) {
      // The census is made once the pass over the values is done; what fails after it (a
      // corrupt `!redis|ttl|` record routed to the sidecar) is the sidecar's own failure.
      await this.sidecarFile(kind === 'strings' ? STRINGS_TTL_FILE : HLL_TTL_FILE)
        .size()
        .catch((e: unknown) => {
          if (!this.blobCensuses.has(kind)) throw e;
        });
    }
    return this.blobCensuses.get(kind)!;
  }

  /** A blob type's census, if the pass that makes its *_ttl.jsonl has run (it does not start one). */
  blobCensusMade(kind: BlobKind): BlobCensus | undefined {
    return this.blobCensuses.get(kind);
  }

  /**
   * A collection type's files rendered once (collectionEntries) and kept in the content
   * cache, for its directory's listing and KEYMAP.jsonl alike; null when its rows exceed the
   * room's share (then both fall back to keys-only passes).
   */
  collectionCensus(kind: Exclude<WideKind, 'streams'>): Promise<CollectionCensus | null> {
    let p = this.collectionCensuses.get(kind);
    if (!p) {
      p = this.collectionEntries(kind).then((keys) => (keys ? new CollectionCensus(kind, keys, this.files, `${this.dirPath}/${kind}`) : null));
      this.collectionCensuses.set(kind, p);
      p.catch(() => this.collectionCensuses.delete(kind));
    }
    return p;
  }

  private sidecar(name: string): { gen: () => AsyncGenerator<string> } {
    if (name === STRINGS_TTL_FILE) return { gen: () => this.sidecarLines('strings') };
    if (name === HLL_TTL_FILE) return { gen: () => this.sidecarLines('hll') };
    return { gen: () => this.keymapLines() };
  }

  /** Whether a sidecar has at least one line (the owner writes no empty sidecar). */
  private hasSidecar(name: string): Promise<boolean> {
    let p = this.sidecarProbe.get(name);
    if (!p && name !== KEYMAP_FILE) {
      // A *_ttl.jsonl is produced whole to say: KEYMAP.jsonl needs the same pass (blobCensus),
      // and a listing of db_0 with attributes asks for the sidecar's size next anyway.
      p = this.sidecarFile(name)
        .size()
        .then(
          (size) => size > 0,
          (e: unknown) => {
            // A corrupt record: list the file, and let reading it fail (EIO).
            if (e instanceof RecordError) return true;
            throw e;
          },
        );
      this.sidecarProbe.set(name, p);
      p.catch(() => this.sidecarProbe.delete(name));
    }
    if (!p) {
      p = (async () => {
        const it = this.sidecar(name).gen();
        try {
          const first = await it.next();
          return !first.done;
        } catch (e) {
          // A corrupt record reached before the first line: list the file, and let reading it fail (EIO).
          if (e instanceof RecordError) return true;
          throw e;
        } finally {
          await it.return(undefined);
        }
      })();
      this.sidecarProbe.set(name, p);
      p.catch(() => this.sidecarProbe.delete(name));
    }
    return p;
  }

  private sidecarFile(name: string): FileNode {
    return this.files.streamed(`${this.dirPath}/${name}`, async (write, drain, signal) => {
      const out = batchedLines(write, drain);
      const kind: BlobKind | null = name === STRINGS_TTL_FILE ? 'strings' : name === HLL_TTL_FILE ? 'hll' : null;
      const lines = kind ? this.sidecarLines(kind, new BlobCensus(kind, this.files, `${this.dirPath}/${kind}`, this.ctx.roomCacheBytes)) : this.sidecar(name).gen();
      for await (const l of lines) {
        signal.throwIfAborted(); // few lines may come of many keys: write() alone would check too seldom
        const pending = out.push(l);
        if (pending) await pending;
      }
      out.flush();
    });
  }

  // ------------------------------------------------------------ tree

  private static readonly SUBDIRS: (BlobKind | WideKind)[] = ['strings', 'hll', 'hashes', 'lists', 'sets', 'zsets', 'streams'];
  private static readonly SIDECARS = [STRINGS_TTL_FILE, HLL_TTL_FILE, KEYMAP_FILE];

  /** Whether db_0 has anything at all (every sidecar line implies a string or HLL record). */
  async exists(): Promise<boolean> {
    for (const k of RedisDb.SUBDIRS) if (await this.hasDir(k)) return true;
    return false;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    // The sidecars' passes run side by side with each other and with the subdirectory probes.
    const sidecars = RedisDb.SIDECARS.map((s) => this.hasSidecar(s));
    for (const p of sidecars) p.catch(() => {}); // awaited below, in order
    for (const k of RedisDb.SUBDIRS) if (await this.hasDir(k)) out.push(k);
    for (let i = 0; i < sidecars.length; i++) if (await sidecars[i]) out.push(RedisDb.SIDECARS[i]!);
    return out;
  }

  async lookup(name: string): Promise<Node | null> {
    if ((RedisDb.SUBDIRS as string[]).includes(name)) {
      const kind = name as BlobKind | WideKind;
      if (!(await this.hasDir(kind))) return null;
      return this.child(kind);
    }
    if (RedisDb.SIDECARS.includes(name)) return (await this.hasSidecar(name)) ? this.sidecarFile(name) : null;
    return null;
  }

  private child(kind: BlobKind | WideKind): DirNode {
    let d = this.children.get(kind);
    if (!d) {
      d = new KeyDir(this, kind, `${this.dirPath}/${kind}`, this.files);
      this.children.set(kind, d);
    }
    return d;
  }

  /**
   * The files of hashes/, lists/, sets/ or zsets/ in listing order (by user key), from one
   * pass over the type's meta and member rows with values, each rendered as its lookup would
   * render it. A key whose file depends on more than its own rows is listed without bytes and
   * its lookup decides: no meta carrying an inline TTL (a `!redis|ttl|` record may then route
   * to it), a legacy zset blob, a row that does not decode. Null when the rows held exceed
   * the room's cache share (a huge collection): the caller lists names only.
   */
  async collectionEntries(kind: Exclude<WideKind, 'streams'>): Promise<RenderedKey[] | null> {
    // Page at a time, one small loop per row shape (CollectionRows): one loop over every
    // kind's rows was re-optimised by V8 as each kind reached a branch it had not seen.
    const rows = new CollectionRows(this.ctx.roomCacheBytes);
    const [meta, delta, member] = COLLECTION_PREFIXES[kind];
    for (const [s, e] of this.metaRanges(meta, delta)) {
      for await (const page of this.view.scanPages(s, e)) if (!(kind === 'lists' ? rows.listMetas(page, meta) : rows.wideMetas(page, meta))) return null;
    }
    for await (const page of this.view.scanPages(member, endOf(member), { keysOnly: kind === 'sets' })) {
      const ok = kind === 'lists' ? rows.listItems(page, member) : kind === 'sets' ? rows.setMembers(page, member) : rows.memberPairs(page, member);
      if (!ok) return null;
    }
    if (kind === 'zsets') for await (const page of this.view.scanPages(P.zsetLegacy, prefixEnd(P.zsetLegacy), { keysOnly: true })) rows.legacyBlobs(page, P.zsetLegacy.length);
    const out: RenderedKey[] = [];
    // Views of the rows' arena: the user key is copied, the rendered file is the render's own.
    rows.each((c) => out.push({ uk: Buffer.from(c.uk), bytes: this.renderCollection(kind, c) }));
    return out;
  }

  /** The file of one collection from its own rows, or undefined when it needs its lookup (see collectionEntries). */
  private renderCollection(kind: Exclude<WideKind, 'streams'>, c: CollectionKey): Buffer | undefined {
    if (c.meta === null || c.legacy) return undefined;
    try {
      const inline = kind === 'lists' ? decodeListMeta(c.meta) : decodeCountMeta(c.meta);
      if (inline === null) return undefined;
      const ttl = inline === 0n ? null : inline;
      const r = c.rows;
      switch (kind) {
        case 'hashes': {
          const fields: [Buffer, Buffer][] = [];
          for (let i = 0; i + 1 < r.length; i += 2) fields.push([r[i]!, r[i + 1]!]);
          return hashJson(fields, ttl);
        }
        case 'lists':
          return listJson(r, ttl);
        case 'sets':
          return setJson(r, ttl);
        case 'zsets': {
          const members: [Buffer, number][] = [];
          for (let i = 0; i + 1 < r.length; i += 2) members.push([r[i]!, decodeZSetScore(r[i + 1]!)]);
          return zsetJson(members, ttl);
        }
      }
    } catch (e) {
      if (e instanceof DecodeError) return undefined; // the file's own read reports the record
      throw e;
    }
  }

  /** All file-bearing user keys of a subdirectory. */
  async dirUserKeys(kind: BlobKind | WideKind): Promise<Buffer[]> {
    if (kind === 'strings' || kind === 'hll') {
      const prefix = kind === 'strings' ? P.str : P.hll;
      const out: Buffer[] = [];
      for await (const kv of this.view.scanPrefix(prefix, { keysOnly: true })) out.push(kv.key.subarray(prefix.length));
      return out;
    }
    return this.userKeys(kind);
  }

  /** Whether `<kind>/<k>` exists: the owner's state for <k>, and for streams a meta row. */
  async fileExists(kind: WideKind, userKey: Buffer): Promise<boolean> {
    if (kind === 'streams') return (await this.view.get(wideKey(P.streamMeta, userKey))) !== null;
    return this.hasState(kind, userKey);
  }
}

/** A directory's file names learned by a pass over its records, held until its listing takes them; SHA-fallback names -> user keys. */
class Census {
  protected names: string[] | null = [];
  readonly fallbacks = new Map<string, Buffer>();

  /** The names, once (the directory's listing keeps them from then on); null when none were held. */
  takeNames(): string[] | null {
    const n = this.names;
    this.names = null;
    return n;
  }
}

/**
 * What one pass over a blob type's values learns besides its *_ttl.jsonl lines: each
 * file's name, the KEYMAP lines of its SHA-fallback names (a blob line, and one more for an
 * inline TTL), and each file's bytes, kept in the content cache under the file's path.
 * Names are held until the directory's listing takes them, up to a byte budget.
 */
class BlobCensus extends Census {
  private held = 0;
  readonly keymap: string[] = [];
  private readonly ext: string;

  constructor(
    kind: BlobKind,
    private readonly files: FileFactory,
    private readonly dir: string,
    private readonly budget: number,
  ) {
    super();
    this.ext = EXT[kind];
  }

  /** One record of the pass (v null: it does not decode); returns its encoded segment. */
  add(uk: Buffer, v: SimpleValue | null): string {
    const seg = encodeSegment(uk);
    const name = seg + this.ext;
    if (needsKeymap(seg)) {
      this.fallbacks.set(seg, Buffer.from(uk));
      const line = keymapLine(seg, uk, 'sha-fallback');
      this.keymap.push(line);
      if (v !== null && v.expireAtMs !== 0n) this.keymap.push(line);
    }
    if (this.names) {
      this.held += name.length + 16;
      if (this.held > this.budget) this.names = null; // too many to hold: the listing makes its own pass
      else this.names.push(name);
    }
    if (v !== null) this.files.keep(`${this.dir}/${name}`, v.body);
    return seg;
  }
}

/** A collection type rendered once (collectionEntries): bytes in the content cache, names until the listing takes them. */
class CollectionCensus extends Census {
  /** User keys with SHA-fallback names, ascending (KEYMAP.jsonl's lines for the type). */
  readonly fallbackKeys: Buffer[] = [];

  constructor(kind: Exclude<WideKind, 'streams'>, keys: RenderedKey[], files: FileFactory, dir: string) {
    super();
    const ext = EXT[kind];
    for (const c of keys) {
      const seg = encodeSegment(c.uk);
      if (needsKeymap(seg)) {
        this.fallbacks.set(seg, c.uk);
        this.fallbackKeys.push(c.uk);
      }
      const name = seg + ext;
      this.names!.push(name);
      if (c.bytes) files.keep(`${dir}/${name}`, c.bytes);
    }
  }
}

/** One user key of a collection directory while its listing is made (collectionEntries). */
interface CollectionKey {
  uk: Buffer;
  /** The exact meta row's value, if any. */
  meta: Buffer | null;
  /** Member rows in key order: values (lists), members (sets), or name/value pairs (hashes: field, value; zsets: member, score). */
  rows: Buffer[];
  /** A legacy zset blob exists for the key. */
  legacy: boolean;
}

/** A collection key in listing order with its file's bytes (undefined: its lookup renders it). */
interface RenderedKey {
  uk: Buffer;
  bytes: Buffer | undefined;
}

/** Meta, delta and member prefixes of each collection type. */
const COLLECTION_PREFIXES: Record<Exclude<WideKind, 'streams'>, readonly [Buffer, Buffer, Buffer]> = {
  hashes: [P.hashMeta, P.hashMetaDelta, P.hashField],
  sets: [P.setMeta, P.setMetaDelta, P.setMember],
  zsets: [P.zsetMeta, P.zsetMetaDelta, P.zsetMember],
  lists: [P.listMeta, P.listMetaDelta, P.listItem],
};

/**
 * What one key's Map entry costs CollectionRows besides its latin1 string's characters: set so
 * that heldBytes is not below what a census really holds (see its test).
 */
const KEY_MAP_BYTES = 96;
const NO_ROW = -1;

/**
 * The rows of one collection type gathered by collectionEntries, by user key, while what
 * they cost in memory stays within `budget` (each method returns false once it does not).
 *
 * Rows are copied back to back into one arena, with typed arrays for their ends and, per
 * key, a linked list of its member rows (a list's items for one key need not be adjacent in
 * key order: `a`+seq can sort on both sides of a longer key). Held as a Buffer a row and a
 * record a key, they cost 3-5x the bytes plus 48 a row that were counted (node --expose-gc,
 * heapUsed + arrayBuffers: ~130 bytes a row, ~500 a key), so a census of many small
 * collections held several times the room's share: a snapshot `tar redis/` at --cache-size
 * 64MiB peaked at 190-202 MiB on the bench's Redis mix and 251-274 MiB at twice its size;
 * 170-174 and 192-206 this way, in the same time. Views of the arena exist only while a key
 * is rendered (each).
 */
export class CollectionRows {
  private readonly index = new Map<string, number>();
  /** The index's cost (KEY_MAP_BYTES and the string's characters a key). */
  private mapBytes = 0;
  private arena = Buffer.allocUnsafe(64 * 1024);
  private arenaUsed = 0;
  /** Row i is arena[i ? rowEnd[i - 1] : 0, rowEnd[i]). */
  private rowEnd = new Uint32Array(1024);
  /** The next member row of the same key, or NO_ROW. */
  private rowNext = new Int32Array(1024);
  private rows = 0;
  /** Per key: its user key's row, its meta row, its first and last member rows (NO_ROW: none), legacy blob. */
  private keyUk = new Int32Array(256);
  private keyMeta = new Int32Array(256);
  private keyFirst = new Int32Array(256);
  private keyLast = new Int32Array(256);
  private keyLegacy = new Uint8Array(256);
  private keys = 0;

  constructor(private readonly budget: number) {}

  /** Append `b` as a row; returns its index. */
  private row(b: Buffer): number {
    this.arena = grown(this.arena, this.arenaUsed + b.length, (n) => Buffer.allocUnsafe(n));
    this.arenaUsed += b.copy(this.arena, this.arenaUsed);
    const i = this.rows++;
    if (i === this.rowEnd.length) {
      this.rowEnd = grown(this.rowEnd, i + 1, (n) => new Uint32Array(n));
      this.rowNext = grown(this.rowNext, i + 1, (n) => new Int32Array(n));
    }
    this.rowEnd[i] = this.arenaUsed;
    this.rowNext[i] = NO_ROW;
    return i;
  }

  private rowStart(i: number): number {
    return i === 0 ? 0 : this.rowEnd[i - 1]!;
  }

  private view(i: number): Buffer {
    return this.arena.subarray(this.rowStart(i), this.rowEnd[i]!);
  }

  /** The index of `uk`'s key, made on first sight. */
  private at(uk: Buffer): number {
    const m = mk(uk);
    let k = this.index.get(m);
    if (k === undefined) {
      k = this.keys++;
      if (k === this.keyUk.length) {
        const n = k + 1;
        this.keyUk = grown(this.keyUk, n, (c) => new Int32Array(c));
        this.keyMeta = grown(this.keyMeta, n, (c) => new Int32Array(c));
        this.keyFirst = grown(this.keyFirst, n, (c) => new Int32Array(c));
        this.keyLast = grown(this.keyLast, n, (c) => new Int32Array(c));
        this.keyLegacy = grown(this.keyLegacy, n, (c) => new Uint8Array(c));
      }
      this.index.set(m, k);
      this.keyUk[k] = this.row(uk);
      this.keyMeta[k] = NO_ROW;
      this.keyFirst[k] = NO_ROW;
      this.keyLast[k] = NO_ROW;
      this.keyLegacy[k] = 0;
      this.mapBytes += KEY_MAP_BYTES + m.length;
    }
    return k;
  }

  /** Append a member row to key k. */
  private member(k: number, b: Buffer): void {
    const r = this.row(b);
    const last = this.keyLast[k]!;
    if (last === NO_ROW) this.keyFirst[k] = r;
    else this.rowNext[last] = r;
    this.keyLast[k] = r;
  }

  /** What the rows held cost: the arena and arrays as allocated (with their growth room), and the index. */
  get heldBytes(): number {
    const keyArrays = this.keyUk.byteLength + this.keyMeta.byteLength + this.keyFirst.byteLength + this.keyLast.byteLength + this.keyLegacy.byteLength;
    return this.arena.length + this.rowEnd.byteLength + this.rowNext.byteLength + keyArrays + this.mapBytes;
  }

  private within(): boolean {
    return this.heldBytes <= this.budget;
  }

  /** `<listMeta><k>` rows. */
  listMetas(page: KV[], meta: Buffer): boolean {
    for (const kv of page) {
      const k = this.at(kv.key.subarray(meta.length));
      this.keyMeta[k] = this.row(kv.value);
      if (!this.within()) return false;
    }
    return true;
  }

  /** `<meta><len><k>[tail]` rows: only the exact one is the key's meta; a longer one only says the key has state. */
  wideMetas(page: KV[], meta: Buffer): boolean {
    for (const kv of page) {
      const p = parseWide(kv.key, meta);
      if (!p) continue;
      const k = this.at(p.userKey);
      if (p.tail.length === 0) this.keyMeta[k] = this.row(kv.value);
      if (!this.within()) return false;
    }
    return true;
  }

  /** `<listItem><k><seq>` rows: the item values, in key (sequence) order. */
  listItems(page: KV[], member: Buffer): boolean {
    for (const kv of page) {
      const rest = kv.key.subarray(member.length);
      if (rest.length < LIST_SEQ_BYTES) continue;
      this.member(this.at(rest.subarray(0, rest.length - LIST_SEQ_BYTES)), kv.value);
      if (!this.within()) return false;
    }
    return true;
  }

  /** `<setMember><len><k><member>` keys: the members. */
  setMembers(page: KV[], member: Buffer): boolean {
    for (const kv of page) {
      const p = parseWide(kv.key, member);
      if (!p) continue;
      this.member(this.at(p.userKey), p.tail);
      if (!this.within()) return false;
    }
    return true;
  }

  /** `<field|member><len><k><name>` rows with values: name, value pairs (hash fields, zset scores). */
  memberPairs(page: KV[], member: Buffer): boolean {
    for (const kv of page) {
      const p = parseWide(kv.key, member);
      if (!p) continue;
      const k = this.at(p.userKey);
      this.member(k, p.tail);
      this.member(k, kv.value);
      if (!this.within()) return false;
    }
    return true;
  }

  /** `<zsetLegacy><k>` keys: the key has a legacy blob (its lookup decides its file). */
  legacyBlobs(page: KV[], prefixLength: number): void {
    for (const kv of page) this.keyLegacy[this.at(kv.key.subarray(prefixLength))] = 1;
  }

  /**
   * Each key in listing order (by user key), its rows as views of the arena: copy what is
   * kept (a view keeps the whole arena alive).
   */
  each(fn: (c: CollectionKey) => void): void {
    const order = new Int32Array(this.keys);
    for (let k = 0; k < this.keys; k++) order[k] = k;
    const a = this.arena;
    order.sort((x, y) => {
      const rx = this.keyUk[x]!;
      const ry = this.keyUk[y]!;
      return a.compare(a, this.rowStart(ry), this.rowEnd[ry]!, this.rowStart(rx), this.rowEnd[rx]!);
    });
    for (const k of order) {
      const rows: Buffer[] = [];
      for (let r = this.keyFirst[k]!; r !== NO_ROW; r = this.rowNext[r]!) rows.push(this.view(r));
      const meta = this.keyMeta[k]!;
      fn({ uk: this.view(this.keyUk[k]!), meta: meta === NO_ROW ? null : this.view(meta), rows, legacy: this.keyLegacy[k] === 1 });
    }
  }
}

const EXT: Record<BlobKind | WideKind, string> = {
  strings: '.bin',
  hll: '.bin',
  hashes: '.json',
  lists: '.json',
  sets: '.json',
  zsets: '.json',
  streams: '.jsonl',
};

/** `strings/`, `hll/`, `hashes/`, …: one file per user key, named by its encoded segment. */
class KeyDir implements DirNode {
  readonly kind = 'dir' as const;
  /** SHA-fallback names seen by list() -> user key (fallback names are not reversible). */
  private readonly fallbacks = new Map<string, Buffer>();
  private listed = false;

  constructor(
    private readonly db: RedisDb,
    private readonly type: BlobKind | WideKind,
    private readonly path: string,
    private readonly files: AdapterContext['files'],
  ) {
    if (type === 'strings' || type === 'hll') this.entries = () => this.blobEntries(type);
    else if (type !== 'streams') this.entries = () => this.collectionEntries(type);
  }

  /**
   * Every type but streams: the listing from a census (a pass over the type's records that
   * named its files and kept their bytes in the content cache), so the listing pass renders
   * nothing twice.
   */
  readonly entries?: () => AsyncGenerator<Entry[]>;

  /** The listing a census learned (taken once), its SHA-fallback names noted; null when it holds none. */
  private fromCensus(c: Census | null | undefined): Entry[] | null {
    const names = c?.takeNames();
    if (!c || !names) return null;
    for (const [seg, uk] of c.fallbacks) this.fallbacks.set(seg, uk);
    this.listed = true;
    return names.map((name): Entry => ({ name, kind: 'file' }));
  }

  /** hashes/, lists/, sets/, zsets/: rendered once for the database (collectionCensus), else names only. */
  private async *collectionEntries(kind: Exclude<WideKind, 'streams'>): AsyncGenerator<Entry[]> {
    yield this.fromCensus(await this.db.collectionCensus(kind)) ?? (await this.list()).map((name): Entry => ({ name, kind: 'file' }));
  }

  /** strings/ and hll/: the census of the pass that made the type's *_ttl.jsonl (a copy lists db_0 first), else a pass of its own. */
  private async *blobEntries(kind: BlobKind): AsyncGenerator<Entry[]> {
    const known = this.fromCensus(this.db.blobCensusMade(kind));
    if (known) {
      yield known;
      return;
    }
    // A record that does not decode is named without bytes: its own lookup and read report it.
    const prefix = kind === 'strings' ? P.str : P.hll;
    const version = kind === 'strings' ? STR_VERSION : HLL_VERSION;
    const c = new BlobCensus(kind, this.files, this.path, Infinity);
    for await (const kv of this.db.view.scanPrefix(prefix)) c.add(kv.key.subarray(prefix.length), simpleOrNull(kv.value, version));
    yield this.fromCensus(c)!;
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    const keys = await this.db.dirUserKeys(this.type);
    keys.sort(Buffer.compare);
    for (const uk of keys) {
      const seg = encodeSegment(uk);
      if (needsKeymap(seg)) this.fallbacks.set(seg, Buffer.from(uk));
      names.push(seg + EXT[this.type]);
    }
    this.listed = true;
    return names;
  }

  private async resolve(seg: string): Promise<Buffer | null> {
    if (isShaFallback(seg)) {
      if (!this.fallbacks.has(seg) && !this.listed) await this.list();
      return this.fallbacks.get(seg) ?? null;
    }
    let uk: Buffer;
    try {
      uk = decodeSegment(seg);
    } catch {
      return null;
    }
    return encodeSegment(uk) === seg ? uk : null;
  }

  async lookup(name: string): Promise<Node | null> {
    const ext = EXT[this.type];
    if (!name.endsWith(ext)) return null;
    const uk = await this.resolve(name.slice(0, -ext.length));
    if (!uk) return null;
    const cacheKey = `${this.path}/${name}`;
    // Rendered before (a copy looks every file up twice: readdirplus, then the read, with
    // the nodes evicted in between): it exists, and its bytes are at hand; no existence read.
    if (this.files.cached(cacheKey)) return this.node(uk, cacheKey, null);
    if (this.type === 'strings' || this.type === 'hll') {
      // The existence read doubles as the first render's read (getattr follows lookup).
      const raw = await this.db.view.get(this.db.blobKey(this.type, uk));
      return raw === null ? null : this.node(uk, cacheKey, raw);
    }
    if (!(await this.db.fileExists(this.type, uk))) return null;
    return this.node(uk, cacheKey, null);
  }

  /** The file of user key `key` (known to exist); `raw`: its blob value when already read. */
  private node(key: Buffer, cacheKey: string, raw: Buffer | null): Node {
    // The node may sit in the tree's node cache for long: its key must not pin a pool slab.
    const uk = ownedCopy(key);
    switch (this.type) {
      case 'strings':
      case 'hll': {
        const t = this.type;
        let known = raw;
        return this.files.rendered(cacheKey, () => {
          const k = known;
          known = null;
          return this.db.renderBlob(t, uk, k);
        });
      }
      case 'hashes':
        return this.files.rendered(cacheKey, () => this.db.renderHash(uk));
      case 'lists':
        return this.files.rendered(cacheKey, () => this.db.renderList(uk));
      case 'sets':
        return this.files.rendered(cacheKey, () => this.db.renderSet(uk));
      case 'zsets':
        return this.files.rendered(cacheKey, () => this.db.renderZSet(uk));
      case 'streams':
        return this.files.streamed(cacheKey, (write, drain) => this.db.produceStream(uk, write, drain));
    }
  }
}
