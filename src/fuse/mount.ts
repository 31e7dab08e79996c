/**
 * Thin adapter from kernel FUSE ops (fuse-native, libfuse2) to the Tree.
 * Read-only: the mount carries the `ro` flag and every write-side op answers
 * EROFS. The tree is immutable for the life of the mount, so entries and
 * attributes get long kernel timeouts and file pages stay in the kernel cache
 * across opens (kernel_cache).
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Tree, TreeError } from '../tree/tree.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse = require('fuse-native') as FuseCtor;

interface FuseCtor {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  ENOENT: number;
  EIO: number;
  EROFS: number;
  ENOTDIR: number;
  EISDIR: number;
  EINVAL: number;
  EACCES: number;
  EBADF: number;
  ENOSYS: number;
  ENODATA?: number;
}
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

export interface MountOptions {
  mountpoint: string;
  tree: Tree;
  log: Logger;
  /** Kernel entry/attr cache timeout, seconds. */
  cacheTimeout?: number;
  maxRead?: number;
  debug?: boolean;
  /** Gauge of kernel operations in flight (metrics). */
  inflight?: { inc(): void; dec(): void };
}

const ERRNO: Record<TreeError['errno'], number> = {
  ENOENT: -2,
  EIO: -5,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
};
const EROFS = -30;
const EBADF = -9;

function errno(e: unknown): number {
  if (e instanceof TreeError) return ERRNO[e.errno];
  return ERRNO.EIO;
}

export class FuseMount {
  private fuse: FuseInstance | null = null;
  private readonly handles = new Map<number, string>();
  private nextFd = 1;
  private readonly mountedAt = new Date();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;

  constructor(private readonly o: MountOptions) {}

  private stat(kind: 'dir' | 'file', size: number): Record<string, unknown> {
    const t = this.mountedAt;
    return {
      mtime: t,
      atime: t,
      ctime: t,
      size,
      nlink: kind === 'dir' ? 2 : 1,
      mode: kind === 'dir' ? 0o40555 : 0o100444,
      uid: this.uid,
      gid: this.gid,
      blocks: Math.ceil(size / 512),
      blksize: 4096,
    };
  }

  private ops(): Record<string, unknown> {
    const inner = this.o.tree;
    const g = this.o.inflight;
    const track = <T>(p: () => Promise<T>): Promise<T> => {
      if (!g) return p();
      g.inc();
      return p().finally(() => g.dec());
    };
    const tree = {
      getattr: (path: string) => track(() => inner.getattr(path)),
      readdir: (path: string) => track(() => inner.readdir(path)),
      file: (path: string) => track(() => inner.file(path)),
      read: (path: string, pos: number, len: number) => track(() => inner.read(path, pos, len)),
    };
    const rofs = (...args: unknown[]): void => {
      const cb = args[args.length - 1] as (code: number) => void;
      cb(EROFS);
    };
    return {
      getattr: (path: string, cb: (code: number, st?: unknown) => void) => {
        tree.getattr(path).then(
          (a) => cb(0, this.stat(a.kind, a.size)),
          (e) => cb(errno(e)),
        );
      },
      readdir: (path: string, cb: (code: number, names?: string[]) => void) => {
        tree.readdir(path).then(
          (names) => cb(0, names),
          (e) => cb(errno(e)),
        );
      },
      open: (path: string, flags: number, cb: (code: number, fd?: number) => void) => {
        if ((flags & 3) !== 0 || flags & 0o1000 /* O_TRUNC */) return cb(EROFS);
        tree.file(path).then(
          () => {
            const fd = this.nextFd++;
            this.handles.set(fd, path);
            cb(0, fd);
          },
          (e) => cb(errno(e)),
        );
      },
      read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => {
        const p = this.handles.get(fd) ?? path;
        tree.read(p, pos, len).then(
          (data) => {
            data.copy(buf, 0, 0, Math.min(len, data.length));
            cb(Math.min(len, data.length));
          },
          (e) => cb(errno(e)),
        );
      },
      release: (path: string, fd: number, cb: (code: number) => void) => {
        if (!this.handles.delete(fd)) return cb(EBADF);
        cb(0);
      },
      opendir: (path: string, flags: number, cb: (code: number, fd?: number) => void) => {
        tree.getattr(path).then(
          (a) => (a.kind === 'dir' ? cb(0, 0) : cb(ERRNO.ENOTDIR)),
          (e) => cb(errno(e)),
        );
      },
      releasedir: (path: string, fd: number, cb: (code: number) => void) => cb(0),
      access: (path: string, mode: number, cb: (code: number) => void) => {
        if (mode & 2) return cb(EROFS);
        tree.getattr(path).then(
          () => cb(0),
          (e) => cb(errno(e)),
        );
      },
      statfs: (path: string, cb: (code: number, st?: unknown) => void) => {
        cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 1, namemax: 255 });
      },
      // ENOSYS: no file has one, and the kernel stops asking (EOPNOTSUPP), as the native backend answers.
      getxattr: (path: string, name: string, position: number, cb: (code: number) => void) => cb(-38 /* ENOSYS */),
      listxattr: (path: string, cb: (code: number, list?: string[]) => void) => cb(0, []),
      write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) => cb(EROFS),
      create: rofs,
      unlink: rofs,
      rename: rofs,
      link: rofs,
      symlink: rofs,
      mkdir: rofs,
      rmdir: rofs,
      truncate: rofs,
      ftruncate: rofs,
      chmod: rofs,
      chown: rofs,
      utimens: rofs,
      mknod: rofs,
      setxattr: rofs,
      removexattr: rofs,
    };
  }

  mount(): Promise<void> {
    const timeout = this.o.cacheTimeout ?? 3600;
    const fuse = new Fuse(this.o.mountpoint, this.ops(), {
      // fuse-native has no "ro" switch; its fsname is passed through as -o fsname=…,
      // so the read-only and cache options ride along in the same comma-separated list.
      fsname: 'ekv-mount,ro',
      subtype: 'ekv',
      kernelCache: true,
      entryTimeout: timeout,
      attrTimeout: timeout,
      maxRead: this.o.maxRead ?? 1 << 20,
      debug: this.o.debug ?? false,
      // Renders of whole-scope files (CHECKSUMS, messages.jsonl) may take longer than fuse-native's default 15 s.
      timeout: false,
      force: false,
      mkdir: false,
    });
    return new Promise((resolve, reject) => {
      fuse.mount((err) => {
        if (err) return reject(err);
        this.fuse = fuse;
        resolve();
      });
    });
  }

  unmount(): Promise<void> {
    const f = this.fuse;
    this.fuse = null;
    if (!f) return Promise.resolve();
    return new Promise((resolve, reject) => f.unmount((err) => (err && isMounted(this.o.mountpoint) ? reject(err) : resolve())));
  }
}

/** True when `mnt` is currently a mountpoint (per /proc/self/mountinfo). */
export function isMounted(mnt: string): boolean {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  const want = mnt.replace(/\/+$/, '') || '/';
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f[4] !== undefined && unescapeMountPath(f[4]) === want) return true;
  }
  return false;
}

function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
