import { defineConfig } from 'vitest/config';

/** Differential tests against a locally built elastickv decoder: scripts/owner-fuzz.sh. */
export default defineConfig({ test: { include: ['test/owner/**/*.fuzz.ts'], testTimeout: 600_000 } });
