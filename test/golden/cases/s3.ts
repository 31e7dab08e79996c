import type { GoldenFixture } from '../fixtures.js';

/** s3 golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const s3Fixtures: GoldenFixture[] = [];
