import type { Adapter } from './types.js';

/** Every adapter room, in the tree's top-level order. Filled in as rooms land. */
export const ALL_ADAPTERS: Adapter[] = [];
