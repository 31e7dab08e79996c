import type { Adapter } from '../types.js';

/** The sqs room (being written). */
export const sqsAdapter: Adapter = {
  name: 'sqs',
  root: async () => null,
};
