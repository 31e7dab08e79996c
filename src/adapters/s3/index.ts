import type { Adapter } from '../types.js';

/** The s3 room (being written). */
export const s3Adapter: Adapter = {
  name: 's3',
  root: async () => null,
};
