/**
 * Interned paths of the tree as small integer ids, for state the daemon keeps per file for
 * the whole mount (the kernel's inodes, the sha256 of every file read): a full copy touches
 * every file, so that state grows with the dataset, and a JS string plus a Map entry per
 * path cost about 150 bytes a file, each time it was kept.
 *
 * A path is (parent id, name): parents, name offsets and an open-addressing hash index live
 * in typed arrays, the names' UTF-8 bytes back to back in one arena, so a path costs about
 * its name's length plus 20 bytes and no object of its own. Ids are never reused: the tree
 * is immutable, and a path keeps its id for the life of the mount.
 */
export const ROOT_ID = 1;
export const KIND_FILE = 1;
export const KIND_DIR = 2;

const EMPTY_SLOT = 0;

/** `a`, or a copy of it at least `need` long (doubling), made by `make`. */
export function grown<T extends Uint8Array | Uint16Array | Uint32Array | Int32Array>(a: T, need: number, make: (n: number) => T): T {
  if (need <= a.length) return a;
  let n = a.length * 2;
  while (n < need) n *= 2;
  const b = make(n);
  b.set(a);
  return b;
}

/** The absolute path of `name` in the directory `dir` (an absolute path, "/" for the root). */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export class PathTable {
  /** Parent id, by id (0 for the root and the unused id 0). */
  private parents = new Uint32Array(1024);
  /** Start of each id's name in the arena; the name ends where the next id's begins. */
  private offsets = new Uint32Array(1024);
  private arena = Buffer.allocUnsafe(64 * 1024);
  private arenaUsed = 0;
  /**
   * Open addressing, linear probing: ids, 0 = empty; at most three quarters full. (At most half
   * full, the index of a 1M-item table's 1.1M paths took 16 MB instead of 8, for lookups
   * 15-25 % faster: ~0.1 µs a lookup.)
   */
  private slots = new Int32Array(2048);
  private next = ROOT_ID + 1;
  private readonly scratch = Buffer.allocUnsafe(12 * 1024);
  /**
   * Absolute path by id, for ids that are parents (directories: asked for often). Bounded:
   * a table with a partition-key directory per item has as many directories as files, so
   * past `dirPathsMax` it starts over (paths are rebuilt from the arrays on demand).
   */
  private readonly dirPaths = new Map<number, string>([[ROOT_ID, '/']]);

  /** What each id is, once the tree has said: 0 unknown, KIND_FILE, KIND_DIR. */
  private kinds = new Uint8Array(1024);
  /**
   * Directory listings already made, by directory id: where its child ids start in
   * `listed` (plus one; 0 = not listed) and how many. The tree is immutable, so a
   * listing made once is the listing (4 bytes a child, 8 an id).
   */
  private listStart = new Uint32Array(1024);
  private listLen = new Uint32Array(1024);
  private listed = new Uint32Array(4096);
  private listedUsed = 0;

  constructor(private readonly dirPathsMax = 65536) {}

  /** Record what `id` is (a file or a directory). */
  setKind(id: number, kind: typeof KIND_FILE | typeof KIND_DIR): void {
    if (id < ROOT_ID || id >= this.next) return;
    this.kinds = grown(this.kinds, id + 1, (n) => new Uint8Array(n));
    this.kinds[id] = kind;
  }

  /** What `id` is, if recorded: KIND_FILE, KIND_DIR, or 0. */
  kind(id: number): number {
    return id < this.kinds.length ? this.kinds[id]! : 0;
  }

  /** Keep the listing of directory `id` (its children's ids, in listing order). The first one kept stays. */
  setListing(id: number, children: ArrayLike<number>): void {
    if (id < ROOT_ID || id >= this.next || this.listing(id)) return;
    this.listStart = grown(this.listStart, id + 1, (n) => new Uint32Array(n));
    this.listLen = grown(this.listLen, id + 1, (n) => new Uint32Array(n));
    this.listed = grown(this.listed, this.listedUsed + children.length, (n) => new Uint32Array(n));
    this.listed.set(children, this.listedUsed);
    this.listStart[id] = this.listedUsed + 1;
    this.listLen[id] = children.length;
    this.listedUsed += children.length;
  }

  /** The kept listing of directory `id` (child ids; read-only), or null if none was kept. */
  listing(id: number): Uint32Array | null {
    const start = id < this.listStart.length ? this.listStart[id]! : 0;
    return start === 0 ? null : this.listed.subarray(start - 1, start - 1 + this.listLen[id]!);
  }

  /** Ids handed out so far, the root included. */
  get size(): number {
    return this.next - 1;
  }

  /**
   * Bytes this table holds (its arrays and name arena as allocated, growth room included): the
   * state that grows with every path the mount has seen and is never let go.
   */
  get heldBytes(): number {
    let n = this.arena.length + this.scratch.length;
    for (const a of [this.parents, this.offsets, this.slots, this.kinds, this.listStart, this.listLen, this.listed]) n += a.byteLength;
    return n;
  }

  /** UTF-8 of `s` and its length: in the scratch buffer when it fits (valid until the next call). */
  private encode(s: string): [Buffer, number] {
    if (s.length * 3 <= this.scratch.length) return [this.scratch, this.scratch.write(s, 0, 'utf8')];
    const b = Buffer.from(s, 'utf8');
    return [b, b.length];
  }

  /** FNV-1a over the parent id and the name's bytes b[start, end). */
  private static hash(parent: number, b: Buffer, start: number, end: number): number {
    let h = Math.imul(parent ^ 0x811c9dc5, 0x01000193);
    for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    return (h ^ (h >>> 15)) >>> 0;
  }

  /** Where `id`'s name ends in the arena (the next id's start). */
  private nameEnd(id: number): number {
    return id + 1 < this.next ? this.offsets[id + 1]! : this.arenaUsed;
  }

  /** Whether `id` is (parent, the name in b[start, end)). */
  private matches(id: number, parent: number, b: Buffer, start: number, end: number): boolean {
    if (this.parents[id] !== parent) return false;
    const at = this.offsets[id]!;
    if (this.nameEnd(id) - at !== end - start) return false;
    for (let i = start; i < end; i++) if (this.arena[at + i - start] !== b[i]) return false;
    return true;
  }

  /** The slot holding (parent, the name in b[start, end)), or the empty slot where it would go. */
  private slotOf(parent: number, b: Buffer, start: number, end: number): number {
    const mask = this.slots.length - 1;
    for (let s = PathTable.hash(parent, b, start, end) & mask; ; s = (s + 1) & mask) {
      const id = this.slots[s]!;
      if (id === EMPTY_SLOT || this.matches(id, parent, b, start, end)) return s;
    }
  }

  /** Id of `name` under the directory `parent`, or 0 if it has none. */
  find(parent: number, name: string): number {
    const [b, n] = this.encode(name);
    return this.slots[this.slotOf(parent, b, 0, n)]!;
  }

  /** Id of `name` under the directory `parent`, adding it if new. */
  child(parent: number, name: string): number {
    const [b, n] = this.encode(name);
    return this.childAt(parent, b, 0, n);
  }

  /** Id of the name in b[start, end) under `parent`, adding it if new. */
  private childAt(parent: number, b: Buffer, start: number, end: number): number {
    const s = this.slotOf(parent, b, start, end);
    const found = this.slots[s]!;
    if (found !== EMPTY_SLOT) return found;
    const id = this.next++;
    this.parents = grown(this.parents, id + 1, (n) => new Uint32Array(n));
    this.offsets = grown(this.offsets, id + 1, (n) => new Uint32Array(n));
    this.arena = grown(this.arena, this.arenaUsed + (end - start), (n) => Buffer.allocUnsafe(n));
    this.parents[id] = parent;
    this.offsets[id] = this.arenaUsed;
    this.arenaUsed += b.copy(this.arena, this.arenaUsed, start, end);
    if (4 * (id + 1) > 3 * this.slots.length) this.rehash();
    else this.slots[s] = id;
    return id;
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let id = ROOT_ID + 1; id < this.next; id++) {
      let s = PathTable.hash(this.parents[id]!, this.arena, this.offsets[id]!, this.nameEnd(id)) & mask;
      while (slots[s] !== EMPTY_SLOT) s = (s + 1) & mask;
      slots[s] = id;
    }
    this.slots = slots;
  }

  /** The directory of the last path interned, and its id: passes over a directory intern its files one after another. */
  private lastDir = '';
  private lastDirId = 0;

  /** Id of an absolute path ("/a/b"), adding it (and its parents) if new. */
  intern(path: string): number {
    const cut = path.lastIndexOf('/');
    // A sibling of the last path: one probe for its name instead of a walk from the root.
    if (cut > 0 && cut === this.lastDir.length && cut < path.length - 1 && path.startsWith(this.lastDir)) {
      return this.child(this.lastDirId, path.slice(cut + 1));
    }
    const id = this.walk(path, true);
    if (cut > 0 && cut < path.length - 1) {
      this.lastDir = path.slice(0, cut);
      this.lastDirId = this.parents[id]!;
    }
    return id;
  }

  /** Id of an absolute path, or 0 if it was never interned. */
  lookup(path: string): number {
    return this.walk(path, false);
  }

  /**
   * The path's id, one element at a time from the root; adding what is new, or 0 at the
   * first unknown. The path is encoded once and walked by bytes ("/" is 0x2f, which no
   * multi-byte UTF-8 sequence contains), with no string or Buffer per element.
   */
  private walk(path: string, add: boolean): number {
    const [b, n] = this.encode(path);
    let id = ROOT_ID;
    for (let i = 1; i < n && id !== 0; ) {
      let j = i;
      while (j < n && b[j] !== 0x2f) j++;
      id = add ? this.childAt(id, b, i, j) : this.slots[this.slotOf(id, b, i, j)]!;
      i = j + 1;
    }
    return id;
  }

  /**
   * The order of two names in one directory as CHECKSUMS sorts paths (bytewise): their UTF-8
   * bytes, a directory's followed by "/" since every path below it goes on so, a file's ending
   * there. Negative when `a` comes first; 0 only for the same name.
   */
  compareNames(a: number, aDir: boolean, b: number, bDir: boolean): number {
    const arena = this.arena;
    let i = this.offsets[a]!;
    let j = this.offsets[b]!;
    const ie = this.nameEnd(a);
    const je = this.nameEnd(b);
    for (; i < ie && j < je; i++, j++) if (arena[i] !== arena[j]) return arena[i]! - arena[j]!;
    const x = i < ie ? arena[i]! : aDir && j < je ? 0x2f : -1;
    const y = j < je ? arena[j]! : bDir && i < ie ? 0x2f : -1;
    return x - y;
  }

  /** The name of `id` (its last path element). */
  name(id: number): string {
    return this.arena.toString('utf8', this.offsets[id]!, this.nameEnd(id));
  }

  /** The absolute path of `id`, or undefined for an id never handed out. */
  path(id: number): string | undefined {
    if (!Number.isInteger(id) || id < ROOT_ID || id >= this.next) return undefined;
    const known = this.dirPaths.get(id);
    if (known !== undefined) return known;
    const parent = this.parents[id]!;
    let dir = this.dirPaths.get(parent);
    if (dir === undefined) {
      dir = this.path(parent)!;
      if (this.dirPaths.size >= this.dirPathsMax) {
        this.dirPaths.clear();
        this.dirPaths.set(ROOT_ID, '/');
      }
      this.dirPaths.set(parent, dir);
    }
    return childPath(dir, this.name(id));
  }
}
