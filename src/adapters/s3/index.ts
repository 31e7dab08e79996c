/**
 * The s3 room: elastickv's S3 keyspace as the format owner's `s3/` tree.
 *
 *   s3/<bucket>/_bucket.json                      bucket meta (public projection)
 *   s3/<bucket>/<object key as a path>            body: parts and chunks in order
 *   s3/<bucket>/<object>.elastickv-meta.json      sidecar (public manifest projection)
 *   s3/<bucket>/KEYMAP.jsonl                      renames (leaf-data, meta-suffix)
 *   s3/<bucket>/_orphans/<obj>/gen-<n>/*.bin      --include-orphans
 *   s3/<bucket>/_incomplete_uploads/records.jsonl --include-incomplete-uploads
 *
 * Only the bucket's live generation (from its meta record) is shown; with no
 * usable bucket meta every generation is, as the owner does. Listing a directory
 * skip-scans the manifest (and blob/chunkref) ranges under that path; looking up
 * one name costs point reads and one-key probes.
 */
import { LRUCache } from 'lru-cache';
import { encodeLine, GoB64, GoStr } from '../../format/gojson.js';
import { encodeSegment } from '../../format/filename.js';
import { KEYMAP_FILE, type KeymapKind } from '../../format/keymap.js';
import { nextKey, prefixEnd, type SnapshotView } from '../../source/range.js';
import { RecordError, StaticDir, type DirNode, type FileNode, type Node } from '../../tree/node.js';
import { batchedLines, LISTING_KEEP_MAX, type Adapter, type AdapterContext } from '../types.js';
import {
  bucketGenBase,
  hex16,
  manifestKey,
  P_BLOB,
  P_BUCKET_META,
  P_CHUNKREF,
  P_OBJ_HEAD,
  P_UPLOAD_META,
  P_UPLOAD_PART,
  parseBucketMetaKey,
  parseChunkKey,
  parseManifestKey,
  parseUploadPartKey,
  readSeg,
  readU64,
  seg,
  segPrefix,
  startsWith,
  TERMINATOR,
  uploadMetaRoutingBucket,
  u64,
} from './keys.js';
import { decodeBucketMeta, decodeManifest, renderBucketJson, renderSidecar, type Manifest } from './model.js';
import { buildLayout, ChunkReader, ObjectBodyFile } from './object.js';
import { hasPrefix, skipScan } from './scan.js';

export const META_SUFFIX = '.elastickv-meta.json';
export const LEAF_SUFFIX = '.elastickv-leaf-data';
export const USER_DATA_SUFFIX = '.user-data';
const BUCKET_JSON = '_bucket.json';
const ORPHANS_DIR = '_orphans';
const UPLOADS_DIR = '_incomplete_uploads';
const UPLOADS_FILE = 'records.jsonl';
const SLASH = 0x2f;
const OBJECT_FAMILIES = [P_OBJ_HEAD, P_BLOB, P_CHUNKREF] as const;

class S3Room {
  readonly chunks: ChunkReader;
  private readonly manifests = new LRUCache<string, Promise<Manifest>>({ max: 4096 });
  constructor(readonly ctx: AdapterContext) {
    this.chunks = new ChunkReader(ctx.view, ctx.roomCacheBytes);
  }
  get view(): SnapshotView {
    return this.ctx.view;
  }

  /** The decoded manifest at `key` (cached per object). */
  manifest(key: Buffer): Promise<Manifest> {
    const id = key.toString('latin1');
    let p = this.manifests.get(id);
    if (!p) {
      p = (async () => {
        const v = await this.view.get(key);
        if (v === null) throw new RecordError(key, 'object manifest vanished');
        try {
          return decodeManifest(v);
        } catch (e) {
          throw new RecordError(key, `invalid !s3|obj|head value: ${e instanceof Error ? e.message : String(e)}`);
        }
      })();
      p.catch(() => this.manifests.delete(id));
      this.manifests.set(id, p);
    }
    return p;
  }

  /** Every bucket the owner would create a directory for. */
  async buckets(): Promise<Map<string, Bucket>> {
    const found = new Map<string, Buffer>();
    const add = (b: Buffer): void => {
      const k = b.toString('latin1');
      if (!found.has(k)) found.set(k, b);
    };
    // Each family is skip-scanned on its own, all at once (a round trip each on a live
    // cluster); the names are sorted below, so the order they arrive in does not matter.
    const scans: Promise<void>[] = [
      // Bucket meta: one key per bucket.
      skipScan(this.view, P_BUCKET_META, prefixEnd(P_BUCKET_META), (k) => {
        const b = parseBucketMetaKey(k);
        if (b) add(b);
        return null;
      }),
    ];
    const families: Buffer[] = [...OBJECT_FAMILIES];
    if (this.ctx.options.includeIncompleteUploads) families.push(P_UPLOAD_PART);
    for (const fam of families) {
      scans.push(
        skipScan(this.view, fam, prefixEnd(fam), (k) => {
          const b = fam === P_OBJ_HEAD ? parseManifestKey(k)?.bucket : fam === P_UPLOAD_PART ? parseUploadPartKey(k) : parseChunkKey(k, fam)?.bucket;
          if (!b) return null;
          add(b);
          return prefixEnd(Buffer.concat([fam, seg(b)]));
        }),
      );
    }
    if (this.ctx.options.includeIncompleteUploads) {
      scans.push(
        skipScan(this.view, P_UPLOAD_META, prefixEnd(P_UPLOAD_META), (k) => {
          const b = uploadMetaRoutingBucket(k);
          if (!b) return null;
          add(b);
          return prefixEnd(Buffer.concat([P_UPLOAD_META, b, TERMINATOR]));
        }),
      );
    }
    await Promise.all(scans);
    const scope = this.ctx.options.scopes.get('s3');
    const out = new Map<string, Bucket>();
    for (const b of [...found.values()].sort(Buffer.compare)) {
      if (scope && !scope.has(b.toString('utf8'))) continue;
      const enc = encodeSegment(b);
      if (enc === '' || enc === '.' || enc === '..') {
        this.ctx.log.warn({ adapter: 's3' }, 'bucket with an empty or dot-segment name skipped');
        continue;
      }
      out.set(enc, new Bucket(this, b, enc));
    }
    return out;
  }
}

interface BucketState {
  metaValue: Buffer | null;
  metaError: string | null;
  activeGen: bigint;
  /** Generations whose objects are shown, newest first. */
  gens: bigint[];
}

interface Rename {
  encoded: Buffer;
  original: Buffer;
  kind: KeymapKind;
}

interface OrphanGroup {
  object: Buffer;
  gens: bigint[];
}

/** Prefix probes a bucket remembers (a lookup asks the same one more than once; the tree is immutable). */
const PROBES_KEPT = 1024;

class Bucket {
  private statePromise: Promise<BucketState> | null = null;
  private readonly probes = new LRUCache<string, Promise<boolean>>({ max: PROBES_KEPT });
  private renamesPromise: Promise<Rename[]> | null = null;
  private orphansPromise: Promise<Map<string, OrphanGroup>> | null = null;
  readonly metaKey: Buffer;
  constructor(
    readonly room: S3Room,
    readonly name: Buffer,
    readonly enc: string,
  ) {
    this.metaKey = Buffer.concat([P_BUCKET_META, seg(name)]);
  }
  get view(): SnapshotView {
    return this.room.view;
  }
  get opts(): AdapterContext['options'] {
    return this.room.ctx.options;
  }

  state(): Promise<BucketState> {
    if (!this.statePromise) {
      const p = this.loadState();
      p.catch(() => {
        if (this.statePromise === p) this.statePromise = null;
      });
      this.statePromise = p;
    }
    return this.statePromise;
  }

  private async loadState(): Promise<BucketState> {
    const metaValue = await this.view.get(this.metaKey);
    let activeGen = 0n;
    let metaError: string | null = null;
    if (metaValue !== null) {
      try {
        activeGen = decodeBucketMeta(metaValue).generation;
      } catch (e) {
        metaError = e instanceof Error ? e.message : String(e);
        this.room.ctx.log.warn({ adapter: 's3', key: this.metaKey.toString('latin1') }, 'bucket meta undecodable; showing every generation');
      }
    }
    const gens = activeGen !== 0n ? [activeGen] : await this.allGens();
    return { metaValue, metaError, activeGen, gens };
  }

  /** Generations present in the bucket's object families, newest first. */
  async allGens(families: readonly Buffer[] = OBJECT_FAMILIES): Promise<bigint[]> {
    const gens = new Set<bigint>();
    for (const fam of families) {
      const base = Buffer.concat([fam, seg(this.name)]);
      await skipScan(this.view, base, prefixEnd(base), (k) => {
        const g = readU64(k, base.length);
        if (!g) return null;
        gens.add(g[0]);
        return prefixEnd(Buffer.concat([base, u64(g[0])]));
      });
    }
    return [...gens].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  }

  /**
   * The manifest key of `object` in the newest shown generation that has one. (The view
   * remembers the record read here: the object's render and its sidecar's lookup do not read it again.)
   */
  async manifestOf(object: Buffer): Promise<Buffer | null> {
    for (const gen of (await this.state()).gens) {
      const k = manifestKey(this.name, gen, object);
      if ((await this.view.get(k)) !== null) return k;
    }
    return null;
  }

  /** Any key with this prefix? Remembered: a lookup probes the same prefix more than once. */
  private probe(prefix: Buffer): Promise<boolean> {
    const id = prefix.toString('latin1');
    let p = this.probes.get(id);
    if (!p) {
      p = hasPrefix(this.view, prefix);
      p.catch(() => this.probes.delete(id));
      this.probes.set(id, p);
    }
    return p;
  }

  /** Whether any of these probes finds a key: all asked at once (one round trip on a live cluster, not one each). */
  private async anyProbe(prefixes: Buffer[]): Promise<boolean> {
    return (await Promise.all(prefixes.map((x) => this.probe(x)))).some(Boolean);
  }

  /** Is `object` a key the owner tracks in a shown generation (manifest, blob or chunkref)? */
  async objectExists(object: Buffer): Promise<boolean> {
    if (await this.manifestOf(object)) return true;
    for (const gen of (await this.state()).gens) {
      if (await this.anyProbe([P_BLOB, P_CHUNKREF].map((fam) => Buffer.concat([bucketGenBase(fam, this.name, gen), seg(object)])))) return true;
    }
    return false;
  }

  /** Does some shown object key start with `prefix` (raw)? `manifestOnly` limits to manifests. */
  async anyObjectUnder(prefix: Buffer, manifestOnly: boolean): Promise<boolean> {
    for (const gen of (await this.state()).gens) {
      const fams = manifestOnly ? [P_OBJ_HEAD] : OBJECT_FAMILIES;
      if (await this.anyProbe(fams.map((fam) => Buffer.concat([bucketGenBase(fam, this.name, gen), segPrefix(prefix)])))) return true;
    }
    return false;
  }

  /**
   * Every shown object key in ascending order, once each, with whether it has a
   * manifest: a merge of the manifest, blob and chunkref ranges of each shown
   * generation, skipping each object's remaining chunk keys.
   */
  async *objectKeys(): AsyncGenerator<{ object: Buffer; manifest: boolean }> {
    const gens = (await this.state()).gens;
    const streams: AsyncGenerator<{ object: Buffer; manifest: boolean }>[] = [];
    for (const gen of gens) for (const fam of OBJECT_FAMILIES) streams.push(this.familyObjects(fam, gen));
    const heads: ({ object: Buffer; manifest: boolean } | null)[] = [];
    for (const s of streams) heads.push((await s.next()).value ?? null);
    for (;;) {
      let min: Buffer | null = null;
      for (const h of heads) if (h && (min === null || Buffer.compare(h.object, min) < 0)) min = h.object;
      if (min === null) return;
      let manifest = false;
      for (let i = 0; i < streams.length; i++) {
        const h = heads[i];
        if (h && h.object.equals(min)) {
          manifest ||= h.manifest;
          heads[i] = (await streams[i]!.next()).value ?? null;
        }
      }
      yield { object: min, manifest };
    }
  }

  private async *familyObjects(fam: Buffer, gen: bigint): AsyncGenerator<{ object: Buffer; manifest: boolean }> {
    const base = bucketGenBase(fam, this.name, gen);
    const end = prefixEnd(base);
    const limit = this.view.pageSize;
    let cursor = base;
    let skip: Buffer | null = null;
    for (;;) {
      const page = await this.view.page(cursor, end, limit, true);
      for (const kv of page) {
        const k = kv.key;
        if (skip && Buffer.compare(k, skip) < 0) continue;
        const o = readSeg(k, base.length);
        if (!o) continue;
        if (fam === P_OBJ_HEAD ? o[1] !== k.length : !parseChunkKey(k, fam)) continue;
        skip = prefixEnd(Buffer.concat([base, seg(o[0])]));
        yield { object: o[0], manifest: fam === P_OBJ_HEAD };
      }
      if (page.length < limit) return;
      const after = nextKey(page[page.length - 1]!.key);
      cursor = skip && Buffer.compare(skip, after) > 0 ? skip : after;
      if (end && Buffer.compare(cursor, end) >= 0) return;
    }
  }

  /** KEYMAP.jsonl records: one full pass over the bucket's object keys (cached). */
  renames(): Promise<Rename[]> {
    if (!this.renamesPromise) {
      const p = this.computeRenames();
      p.catch(() => {
        if (this.renamesPromise === p) this.renamesPromise = null;
      });
      this.renamesPromise = p;
    }
    return this.renamesPromise;
  }

  private async computeRenames(): Promise<Rename[]> {
    const out: Rename[] = [];
    const stack: { object: Buffer; manifest: boolean; dirPrefix: boolean }[] = [];
    const finish = async (c: { object: Buffer; manifest: boolean; dirPrefix: boolean }): Promise<void> => {
      if (!c.manifest) return;
      const r = await this.renameOf(c.object, c.dirPrefix);
      if (r && !r.error) out.push({ encoded: r.target, original: c.object, kind: r.kind });
    };
    for await (const x of this.objectKeys()) {
      while (stack.length && !startsWith(x.object, stack[stack.length - 1]!.object)) await finish(stack.pop()!);
      for (const c of stack) {
        if (x.object.length > c.object.length && x.object[c.object.length] === SLASH) c.dirPrefix = true;
      }
      stack.push({ ...x, dirPrefix: false });
    }
    while (stack.length) await finish(stack.pop()!);
    return out.sort((a, b) => Buffer.compare(a.encoded, b.encoded));
  }

  /** The owner's rename decision for one manifest object (resolveObjectFilename). */
  async renameOf(object: Buffer, dirPrefix: boolean, exists?: (t: Buffer) => boolean): Promise<{ target: Buffer; kind: KeymapKind; error: string | null } | null> {
    const has = async (t: Buffer): Promise<boolean> => (exists ? exists(t) : this.objectExists(t));
    if (endsWith(object, META_SUFFIX)) {
      if (!this.opts.renameCollisions) return { target: object, kind: 'meta-suffix-rename', error: 'user S3 object key collides with reserved sidecar suffix .elastickv-meta.json (mount with --rename-collisions)' };
      const target = Buffer.concat([object, Buffer.from(USER_DATA_SUFFIX)]);
      if (await has(target)) return { target, kind: 'meta-suffix-rename', error: 'meta-suffix rename target is also a real object key (rename in S3 first)' };
      return { target, kind: 'meta-suffix-rename', error: null };
    }
    if (dirPrefix) {
      const target = Buffer.concat([object, Buffer.from(LEAF_SUFFIX)]);
      if (await has(target)) return { target, kind: 's3-leaf-data', error: 'leaf-data rename target is also a real object key (rename in S3 first)' };
      return { target, kind: 's3-leaf-data', error: null };
    }
    return null;
  }

  /** --include-orphans: (object, generations) whose blob chunks the owner writes under _orphans/. */
  orphans(): Promise<Map<string, OrphanGroup>> {
    if (!this.orphansPromise) {
      const p = this.computeOrphans();
      p.catch(() => {
        if (this.orphansPromise === p) this.orphansPromise = null;
      });
      this.orphansPromise = p;
    }
    return this.orphansPromise;
  }

  private async computeOrphans(): Promise<Map<string, OrphanGroup>> {
    const st = await this.state();
    const out = new Map<string, OrphanGroup>();
    const base = Buffer.concat([P_BLOB, seg(this.name)]);
    const groups: { gen: bigint; object: Buffer }[] = [];
    await skipScan(this.view, base, prefixEnd(base), (k) => {
      const c = parseChunkKey(k, P_BLOB);
      if (!c) return null;
      groups.push({ gen: c.gen, object: c.object });
      return prefixEnd(Buffer.concat([base, u64(c.gen), seg(c.object)]));
    });
    for (const g of groups) {
      const stale = st.activeGen !== 0n && g.gen !== st.activeGen;
      if (!stale && (await this.view.get(manifestKey(this.name, g.gen, g.object))) !== null) continue;
      const s = g.object.toString('latin1');
      if (s === '' || s === '.' || s === '..') continue;
      const enc = encodeSegment(g.object);
      const grp = out.get(enc) ?? { object: g.object, gens: [] };
      grp.gens.push(g.gen);
      out.set(enc, grp);
    }
    return out;
  }

  async hasUploads(): Promise<boolean> {
    if (await hasPrefix(this.view, this.uploadMetaPrefix())) return true;
    let any = false;
    const p = Buffer.concat([P_UPLOAD_PART, seg(this.name)]);
    await skipScan(this.view, p, prefixEnd(p), (k) => {
      if (parseUploadPartKey(k)) any = true;
      return any ? prefixEnd(p) : null;
    });
    return any;
  }

  uploadMetaPrefix(): Buffer {
    return Buffer.concat([P_UPLOAD_META, this.name, TERMINATOR]);
  }
}

function endsWith(b: Buffer, suffix: string): boolean {
  const s = Buffer.from(suffix, 'latin1');
  return b.length >= s.length && b.compare(s, 0, s.length, b.length - s.length) === 0;
}

/** A file that cannot be rendered: getattr and read fail with EIO. */
class ErrorFile implements FileNode {
  readonly kind = 'file' as const;
  constructor(private readonly err: RecordError) {}
  async size(): Promise<number> {
    throw this.err;
  }
  async read(): Promise<Buffer> {
    throw this.err;
  }
}

type Entry =
  | { pri: 5; kind: 'dir' }
  | { pri: 6; kind: 'error'; key: Buffer; msg: string }
  | { pri: 3; kind: 'body'; mkey: Buffer; object: Buffer }
  | { pri: 2; kind: 'special'; dir: boolean; key: Buffer }
  | { pri: 1; kind: 'sidecar'; mkey: Buffer };

const isFileEntry = (e: Entry): boolean => e.kind === 'body' || e.kind === 'sidecar' || (e.kind === 'special' && !e.dir);
const entryKey = (e: Entry): Buffer => (e.kind === 'body' || e.kind === 'sidecar' ? e.mkey : e.kind === 'error' || e.kind === 'special' ? e.key : Buffer.alloc(0));

/**
 * Two things wanting one name: an error stays an error; a directory and a file
 * cannot share a path (the owner's mkdir or write fails: EIO here); otherwise the
 * owner's last writer wins (an object body over _bucket.json, a body over its
 * neighbours' sidecars never happens since those names are refused or renamed).
 */
function combine(a: Entry | null, b: Entry): Entry {
  if (!a) return b;
  if (a.kind === 'error') return a;
  if (b.kind === 'error') return b;
  if ((a.kind === 'dir' && isFileEntry(b)) || (b.kind === 'dir' && isFileEntry(a))) {
    return { pri: 6, kind: 'error', key: entryKey(a.kind === 'dir' ? b : a), msg: 'a file and a directory share this path (the format owner fails the decode)' };
  }
  return a.pri >= b.pri ? a : b;
}

interface Listing {
  entries: Map<string, Entry>;
}

/** A directory inside a bucket: the object keys under `prefix` (raw, '' or ending in '/'). */
class ObjectDir implements DirNode {
  readonly kind = 'dir' as const;
  private listing: Promise<Listing> | null = null;
  constructor(
    private readonly bucket: Bucket,
    private readonly prefix: Buffer,
  ) {}

  private get isRoot(): boolean {
    return this.prefix.length === 0;
  }

  async list(): Promise<string[]> {
    const p = this.getListing();
    const l = await p;
    // A huge directory's listing is not kept: lookups then probe per name.
    if (l.entries.size > LISTING_KEEP_MAX && this.listing === p) this.listing = null;
    return [...l.entries.keys()];
  }

  async lookup(name: string): Promise<Node | null> {
    if (this.listing) {
      const e = (await this.listing).entries.get(name);
      return e ? this.node(name, e) : null;
    }
    const e = await this.resolveOne(name);
    return e ? this.node(name, e) : null;
  }

  private getListing(): Promise<Listing> {
    if (!this.listing) {
      const p = this.scan();
      p.catch(() => {
        if (this.listing === p) this.listing = null;
      });
      this.listing = p;
    }
    return this.listing;
  }

  /** Children of this directory from one skip-scan per family and generation. */
  private async scan(): Promise<Listing> {
    const b = this.bucket;
    const st = await b.state();
    const manifestDirs = new Set<string>();
    const prefixDirs = new Set<string>();
    const manifestObjs = new Map<string, Buffer>(); // name -> manifest key (newest gen wins)
    const allObjs = new Set<string>();
    for (const gen of st.gens) {
      for (const fam of OBJECT_FAMILIES) {
        const base = bucketGenBase(fam, b.name, gen);
        const start = Buffer.concat([base, segPrefix(this.prefix)]);
        await skipScan(b.view, start, prefixEnd(start), (k) => {
          const o = readSeg(k, base.length);
          if (!o) return null;
          if (fam === P_OBJ_HEAD ? o[1] !== k.length : !parseChunkKey(k, fam)) return null;
          const object = o[0];
          if (!startsWith(object, this.prefix)) return null;
          const rest = object.subarray(this.prefix.length);
          const slash = rest.indexOf(SLASH);
          if (slash >= 0) {
            const name = rest.subarray(0, slash).toString('latin1');
            prefixDirs.add(name);
            if (fam === P_OBJ_HEAD) manifestDirs.add(name);
            return prefixEnd(Buffer.concat([base, segPrefix(object.subarray(0, this.prefix.length + slash + 1))]));
          }
          const name = rest.toString('latin1');
          allObjs.add(name);
          if (fam === P_OBJ_HEAD) {
            if (!manifestObjs.has(name)) manifestObjs.set(name, k);
            return null;
          }
          return prefixEnd(Buffer.concat([base, seg(object)]));
        });
      }
    }
    const entries = new Map<string, Entry>();
    const put = (rawName: string, e: Entry): void => {
      const name = Buffer.from(rawName, 'latin1').toString('utf8');
      if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return;
      entries.set(name, combine(entries.get(name) ?? null, e));
    };
    if (this.isRoot) for (const s of await this.specials()) put(s, this.specialEntry(s));
    for (const d of manifestDirs) put(d, { pri: 5, kind: 'dir' });
    for (const [name, mkey] of manifestObjs) {
      for (const [n, e] of await this.objectEntries(Buffer.from(name, 'latin1'), mkey, prefixDirs.has(name), (t) => allObjs.has(t.toString('latin1')))) put(n, e);
    }
    return { entries };
  }

  /** Special names at the bucket root that exist. */
  private async specials(): Promise<string[]> {
    const b = this.bucket;
    const out: string[] = [];
    const st = await b.state();
    if (st.metaValue !== null) out.push(BUCKET_JSON);
    if ((await b.renames()).length) out.push(KEYMAP_FILE);
    if (b.opts.includeOrphans && (await b.orphans()).size) out.push(ORPHANS_DIR);
    if (b.opts.includeIncompleteUploads && (await b.hasUploads())) out.push(UPLOADS_DIR);
    return out;
  }

  private specialEntry(name: string): Entry {
    return { pri: 2, kind: 'special', dir: name === ORPHANS_DIR || name === UPLOADS_DIR, key: this.bucket.metaKey };
  }

  private async specialExists(name: string): Promise<boolean> {
    const b = this.bucket;
    switch (name) {
      case BUCKET_JSON:
        return (await b.state()).metaValue !== null;
      case KEYMAP_FILE:
        return (await b.renames()).length > 0;
      case ORPHANS_DIR:
        return b.opts.includeOrphans && (await b.orphans()).size > 0;
      case UPLOADS_DIR:
        return b.opts.includeIncompleteUploads && (await b.hasUploads());
    }
    return false;
  }

  /** The names one manifest object produces in this directory (raw latin1 names). */
  private async objectEntries(name: Buffer, mkey: Buffer, dirPrefix: boolean, exists?: (t: Buffer) => boolean): Promise<[string, Entry][]> {
    const object = Buffer.concat([this.prefix, name]);
    if (object.includes(0x5c)) {
      // safeJoinUnderRoot refuses '\\' (a separator on Windows): the owner's decode fails.
      return [[name.toString('latin1'), { pri: 6, kind: 'error', key: mkey, msg: 'object key contains a backslash (the format owner refuses it; rename in S3 first)' }]];
    }
    const r = await this.bucket.renameOf(object, dirPrefix, exists ? (t) => exists(t.subarray(this.prefix.length)) : undefined);
    const l = (b: Buffer): string => b.subarray(this.prefix.length).toString('latin1');
    if (r?.error) return [[l(r.target), { pri: 6, kind: 'error', key: mkey, msg: r.error }]];
    const target = r ? r.target : object;
    return [
      [l(target), { pri: 3, kind: 'body', mkey, object }],
      [l(target) + META_SUFFIX, { pri: 1, kind: 'sidecar', mkey }],
    ];
  }

  /** lookup() without a listing: probe the few objects that could produce `name`. */
  private async resolveOne(name: string): Promise<Entry | null> {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return null;
    const raw = Buffer.from(name, 'utf8');
    const b = this.bucket;
    let best: Entry | null = null;
    // The directory probe and each candidate object's probes go out together (a round trip
    // each on a live cluster); their answers combine in the order they always did.
    const isDir = b.anyObjectUnder(Buffer.concat([this.prefix, raw, Buffer.of(SLASH)]), true);
    const bases = new Set<string>();
    const strip = (s: string, suf: string): string | null => (s.endsWith(suf) && s.length > suf.length ? s.slice(0, -suf.length) : null);
    const addBase = (s: string | null): void => {
      if (s !== null) bases.add(s);
    };
    const latin = raw.toString('latin1');
    addBase(latin);
    addBase(strip(latin, LEAF_SUFFIX));
    addBase(strip(latin, USER_DATA_SUFFIX));
    const f = strip(latin, META_SUFFIX);
    if (f !== null) {
      addBase(f);
      addBase(strip(f, LEAF_SUFFIX));
      addBase(strip(f, USER_DATA_SUFFIX));
    }
    const produced = [...bases].map(async (base): Promise<[string, Entry][]> => {
      const nb = Buffer.from(base, 'latin1');
      const object = Buffer.concat([this.prefix, nb]);
      // Whether keys go on below the object is asked beside its manifest, not after it.
      const under = b.anyObjectUnder(Buffer.concat([object, Buffer.of(SLASH)]), false);
      under.catch(() => {}); // unused when there is no manifest
      const mkey = await b.manifestOf(object);
      if (!mkey) return [];
      return this.objectEntries(nb, mkey, await under);
    });
    const [dir, ...perBase] = await Promise.all([isDir, ...produced]);
    if (dir) best = { pri: 5, kind: 'dir' };
    for (const entries of perBase as [string, Entry][][]) {
      for (const [n, e] of entries) {
        if (n === latin) best = combine(best, e);
      }
    }
    if (this.isRoot && (await this.specialExists(name))) best = combine(best, this.specialEntry(name));
    return best;
  }

  private path(name: string): string {
    return `/s3/${this.bucket.enc}/${Buffer.from(this.prefix).toString('utf8')}${name}`;
  }

  private async node(name: string, e: Entry): Promise<Node | null> {
    const b = this.bucket;
    const room = b.room;
    switch (e.kind) {
      case 'dir':
        return new ObjectDir(b, Buffer.concat([this.prefix, Buffer.from(name, 'utf8'), Buffer.of(SLASH)]));
      case 'error':
        return new ErrorFile(new RecordError(e.key, e.msg));
      case 'sidecar':
        return room.ctx.files.rendered(this.path(name), async () => renderSidecar(await room.manifest(e.mkey)));
      case 'body': {
        const gen = parseManifestKey(e.mkey)!.gen;
        return new ObjectBodyFile(async () => buildLayout(b.name, gen, e.object, await room.manifest(e.mkey), e.mkey), room.chunks);
      }
      case 'special':
        return this.special(name);
    }
  }

  private async special(name: string): Promise<Node | null> {
    const b = this.bucket;
    const files = b.room.ctx.files;
    switch (name) {
      case BUCKET_JSON:
        return files.rendered(this.path(name), async () => {
          const st = await b.state();
          if (st.metaValue === null) throw new RecordError(b.metaKey, 'bucket meta vanished');
          try {
            return renderBucketJson(b.name, decodeBucketMeta(st.metaValue));
          } catch (e) {
            throw new RecordError(b.metaKey, `invalid !s3|bucket|meta value: ${e instanceof Error ? e.message : String(e)}`);
          }
        });
      case KEYMAP_FILE:
        return files.streamed(this.path(name), async (write, drain) => {
          const out = batchedLines(write, drain);
          for (const r of await b.renames()) {
            const pending = out.push(encodeLine({ encoded: goStrOf(r.encoded), original: r.original.toString('base64url'), kind: r.kind }));
            if (pending) await pending;
          }
          out.flush();
        });
      case ORPHANS_DIR:
        return new OrphansDir(b);
      case UPLOADS_DIR:
        return new StaticDir(
          new Map([
            [
              UPLOADS_FILE,
              files.streamed(`/s3/${b.enc}/${UPLOADS_DIR}/${UPLOADS_FILE}`, async (write, drain) => {
                const out = batchedLines(write, drain);
                const line = (prefix: Buffer, key: Buffer, value: Buffer): Promise<void> | undefined =>
                  out.push(encodeLine({ prefix: prefix.toString('latin1'), key: new GoB64(key), value: new GoB64(value) }));
                for await (const kv of b.view.scanPrefix(b.uploadMetaPrefix())) await line(P_UPLOAD_META, kv.key, kv.value);
                for await (const kv of b.view.scanPrefix(Buffer.concat([P_UPLOAD_PART, seg(b.name)]))) {
                  if (parseUploadPartKey(kv.key)) await line(P_UPLOAD_PART, kv.key, kv.value);
                }
                out.flush();
              }),
            ],
          ]),
        );
    }
    return null;
  }
}

function goStrOf(b: Buffer): GoStr {
  return new GoStr(b);
}

/** _orphans/<encoded object>/gen-<n>/<uploadID>_<partNo>_<chunkNo>_<partVersion>.bin */
class OrphansDir implements DirNode {
  readonly kind = 'dir' as const;
  constructor(private readonly bucket: Bucket) {}
  async list(): Promise<string[]> {
    return [...(await this.bucket.orphans()).keys()];
  }
  async lookup(name: string): Promise<Node | null> {
    const g = (await this.bucket.orphans()).get(name);
    if (!g) return null;
    const b = this.bucket;
    const dirs = new Map<string, Node | (() => Promise<Node | null>)>();
    for (const gen of g.gens) {
      dirs.set(`gen-${gen}`, async () => orphanGenDir(b, name, g.object, gen));
    }
    return new StaticDir(dirs);
  }
}

async function orphanGenDir(b: Bucket, encObj: string, object: Buffer, gen: bigint): Promise<DirNode> {
  const prefix = Buffer.concat([bucketGenBase(P_BLOB, b.name, gen), seg(object)]);
  const files = new Map<string, Node>();
  for await (const kv of b.view.scanPrefix(prefix, { keysOnly: true })) {
    const c = parseChunkKey(kv.key, P_BLOB);
    if (!c) continue;
    const fname = `${encodeSegment(c.uploadId)}_${hex16(c.partNo)}_${hex16(c.chunkNo)}_${hex16(c.partVersion)}.bin`;
    const key = kv.key;
    files.set(
      fname,
      b.room.ctx.files.rendered(`/s3/${b.enc}/${ORPHANS_DIR}/${encObj}/gen-${gen}/${fname}`, async () => {
        const v = await b.view.get(key);
        if (v === null) throw new RecordError(key, 'blob chunk vanished');
        return v;
      }),
    );
  }
  return new StaticDir(files);
}

class S3RootDir implements DirNode {
  readonly kind = 'dir' as const;
  constructor(private readonly buckets: Map<string, Bucket>) {}
  async list(): Promise<string[]> {
    return [...this.buckets.keys()];
  }
  async lookup(name: string): Promise<Node | null> {
    const b = this.buckets.get(name);
    return b ? new ObjectDir(b, Buffer.alloc(0)) : null;
  }
}

export const s3Adapter: Adapter = {
  name: 's3',
  root: async (ctx) => {
    const room = new S3Room(ctx);
    const buckets = await room.buckets();
    if (buckets.size === 0) return null;
    return new S3RootDir(buckets);
  },
};
