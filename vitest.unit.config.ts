import { defineConfig } from 'vitest/config';

/** In-process tests only (no build, no FUSE): `npx vitest run --config vitest.unit.config.ts test/adapters/`. */
export default defineConfig({ test: { include: ['test/**/*.test.ts'], testTimeout: 60_000 } });
