import type { GoldenFixture } from '../fixtures.js';

/** sqs golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const sqsFixtures: GoldenFixture[] = [];
