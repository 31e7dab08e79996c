/** The kernel-facing FUSE layers (see index.ts), named apart so the CLI's options need not load them. */
export type FuseBackend = 'native' | 'fuse-native';
export const FUSE_BACKENDS: readonly FuseBackend[] = ['native', 'fuse-native'];
export const DEFAULT_FUSE_BACKEND: FuseBackend = 'native';
