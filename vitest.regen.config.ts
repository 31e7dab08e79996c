import { defineConfig } from 'vitest/config';

/** Only for scripts/golden-regen.sh. */
export default defineConfig({ test: { include: ['test/golden/regen.gen.ts'], testTimeout: 600_000 } });
