/**
 * The lazy virtual tree's node model. Knows nothing of FUSE.
 *
 * A directory lists its children's names (single path segments, never '', '.', '..'
 * and never containing '/') and looks one up by name. A file knows its exact size
 * and reads any byte range. Nodes are resolved lazily, on demand, from page scans
 * and point reads; the Tree caches resolved nodes by path and rendered bytes by
 * cache key.
 */
export type Node = DirNode | FileNode;

export interface DirNode {
  readonly kind: 'dir';
  /**
   * Child names in the order readdir returns them. A listing that pages through many keys
   * stops, throwing `signal`'s reason, once it aborts (every reader waiting for it left).
   */
  list(signal?: AbortSignal): Promise<string[]>;
  /** The child with this name, or null. Must agree with list(). */
  lookup(name: string): Promise<Node | null>;
  /**
   * Optional, for directories of small files rendered from one key range: the listing
   * (the same names, in the same order, as list()) in batches, with each file's whole
   * bytes rendered in the same scan with values. A listing with attributes (readdirplus,
   * `ls -l`, a copy) then costs one pass over the range instead of a keys-only pass and
   * a lookup, a read and a render per file. The tree stops between batches once `signal`
   * aborts; one that makes a long pass before its first batch checks it too.
   */
  entries?(signal?: AbortSignal): AsyncGenerator<Entry[]>;
}

/**
 * One child from DirNode.entries(). `bytes`: a file's whole content (what read() of
 * its node serves); absent for a directory, and for a file the pass did not render
 * (too large, or a record that fails: its lookup then reports the failure).
 */
export interface Entry {
  name: string;
  kind: 'file' | 'dir';
  bytes?: Buffer;
}

export interface FileNode {
  readonly kind: 'file';
  /** Exact size in bytes (getattr reports it; the tree is immutable). */
  size(): Promise<number>;
  /** Up to `length` bytes from `offset`; shorter only at end of file. */
  read(offset: number, length: number): Promise<Buffer>;
}

/** A decode failure of one record: the file fails with EIO, the log names the key. */
export class RecordError extends Error {
  constructor(
    readonly key: Buffer | string,
    message: string,
  ) {
    super(message);
    this.name = 'RecordError';
  }
}

/** A lookup that must be refused with a specific errno name (e.g. EIO for a path whose record is corrupt). */
export function isDir(n: Node | null | undefined): n is DirNode {
  return !!n && n.kind === 'dir';
}
export function isFile(n: Node | null | undefined): n is FileNode {
  return !!n && n.kind === 'file';
}

/** A directory whose children are known up front (small, fixed layouts). */
export class StaticDir implements DirNode {
  readonly kind = 'dir' as const;
  constructor(private readonly children: ReadonlyMap<string, Node | (() => Promise<Node | null>)>) {}
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const name of this.children.keys()) {
      if ((await this.lookup(name)) !== null) out.push(name);
    }
    return out;
  }
  async lookup(name: string): Promise<Node | null> {
    const c = this.children.get(name);
    if (c === undefined) return null;
    return typeof c === 'function' ? c() : c;
  }
}

/** A file whose whole content is a buffer already in hand. */
export class BufferFile implements FileNode {
  readonly kind = 'file' as const;
  constructor(readonly data: Buffer) {}
  async size(): Promise<number> {
    return this.data.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    return this.data.subarray(offset, Math.min(this.data.length, offset + length));
  }
}
