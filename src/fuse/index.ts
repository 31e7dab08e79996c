/**
 * Picks the kernel-facing FUSE layer: our libfuse3 binding (native/ekvfuse.c,
 * NativeFuseMount) or fuse-native (libfuse2, FuseMount). Both have the same
 * surface. A native addon that cannot load falls back to fuse-native with one
 * warning.
 */
import { FuseMount, type MountOptions } from './mount.js';
import { loadAddon, NativeFuseMount } from './native.js';
import { DEFAULT_FUSE_BACKEND, type FuseBackend } from './backends.js';

export { DEFAULT_FUSE_BACKEND, FUSE_BACKENDS, type FuseBackend } from './backends.js';

/** What runMount needs of a mount. */
export interface KernelMount {
  mount(): Promise<void>;
  unmount(): Promise<void>;
  /** Resolves once the kernel session has ended and been reported (the native backend). */
  readonly exited?: Promise<void>;
}

export function createFuseMount(opts: MountOptions & { backend?: FuseBackend }): KernelMount {
  const backend = opts.backend ?? DEFAULT_FUSE_BACKEND;
  if (backend === 'native') {
    try {
      loadAddon();
      return new NativeFuseMount(opts);
    } catch (e) {
      opts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'native FUSE backend unavailable; falling back to fuse-native');
    }
  }
  return new FuseMount(opts);
}

export { FuseMount, NativeFuseMount };
export { addonSha256, mallocTrimmer } from './native.js';
