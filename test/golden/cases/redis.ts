import type { GoldenFixture } from '../fixtures.js';

/** redis golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const redisFixtures: GoldenFixture[] = [];
