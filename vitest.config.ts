import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // FUSE mounts and child daemons are real; keep files from fighting over CPU on 2 cores.
    fileParallelism: false,
    pool: 'forks',
  },
});
