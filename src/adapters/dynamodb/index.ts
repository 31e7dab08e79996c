import type { Adapter } from '../types.js';

/** The dynamodb room (being written). */
export const dynamodbAdapter: Adapter = {
  name: 'dynamodb',
  root: async () => null,
};
