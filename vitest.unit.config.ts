import { defineConfig } from 'vitest/config';

/** In-process tests only (no build, no FUSE): `npx vitest run --config vitest.unit.config.ts test/adapters/`. Temp dirs under one TMPDIR per run, removed at its end. */
export default defineConfig({ test: { include: ['test/**/*.test.ts'], globalSetup: ['test/helpers/run-tmpdir.ts'], testTimeout: 60_000 } });
