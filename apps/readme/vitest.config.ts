import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 90_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
    // One test file runs servers: its blocks one after another, never two suites at once.
    fileParallelism: false,
  },
});
