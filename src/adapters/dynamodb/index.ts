/**
 * The dynamodb room: `dynamodb/<table>/_schema.json` and the table's items,
 * rendered as elastickv's format owner (internal/backup/dynamodb.go) writes them.
 *
 *  - Tables come from `!ddb|meta|table|` (a table without a schema is an orphan
 *    and is not shown). The directory is the segment-encoded table name taken
 *    from the key; `_schema.json` is the DescribeTable-shaped projection.
 *  - Items come from `!ddb|item|<table>|<gen>|…` of the schema's generation, and
 *    during a key-encoding migration also of the migration source generation
 *    (the active generation wins a name both hold). Every other generation is
 *    stale and not shown; GSI rows are never shown.
 *  - per-item layout: `items/<pk>.json` (hash-only) or `items/<pk>/<sk>.json`.
 *    jsonl layout: `items/data-00001.jsonl`… , one compact item per line, each
 *    part filled up to --dynamodb-bundle-size (a lone larger item gets its own part).
 *
 * Lazy: `ls` pages through the key range it lists (keys only), `cat` of one item
 * derives the item's key from its path and does one point read.
 */
import { decodeSegment, encodeSegment, isShaFallback } from '../../format/filename.js';
import type { KV } from '../../source/types.js';
import { RecordError, type DirNode, type Entry, type FileNode, type Node } from '../../tree/node.js';
import { printableKey } from '../../tree/tree.js';
import { batched, LISTING_KEEP_MAX, type Adapter, type AdapterContext } from '../types.js';
import { isDotName, KeySpace, unpackRecords, type GenRange, type ItemNames, type PkListings } from './items.js';
import { b64url, decodeRawB64Url, SCHEMA_MAGIC, TABLE_META_PREFIX, tableMetaKey } from './keys.js';
import { decodeTableSchema, ProtoError, type TableSchema } from './proto.js';
import { renderItem, renderItemLine, renderSchema } from './render.js';

const META_PREFIX = Buffer.from(TABLE_META_PREFIX, 'latin1');
const SCHEMA_FILE = '_schema.json';
const ITEMS_DIR = 'items';
const JSON_EXT = '.json';

interface TableRef {
  /** The base64url table segment as it appears in the keys. */
  encoded: string;
  rawName: Buffer;
  dirName: string;
}

/** A meta key -> table reference, or null when the key cannot name a table (as the owner, which refuses it). */
function tableRefFromMetaKey(key: Buffer): TableRef | null {
  const encoded = key.subarray(META_PREFIX.length).toString('latin1');
  if (encoded === '') return null;
  const rawName = decodeRawB64Url(encoded);
  if (!rawName) return null;
  return { encoded, rawName, dirName: encodeSegment(rawName) };
}

class DynamoRoot implements DirNode {
  readonly kind = 'dir' as const;
  constructor(private readonly ctx: AdapterContext) {}

  private inScope(ref: TableRef): boolean {
    const scopes = this.ctx.options.scopes.get('dynamodb');
    return !scopes || scopes.has(ref.rawName.toString('utf8'));
  }

  /** Every shown table, in key order (keys-only page scan of the meta prefix). */
  async *tables(): AsyncGenerator<TableRef> {
    const seen = new Set<string>();
    for await (const kv of this.ctx.view.scanPrefix(META_PREFIX, { keysOnly: true })) {
      const ref = tableRefFromMetaKey(kv.key);
      if (!ref) {
        this.ctx.log.warn({ adapter: 'dynamodb', key: printableKey(kv.key) }, 'dynamodb: malformed table meta key skipped');
        continue;
      }
      if (!this.inScope(ref) || isDotName(ref.dirName) || seen.has(ref.dirName)) continue;
      seen.add(ref.dirName);
      yield ref;
    }
  }

  async any(): Promise<boolean> {
    for await (const _ of this.tables()) return true;
    return false;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for await (const t of this.tables()) out.push(t.dirName);
    return out;
  }

  async lookup(name: string): Promise<Node | null> {
    let ref: TableRef | null = null;
    if (!isShaFallback(name)) {
      try {
        const raw = decodeSegment(name);
        if (encodeSegment(raw) === name) {
          const encoded = b64url(raw);
          if ((await this.ctx.view.get(tableMetaKey(encoded))) !== null) ref = { encoded, rawName: raw, dirName: name };
        }
      } catch {
        /* not an encoded name: fall through to the scan */
      }
    }
    if (!ref || !this.inScope(ref)) {
      ref = null;
      // Unusual names (SHA fallback, non-canonical base64 in the key): find it among the tables.
      for await (const t of this.tables()) {
        if (t.dirName === name) {
          ref = t;
          break;
        }
      }
    }
    return ref ? new TableDir(this.ctx, ref) : null;
  }
}

class TableDir implements DirNode {
  readonly kind = 'dir' as const;
  private schemaP: Promise<TableSchema> | null = null;
  private readonly path: string;

  constructor(
    private readonly ctx: AdapterContext,
    private readonly ref: TableRef,
  ) {
    this.path = `/dynamodb/${ref.dirName}`;
  }

  schema(): Promise<TableSchema> {
    if (!this.schemaP) {
      this.schemaP = this.loadSchema();
      this.schemaP.catch(() => (this.schemaP = null));
    }
    return this.schemaP;
  }

  private async loadSchema(): Promise<TableSchema> {
    const key = tableMetaKey(this.ref.encoded);
    const v = await this.ctx.view.get(key);
    if (v === null) throw new RecordError(key, 'dynamodb table schema vanished');
    if (v.length < SCHEMA_MAGIC.length || !v.subarray(0, SCHEMA_MAGIC.length).equals(SCHEMA_MAGIC)) {
      throw new RecordError(key, 'dynamodb table schema: missing magic prefix');
    }
    try {
      return decodeTableSchema(v.subarray(SCHEMA_MAGIC.length));
    } catch (e) {
      if (e instanceof ProtoError) throw new RecordError(key, `dynamodb table schema: ${e.message}`);
      throw e;
    }
  }

  /** False when the schema cannot be decoded: then only `_schema.json` is shown (and fails with EIO). */
  private async schemaOk(): Promise<boolean> {
    try {
      await this.schema();
      return true;
    } catch (e) {
      if (e instanceof RecordError) return false;
      throw e;
    }
  }

  async list(): Promise<string[]> {
    return (await this.schemaOk()) ? [SCHEMA_FILE, ITEMS_DIR] : [SCHEMA_FILE];
  }

  async lookup(name: string): Promise<Node | null> {
    if (name === SCHEMA_FILE) return this.ctx.files.rendered(`${this.path}/${SCHEMA_FILE}`, async () => renderSchema(await this.schema()));
    if (name === ITEMS_DIR && (await this.schemaOk())) return new ItemsDir(this.ctx, `${this.path}/${ITEMS_DIR}`, this.ref, () => this.schema());
    return null;
  }
}

/** `items/`: per-item files (or hash directories), or the jsonl parts. */
class ItemsDir implements DirNode {
  readonly kind = 'dir' as const;
  private spaceP: Promise<KeySpace> | null = null;
  private bundle: Bundle | null = null;
  /**
   * The pk directories the last listing found (hash+range tables of at most
   * LISTING_KEEP_MAX of them): the snapshot is immutable, so lookups of listed names
   * (readdirplus asks for every one) need no probe of the keyspace each.
   */
  private listed: Set<string> | null = null;
  /**
   * The pk directories' records the last listing read (hashNames with values, within the
   * room's share of the cache): each taken by its directory's first listing.
   */
  private pkRecords = new Map<string, Buffer>();

  constructor(
    private readonly ctx: AdapterContext,
    private readonly path: string,
    private readonly ref: TableRef,
    private readonly schema: () => Promise<TableSchema>,
  ) {}

  private space(): Promise<KeySpace> {
    if (!this.spaceP) {
      this.spaceP = this.schema().then((s) => new KeySpace(this.ctx.view, this.ref.encoded, s));
      this.spaceP.catch(() => (this.spaceP = null));
    }
    return this.spaceP;
  }

  private get jsonl(): boolean {
    return this.ctx.options.dynamodbBundleMode === 'jsonl';
  }

  private async getBundle(): Promise<Bundle> {
    if (!this.bundle) this.bundle = new Bundle(this.ctx, this.path, await this.space());
    return this.bundle;
  }

  /** Hash-only tables: `<pk>.json` files with their bytes, from one scan with values; else list()'s names (it stops once `signal` aborts). */
  async *entries(signal?: AbortSignal): AsyncGenerator<Entry[]> {
    const ks = await this.space();
    if (this.jsonl || !ks.hashOnly) {
      const kind = this.jsonl ? 'file' : 'dir';
      yield (await this.list(signal)).map((name): Entry => ({ name, kind }));
      return;
    }
    yield* ks.entries((n) => (isDotName(n.h) ? null : n.h + JSON_EXT));
  }

  async list(signal?: AbortSignal): Promise<string[]> {
    if (this.jsonl) return (await this.getBundle()).names();
    const ks = await this.space();
    const out = new Set<string>();
    if (ks.hashOnly) {
      for await (const n of ks.names()) {
        signal?.throwIfAborted();
        if (!isDotName(n.h)) out.add(n.h + JSON_EXT);
      }
    } else {
      const made = new Map<string, Buffer>();
      const pk: PkListings = { budget: this.ctx.roomCacheBytes, keep: (h, packed) => made.set(h, packed) };
      for await (const h of ks.hashNames(pk)) {
        signal?.throwIfAborted();
        if (!isDotName(h)) out.add(h);
      }
      this.listed = out.size <= LISTING_KEEP_MAX ? out : null;
      this.pkRecords = made;
    }
    return [...out];
  }

  async lookup(name: string): Promise<Node | null> {
    if (this.jsonl) return (await this.getBundle()).lookup(name);
    const ks = await this.space();
    if (ks.hashOnly) {
      if (!name.endsWith(JSON_EXT)) return null;
      const h = name.slice(0, -JSON_EXT.length);
      if (h === '' || isDotName(h)) return null;
      return itemFile(this.ctx, `${this.path}/${name}`, ks, { h, r: null });
    }
    if (isDotName(name)) return null;
    if (this.listed ? !this.listed.has(name) : !(await ks.hasHash(name))) return null;
    return new HashDir(this.ctx, `${this.path}/${name}`, ks, name, () => this.takePkRecords(name));
  }

  private takePkRecords(h: string): KV[] | undefined {
    const packed = this.pkRecords.get(h);
    if (!packed) return undefined;
    this.pkRecords.delete(h);
    return unpackRecords(packed);
  }
}

/** One item's file, if the name resolves to a shown record. */
async function itemFile(ctx: AdapterContext, path: string, ks: KeySpace, n: ItemNames): Promise<FileNode | null> {
  const hit = await ks.find(n);
  if (!hit) return null;
  const key = hit.key;
  return ctx.files.rendered(path, async () => renderItem(await ks.load(key, n)));
}

/** `items/<pk>/` of a hash+range table. */
class HashDir implements DirNode {
  readonly kind = 'dir' as const;
  constructor(
    private readonly ctx: AdapterContext,
    private readonly path: string,
    private readonly ks: KeySpace,
    private readonly h: string,
    private readonly held: () => KV[] | undefined,
  ) {}

  /** One scan of this hash's range with values, or the records items/' listing read of it. */
  entries(): AsyncGenerator<Entry[]> {
    return this.ks.entries(
      (n) => (n.h !== this.h || n.r === null || isDotName(n.r) ? null : n.r + JSON_EXT),
      (g) => this.ks.hashBounds(this.h, g).bounds,
      this.held(),
    );
  }

  async list(): Promise<string[]> {
    const out = new Set<string>();
    for await (const n of this.ks.names((g) => this.ks.hashBounds(this.h, g).bounds)) {
      if (n.h !== this.h || n.r === null || isDotName(n.r)) continue;
      out.add(n.r + JSON_EXT);
    }
    return [...out];
  }

  async lookup(name: string): Promise<Node | null> {
    if (!name.endsWith(JSON_EXT)) return null;
    const r = name.slice(0, -JSON_EXT.length);
    if (r === '' || isDotName(r)) return null;
    return itemFile(this.ctx, `${this.path}/${name}`, this.ks, { h: this.h, r });
  }
}

// ------------------------------------------------------------ jsonl bundles

interface Part {
  /** Generation range index and first key of the part. */
  g: number;
  start: Buffer;
  count: number;
  size: number;
  error: RecordError | null;
}

interface BundleRecord {
  g: number;
  kv: KV;
}

const partName = (i: number): string => `data-${String(i + 1).padStart(5, '0')}.jsonl`;

/**
 * The jsonl layout of one table: the shown items in order (the migration
 * source's items the active generation does not shadow, then the active
 * generation's), packed into parts of at most the bundle size. The part plan
 * (start key, count, size) is made in one pass when `items/` is first read;
 * each part's bytes are made in one streaming pass from its start key.
 */
class Bundle {
  private planP: Promise<Part[]> | null = null;

  constructor(
    private readonly ctx: AdapterContext,
    private readonly path: string,
    private readonly ks: KeySpace,
  ) {}

  private async *records(from?: { g: number; key: Buffer }): AsyncGenerator<BundleRecord> {
    const ranges = this.ks.ranges;
    for (let gi = from?.g ?? 0; gi < ranges.length; gi++) {
      const g: GenRange = ranges[gi]!;
      const start = from && gi === from.g ? from.key : g.prefix;
      const shadowable = gi < ranges.length - 1;
      for await (const page of this.ctx.view.scanPages(start, g.end)) for (const kv of page) {
        if (shadowable) {
          const n = await this.ks.recordNames(kv.key, g, kv.value);
          if (n && (await this.shadowed(n, gi))) continue;
        }
        yield { g: gi, kv };
      }
    }
  }

  private async shadowed(n: ItemNames, gi: number): Promise<boolean> {
    for (let j = gi + 1; j < this.ks.ranges.length; j++) {
      if (await this.ks.findIn(n, this.ks.ranges[j]!)) return true;
    }
    return false;
  }

  private line(rec: BundleRecord): Buffer {
    const item = this.ks.decode(rec.kv.key, rec.kv.value);
    this.ks.valueNames(rec.kv.key, item);
    return renderItemLine(item);
  }

  private plan(): Promise<Part[]> {
    if (!this.planP) {
      this.planP = this.makePlan();
      this.planP.catch(() => (this.planP = null));
    }
    return this.planP;
  }

  private async makePlan(): Promise<Part[]> {
    const limit = Math.max(1, this.ctx.options.dynamodbBundleSize);
    const parts: Part[] = [];
    let cur: Part | null = null;
    for await (const rec of this.records()) {
      let size = 0;
      let error: RecordError | null = null;
      try {
        size = this.line(rec).length;
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        error = e;
      }
      if (!cur || (cur.count > 0 && cur.size + size > limit)) {
        cur = { g: rec.g, start: rec.kv.key, count: 0, size: 0, error: null };
        parts.push(cur);
      }
      cur.count++;
      cur.size += size;
      cur.error ??= error;
    }
    return parts;
  }

  async names(): Promise<string[]> {
    return (await this.plan()).map((_, i) => partName(i));
  }

  async lookup(name: string): Promise<Node | null> {
    const m = /^data-(\d{5,})\.jsonl$/.exec(name);
    if (!m) return null;
    const i = Number(m[1]) - 1;
    const parts = await this.plan();
    const part = parts[i];
    if (!part || partName(i) !== name) return null;
    return this.ctx.files.streamed(`${this.path}/${name}`, async (write, drain) => {
      if (part.error) throw part.error;
      let left = part.count;
      const out = batched(write, drain);
      for await (const rec of this.records({ g: part.g, key: part.start })) {
        if (left-- <= 0) break;
        const pending = out.push(this.line(rec));
        if (pending) await pending;
      }
      out.flush();
    });
  }
}

export const dynamodbAdapter: Adapter = {
  name: 'dynamodb',
  root: async (ctx) => {
    const root = new DynamoRoot(ctx);
    return (await root.any()) ? root : null;
  },
};
