import type { Adapter } from '../types.js';

/** The redis room (being written). */
export const redisAdapter: Adapter = {
  name: 'redis',
  root: async () => null,
};
