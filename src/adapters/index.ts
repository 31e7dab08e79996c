import { dynamodbAdapter } from './dynamodb/index.js';
import { redisAdapter } from './redis/index.js';
import { s3Adapter } from './s3/index.js';
import { sqsAdapter } from './sqs/index.js';
import type { Adapter } from './types.js';

/** Every adapter room, in the tree's top-level order. */
export const ALL_ADAPTERS: Adapter[] = [dynamodbAdapter, s3Adapter, redisAdapter, sqsAdapter];
