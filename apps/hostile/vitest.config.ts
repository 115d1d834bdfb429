import { defineConfig } from 'vitest/config';

// One test per backend, each running every scenario in short mode on fresh servers.
export default defineConfig({
  test: { testTimeout: 240_000, hookTimeout: 20_000, include: ['test/**/*.test.ts'] },
});
