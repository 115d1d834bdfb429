import { defineConfig } from 'vitest/config';

// A real browser: each test starts Chromium; one file at a time.
export default defineConfig({
  test: { testTimeout: 60_000, hookTimeout: 30_000, include: ['test/**/*.test.ts'], fileParallelism: false },
});
