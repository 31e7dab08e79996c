/**
 * One table's item key space: which generations are shown, how an item key
 * names its file, and the reverse (a file name -> the item key to read).
 *
 * The owner names files from the item's own key attributes; here names come
 * from the key (raw key bytes + the schema's attribute type), which agrees for
 * every well-formed record and lets `ls` run keys-only scans and `cat` run one
 * point read. Rendering re-derives the name from the attributes and refuses a
 * record whose attributes disagree with its key.
 */
import { decodeSegment, encodeBinarySegment, encodeSegment, isShaFallback } from '../../format/filename.js';
import { nextKey, prefixEnd, type SnapshotView } from '../../source/range.js';
import { RecordError, type Entry } from '../../tree/node.js';
import type { KV } from '../../source/types.js';
import { ownedCopy } from '../../bytes.js';
import {
  b64url,
  canonicalNumber,
  canonicalToNumericKey,
  decodeRawB64Url,
  ITEM_MAGIC,
  itemGenPrefix,
  numericKeyToCanonical,
  ORDERED_KEY_ENCODING,
  orderedSegment,
  orderedSegmentPrefix,
  readOrderedSegment,
} from './keys.js';
import { decodeItem, ProtoError, type Item, type TableSchema } from './proto.js';
import { keyAttrSegment, renderItem } from './render.js';

export type KeyType = 'S' | 'N' | 'B';

/** One generation's item range. */
export interface GenRange {
  gen: bigint;
  prefix: Buffer;
  end: Buffer | null;
  /** Legacy base64 key layout (key_encoding_version < 2, or a migration source). */
  legacy: boolean;
}

/** File-name segments of one item: hash, and range for hash+range tables. */
export interface ItemNames {
  h: string;
  r: string | null;
}

interface Bounds {
  start: Buffer;
  end: Buffer | null;
}

/** What a file-name segment tells about the raw key bytes. */
type RawHint =
  | { kind: 'exact'; raw: Buffer; guess: boolean }
  | { kind: 'prefix'; raw: Buffer }
  /** No record of this generation can carry the name. */
  | { kind: 'impossible' }
  /** Nothing known: scan the generation. */
  | { kind: 'none' };

/**
 * What hashNames() reads of the pk directories when it reads values (see there): each
 * directory's records packed (packRecords), for its entries() to list and render
 * without a scan.
 */
export interface PkListings {
  /** Bytes of packed records the values pass may hold before it goes on keys-only. */
  budget: number;
  keep(h: string, packed: Buffer): void;
}

/** One pk directory's records while the values pass is inside its key range. */
interface PkRun {
  h: string;
  end: Buffer | null;
  records: KV[];
  bytes: number;
}

/** Bytes a packed run costs beside its records (the Buffer object, the map entry that holds it). */
const PK_RUN_OVERHEAD = 160;

/**
 * Records in one buffer: per record its key's and value's lengths (uint32 LE), then both.
 * Held as KV objects, the 176-byte records of the bench's table cost 450-540 bytes each
 * (two Buffer objects and their backing stores); packed, 8 bytes beside their own.
 */
export function packRecords(records: KV[]): Buffer {
  let n = 0;
  for (const kv of records) n += 8 + kv.key.length + kv.value.length;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const kv of records) {
    out.writeUInt32LE(kv.key.length, o);
    out.writeUInt32LE(kv.value.length, o + 4);
    o += 8;
    o += kv.key.copy(out, o);
    o += kv.value.copy(out, o);
  }
  return out;
}

/** packRecords' records, as views of the packed buffer. */
export function unpackRecords(b: Buffer): KV[] {
  const out: KV[] = [];
  for (let o = 0; o < b.length; ) {
    const k = b.readUInt32LE(o);
    const v = b.readUInt32LE(o + 4);
    o += 8;
    out.push({ key: b.subarray(o, o + k), value: b.subarray(o + k, o + k + v) });
    o += k + v;
  }
  return out;
}

const SHA_RAW_PREFIX = 64;
const EMPTY_PART = Buffer.alloc(0);
/** Name parts whose key bytes are remembered (isExactKey). */
const PART_MEMO_MAX = 4096;
const LEGACY_B64_PREFIX_BYTES = 63; // a whole number of base64 quanta

function keyType(t: string | undefined): KeyType | null {
  return t === 'S' || t === 'N' || t === 'B' ? t : null;
}

const isEmpty = (b: Bounds): boolean => b.end !== null && Buffer.compare(b.start, b.end) >= 0;

export function isDotName(n: string): boolean {
  return n === '.' || n === '..';
}

export class KeySpace {
  readonly hashAttr: string;
  readonly rangeAttr: string;
  readonly hashType: KeyType | null;
  readonly rangeType: KeyType | null;
  /** In the owner's emit order: the migration source (if any) first, the active generation last. */
  readonly ranges: GenRange[];

  constructor(
    private readonly view: SnapshotView,
    encodedTable: string,
    schema: TableSchema,
  ) {
    this.hashAttr = schema.primaryKey?.hashKey ?? '';
    this.rangeAttr = schema.primaryKey?.rangeKey ?? '';
    this.hashType = keyType(schema.attributeDefinitions.get(this.hashAttr));
    this.rangeType = this.rangeAttr ? keyType(schema.attributeDefinitions.get(this.rangeAttr)) : null;
    const mk = (gen: bigint, legacy: boolean): GenRange => {
      const prefix = itemGenPrefix(encodedTable, gen);
      return { gen, prefix, end: prefixEnd(prefix), legacy };
    };
    const active = schema.generation;
    const source = schema.migratingFromGeneration;
    this.ranges = [];
    if (source !== 0n && source !== active) this.ranges.push(mk(source, true));
    this.ranges.push(mk(active, schema.keyEncodingVersion < ORDERED_KEY_ENCODING));
  }

  get hashOnly(): boolean {
    return this.rangeAttr === '';
  }

  get active(): GenRange {
    return this.ranges[this.ranges.length - 1]!;
  }

  // ------------------------------------------------------------ key -> names

  /** Raw key-attribute bytes from an item key, or null when the key does not parse. */
  private parseKey(key: Buffer, g: GenRange): { h: Buffer; r: Buffer | null } | null {
    if (!key.subarray(0, g.prefix.length).equals(g.prefix)) return null;
    if (g.legacy) {
      const rest = key.subarray(g.prefix.length).toString('latin1');
      const bar = rest.indexOf('|');
      if (bar < 0) return null;
      const h = decodeRawB64Url(rest.slice(0, bar));
      const r = decodeRawB64Url(rest.slice(bar + 1));
      if (!h || !r) return null;
      if (this.hashOnly) return r.length === 0 && bar + 1 === rest.length ? { h, r: null } : null;
      return { h, r };
    }
    const h = readOrderedSegment(key, g.prefix.length);
    if (!h) return null;
    if (this.hashOnly) return h.next === key.length ? { h: h.raw, r: null } : null;
    const r = readOrderedSegment(key, h.next);
    if (!r || r.next !== key.length) return null;
    return { h: h.raw, r: r.raw };
  }

  private partName(raw: Buffer, type: KeyType | null, legacy: boolean): string | null {
    switch (type) {
      case 'S':
        return encodeSegment(raw);
      case 'B':
        return encodeBinarySegment(raw);
      case 'N': {
        const canon = legacy ? canonicalNumber(raw.toString('utf8')) : numericKeyToCanonical(raw);
        return canon === null ? null : encodeSegment(Buffer.from(canon, 'utf8'));
      }
      default:
        return null;
    }
  }

  /** File-name segments from the key alone, or null when the key (or the schema's key types) cannot say. */
  keyNames(key: Buffer, g: GenRange): ItemNames | null {
    const p = this.parseKey(key, g);
    if (!p) return null;
    const h = this.partName(p.h, this.hashType, g.legacy);
    if (h === null) return null;
    if (p.r === null) return { h, r: null };
    const r = this.partName(p.r, this.rangeType, g.legacy);
    return r === null ? null : { h, r };
  }

  /** Decode a stored item (magic + protobuf); RecordError names the key. */
  decode(key: Buffer, value: Buffer): Item {
    if (value.length < ITEM_MAGIC.length || !value.subarray(0, ITEM_MAGIC.length).equals(ITEM_MAGIC)) {
      throw new RecordError(key, 'dynamodb item: missing stored-item magic prefix');
    }
    try {
      return decodeItem(value.subarray(ITEM_MAGIC.length));
    } catch (e) {
      if (e instanceof ProtoError) throw new RecordError(key, `dynamodb item: ${e.message}`);
      throw e;
    }
  }

  /** The owner's file-name segments from the item's key attributes; RecordError when it has none. */
  valueNames(key: Buffer, item: Item): ItemNames {
    const hv = item.get(this.hashAttr);
    if (!hv) throw new RecordError(key, 'dynamodb item: missing hash-key attribute');
    const h = keyAttrSegment(hv);
    if (h === null) throw new RecordError(key, 'dynamodb item: hash key has an unsupported attribute kind');
    if (this.hashOnly) return { h, r: null };
    const rv = item.get(this.rangeAttr);
    if (!rv) throw new RecordError(key, 'dynamodb item: missing range-key attribute');
    const r = keyAttrSegment(rv);
    if (r === null) throw new RecordError(key, 'dynamodb item: range key has an unsupported attribute kind');
    return { h, r };
  }

  /** Names of a listed record: from its key, else from its value (one point read); null when neither works. */
  async recordNames(key: Buffer, g: GenRange, value?: Buffer): Promise<ItemNames | null> {
    return this.keyNames(key, g) ?? this.storedNames(key, g, value);
  }

  /**
   * recordNames for a key that does not name its record: the names its value gives (read
   * unless given); null when it does not decode. Passes that try keyNames first (most keys
   * name their record) call this on a miss, without an async call per key or a second parse.
   */
  async storedNames(key: Buffer, g: GenRange, value?: Buffer): Promise<ItemNames | null> {
    const v = value ?? (await this.view.get(key));
    if (v === null) return null;
    try {
      return this.valueNames(key, this.decode(key, v));
    } catch (e) {
      if (e instanceof RecordError) return null;
      throw e;
    }
  }

  // ------------------------------------------------------------ names -> keys

  private rawHint(name: string, type: KeyType | null, legacy: boolean): RawHint {
    if (type === null) return { kind: 'none' };
    if (isShaFallback(name)) {
      if (type === 'N') return { kind: 'none' };
      try {
        return { kind: 'prefix', raw: decodeSegment(name.slice(34)).subarray(0, SHA_RAW_PREFIX) };
      } catch {
        return { kind: 'impossible' };
      }
    }
    let raw: Buffer;
    try {
      raw = decodeSegment(name);
    } catch {
      return { kind: 'impossible' };
    }
    if (type === 'S') return encodeSegment(raw) === name ? { kind: 'exact', raw, guess: false } : { kind: 'impossible' };
    if (type === 'B') return encodeBinarySegment(raw) === name ? { kind: 'exact', raw, guess: false } : { kind: 'impossible' };
    // Numeric names are canonicalNumber() outputs (idempotent) in segment encoding.
    const canon = raw.toString('utf8');
    if (canonicalNumber(canon) !== canon || encodeSegment(Buffer.from(canon, 'utf8')) !== name) return { kind: 'impossible' };
    if (!legacy) {
      // Ordered numeric keys always name a finite decimal.
      const k = canonicalToNumericKey(canon);
      return k ? { kind: 'exact', raw: k, guess: false } : { kind: 'impossible' };
    }
    // Legacy keys hold the number's original text; guess its plain decimal form.
    const text = decimalText(canon);
    return text === null ? { kind: 'none' } : { kind: 'exact', raw: Buffer.from(text, 'utf8'), guess: true };
  }

  private partKey(raw: Buffer, g: GenRange, last: boolean): Buffer {
    if (!g.legacy) return orderedSegment(raw);
    return Buffer.from(b64url(raw) + (last ? '' : '|'), 'latin1');
  }

  private partPrefix(raw: Buffer, g: GenRange): Buffer {
    if (!g.legacy) return orderedSegmentPrefix(raw);
    return Buffer.from(b64url(raw.subarray(0, LEGACY_B64_PREFIX_BYTES)), 'latin1');
  }

  private whole(g: GenRange): Bounds {
    return { start: g.prefix, end: g.end };
  }

  /** Scan bounds holding every key whose hash segment could be named `h` (exact hash prefix when known). */
  hashBounds(h: string, g: GenRange): { bounds: Bounds; exact: boolean } {
    const hint = this.rawHint(h, this.hashType, g.legacy);
    if (hint.kind === 'impossible') return { bounds: { start: g.prefix, end: g.prefix }, exact: true };
    if (hint.kind === 'exact' && !hint.guess) {
      const start = Buffer.concat([g.prefix, this.partKey(hint.raw, g, false)]);
      return { bounds: { start, end: prefixEnd(start) }, exact: true };
    }
    if (hint.kind === 'prefix') {
      const start = Buffer.concat([g.prefix, this.partPrefix(hint.raw, g)]);
      return { bounds: { start, end: prefixEnd(start) }, exact: false };
    }
    return { bounds: this.whole(g), exact: false };
  }

  /** Candidate exact keys for one item name in one generation, and whether a miss is definitive. */
  private exactKeys(n: ItemNames, g: GenRange): { keys: Buffer[]; definitive: boolean; fallback: Bounds } {
    const hh = this.rawHint(n.h, this.hashType, g.legacy);
    const hb = this.hashBounds(n.h, g);
    const none = { keys: [], definitive: true, fallback: hb.bounds };
    if (hh.kind === 'impossible') return none;
    if (this.hashOnly) {
      if (hh.kind !== 'exact') return { keys: [], definitive: false, fallback: hb.bounds };
      return { keys: [Buffer.concat([g.prefix, this.partKey(hh.raw, g, false)])], definitive: !hh.guess, fallback: hb.bounds };
    }
    const rh = this.rawHint(n.r ?? '', this.rangeType, g.legacy);
    if (rh.kind === 'impossible') return none;
    if (hh.kind !== 'exact' || rh.kind !== 'exact') return { keys: [], definitive: false, fallback: hb.bounds };
    const key = Buffer.concat([g.prefix, this.partKey(hh.raw, g, false), this.partKey(rh.raw, g, true)]);
    return { keys: [key], definitive: !hh.guess && !rh.guess, fallback: hb.bounds };
  }

  private same(a: ItemNames | null, b: ItemNames): boolean {
    return !!a && a.h === b.h && a.r === b.r;
  }

  /** The key of the item that the owner would leave at this name in one generation (last in key order), or null. */
  async findIn(n: ItemNames, g: GenRange): Promise<Buffer | null> {
    const c = this.exactKeys(n, g);
    // A guessed legacy numeric key may not be the last of its numerically equal
    // spellings ("1", "1.0"), which is the one the owner leaves: scan instead.
    for (const k of c.definitive ? c.keys : []) {
      if ((await this.view.get(k)) !== null && this.same(this.keyNames(k, g), n)) return k;
    }
    if (c.definitive) return null;
    let found: Buffer | null = null;
    for await (const kv of this.view.scan(c.fallback.start, c.fallback.end, { keysOnly: true })) {
      if (this.same(await this.recordNames(kv.key, g), n)) found = kv.key;
    }
    return found;
  }

  /** The winning record for a name: the active generation's, else the migration source's. */
  async find(n: ItemNames): Promise<{ key: Buffer; g: GenRange } | null> {
    for (let i = this.ranges.length - 1; i >= 0; i--) {
      const g = this.ranges[i]!;
      const key = await this.findIn(n, g);
      if (key) return { key, g };
    }
    return null;
  }

  /** True when any generation holds an item whose hash segment is named `h`. */
  async hasHash(h: string): Promise<boolean> {
    for (const g of this.ranges) {
      const { bounds, exact } = this.hashBounds(h, g);
      if (isEmpty(bounds)) continue;
      if (exact) {
        if ((await this.view.page(bounds.start, bounds.end, 1, true)).length > 0) return true;
        continue;
      }
      for await (const kv of this.view.scan(bounds.start, bounds.end, { keysOnly: true })) {
        if ((await this.recordNames(kv.key, g))?.h === h) return true;
      }
    }
    return false;
  }

  /** Names of every shown item, generation by generation (keys-only page scans). */
  async *names(within?: (g: GenRange) => Bounds): AsyncGenerator<ItemNames> {
    for (const g of this.ranges) {
      const b = within ? within(g) : this.whole(g);
      if (isEmpty(b)) continue;
      for await (const page of this.view.scanPages(b.start, b.end, { keysOnly: true })) {
        for (const kv of page) {
          const n = this.keyNames(kv.key, g) ?? (await this.storedNames(kv.key, g));
          if (n) yield n;
        }
      }
    }
  }

  /**
   * The listing of names() as DirNode entries, in one scan with values (or from `held`,
   * the records of `within` read before): each name once
   * (first occurrence, as names() lists them), with the rendered bytes of every item a
   * lookup resolves straight from its key (one generation shown, a name its key gives
   * exactly: find() reads that very key). Other names, and records that fail to render,
   * are listed without bytes and their own lookup decides.
   */
  async *entries(fileName: (n: ItemNames) => string | null, within?: (g: GenRange) => Bounds, held?: KV[]): AsyncGenerator<Entry[]> {
    const direct = this.ranges.length === 1;
    const seen = new Set<string>();
    let batch: Entry[] = [];
    for (const g of this.ranges) {
      const b = within ? within(g) : this.whole(g);
      if (isEmpty(b)) continue;
      // The records of `within` already read (one generation shown: hashNames' values pass), else a scan.
      const pages = held && direct ? [held] : this.view.scanPages(b.start, b.end, { keysOnly: !direct });
      for await (const page of pages) for (const kv of page) {
        const fromKey = this.keyNames(kv.key, g);
        const n = fromKey ?? (await this.storedNames(kv.key, g, direct ? kv.value : undefined));
        const name = n ? fileName(n) : null;
        if (name === null || seen.has(name)) continue;
        seen.add(name);
        batch.push({ name, kind: 'file', bytes: direct ? this.passBytes(kv, fromKey, g) : undefined });
        if (batch.length >= 256) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * Whether `key` is the definitive exact key exactKeys() gives for its names `n` (the key
   * find() reads): the key bytes each name part maps back to, memoized per part (a pk
   * directory's items share the hash part; range parts repeat across pk directories).
   */
  private isExactKey(key: Buffer, n: ItemNames, g: GenRange): boolean {
    const h = this.partBytes('h', n.h, this.hashType, g, false);
    if (!h) return false;
    const r = this.hashOnly ? EMPTY_PART : n.r === null ? null : this.partBytes('r', n.r, this.rangeType, g, true);
    if (!r) return false;
    const p = g.prefix.length;
    return key.length === p + h.length + r.length && key.compare(g.prefix, 0, p, 0, p) === 0 && key.compare(h, 0, h.length, p, p + h.length) === 0 && key.compare(r, 0, r.length, p + h.length) === 0;
  }

  private readonly partMemo = new Map<string, Buffer | null>();

  /** exactKeys()' bytes for one name part, or null when that part is not definitive. */
  private partBytes(which: 'h' | 'r', name: string, type: KeyType | null, g: GenRange, last: boolean): Buffer | null {
    const memoKey = `${which}${g.gen}|${name}`;
    let b = this.partMemo.get(memoKey);
    if (b === undefined) {
      const hint = this.rawHint(name, type, g.legacy);
      // Held for many lookups: an exact allocation, not a view pinning a pool slab (see ownedCopy).
      b = hint.kind === 'exact' && !hint.guess ? ownedCopy(this.partKey(hint.raw, g, last)) : null;
      if (this.partMemo.size >= PART_MEMO_MAX) this.partMemo.clear();
      this.partMemo.set(memoKey, b);
    }
    return b;
  }

  /**
   * The file bytes a pass with values renders for a record: those of a record a lookup resolves
   * straight from its key (a name its key gives exactly: find() reads that very key), after
   * load()'s checks; undefined otherwise (its own lookup decides).
   */
  private passBytes(kv: KV, fromKey: ItemNames | null, g: GenRange): Buffer | undefined {
    return fromKey && this.isExactKey(kv.key, fromKey, g) ? this.renderChecked(kv, fromKey) : undefined;
  }

  /** An item's file bytes after load()'s checks, or undefined when the record fails them (its read reports it). */
  private renderChecked(kv: KV, expect: ItemNames): Buffer | undefined {
    try {
      const item = this.decode(kv.key, kv.value);
      const got = this.valueNames(kv.key, item);
      return got.h === expect.h && got.r === expect.r ? renderItem(item) : undefined;
    } catch (e) {
      if (e instanceof RecordError) return undefined;
      throw e;
    }
  }

  /**
   * Hash segments of every shown item (hash+range tables), consecutive repeats
   * dropped: keys of one hash are adjacent, so only the hash part of each key
   * is parsed and named once per run.
   *
   * With `pk`, when one generation is shown, the pass reads values too while the records
   * it holds fit pk.budget: the records of each pk directory whose keys are one run of the
   * scan (a hash name its key gives exactly: the directory's own scan reads that very
   * range) are handed to pk.keep, for that directory's entries() to list and render with
   * no scan of its own. A copy then walks the pk directories with no round trip each. Past
   * the budget the pass goes on keys-only; the run it was in lists itself.
   */
  async *hashNames(pk?: PkListings): AsyncGenerator<string> {
    const values = !!pk && this.ranges.length === 1;
    for (const g of this.ranges) {
      let prevRaw: Buffer | null = null;
      let prevName: string | null = null;
      let run: PkRun | null = null;
      let held = 0;
      let withValues = values;
      let start = g.prefix;
      for (;;) {
        let switchedAfter: Buffer | null = null;
        for await (const page of this.view.scanPages(start, g.end, { keysOnly: !withValues })) {
          for (const kv of page) {
            if (withValues) {
              if (run && !(run.end === null || Buffer.compare(kv.key, run.end) < 0)) {
                held += this.closeRun(run, pk!);
                run = null;
              }
              run ??= this.openRun(kv.key, g);
              if (run) {
                run.records.push(kv);
                run.bytes += 8 + kv.key.length + kv.value.length;
              }
            }
            const slice = this.hashPart(kv.key, g);
            if (slice && prevRaw && slice.equals(prevRaw)) continue;
            const n = (this.keyNames(kv.key, g) ?? (await this.storedNames(kv.key, g, withValues ? kv.value : undefined)))?.h ?? null;
            if (n === null) continue;
            prevRaw = slice;
            if (n !== prevName) yield n;
            prevName = n;
          }
          if (withValues && held + (run ? run.bytes + PK_RUN_OVERHEAD : 0) > pk!.budget) {
            switchedAfter = page[page.length - 1]!.key;
            break;
          }
        }
        if (run && !switchedAfter) held += this.closeRun(run, pk!);
        run = null;
        if (!switchedAfter) break;
        withValues = false;
        start = nextKey(switchedAfter);
      }
    }
  }

  /** The pk run a key starts: its hash name's exact range, when the key names it exactly; else null. */
  private openRun(key: Buffer, g: GenRange): PkRun | null {
    const n = this.keyNames(key, g);
    if (!n || isDotName(n.h)) return null;
    const { bounds, exact } = this.hashBounds(n.h, g);
    if (!exact || Buffer.compare(key, bounds.start) < 0 || (bounds.end !== null && Buffer.compare(key, bounds.end) >= 0)) return null;
    return { h: n.h, end: bounds.end, records: [], bytes: 0 };
  }

  /** A complete run handed on, packed; returns the bytes it holds. */
  private closeRun(run: PkRun, pk: PkListings): number {
    pk.keep(run.h, packRecords(run.records));
    return run.bytes + PK_RUN_OVERHEAD;
  }

  /** The bytes of an item key's hash part (escaped ordered segment or base64 text), for run detection. */
  private hashPart(key: Buffer, g: GenRange): Buffer | null {
    if (g.legacy) {
      const bar = key.indexOf(0x7c, g.prefix.length);
      return bar < 0 ? null : key.subarray(g.prefix.length, bar);
    }
    const h = readOrderedSegment(key, g.prefix.length);
    return h ? key.subarray(g.prefix.length, h.next) : null;
  }

  /**
   * Render check: decode the stored item and make sure its key attributes name
   * the file it is served as.
   */
  async load(key: Buffer, expect: ItemNames): Promise<Item> {
    const v = await this.view.get(key);
    if (v === null) throw new RecordError(key, 'dynamodb item: record vanished');
    const item = this.decode(key, v);
    const got = this.valueNames(key, item);
    if (got.h !== expect.h || got.r !== expect.r) throw new RecordError(key, 'dynamodb item: key attributes disagree with the item key');
    return item;
  }
}

/**
 * The likely original text of a legacy numeric key from its file name: a
 * canonical rational ("7", "-1/2") as plain decimal text ("7", "-0.5"); a name
 * that is not a number is the (trimmed) text itself. Null when no guess.
 */
function decimalText(canon: string): string | null {
  const m = /^(-?)([0-9]+)(?:\/([0-9]+))?$/.exec(canon);
  if (!m || m[3] === undefined) return canon;
  const num = BigInt(m[2]!);
  const den = BigInt(m[3]);
  if (den === 0n) return canon;
  let k = 0;
  let p = 1n;
  while ((num * p) % den !== 0n) {
    p *= 10n;
    if (++k > 400) return null;
  }
  const digits = ((num * p) / den).toString().padStart(k + 1, '0');
  return `${m[1]}${digits.slice(0, digits.length - k)}.${digits.slice(digits.length - k)}`;
}
