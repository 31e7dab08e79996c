import type { GoldenFixture } from '../fixtures.js';

/** dynamodb golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const dynamodbFixtures: GoldenFixture[] = [];
