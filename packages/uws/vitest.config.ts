import { defineConfig } from 'vitest/config';

// Cases share the machine's loopback and kernel checks read per-process state: one file at a time.
export default defineConfig({
  test: { testTimeout: 20_000, hookTimeout: 20_000, include: ['test/**/*.test.ts'], fileParallelism: false },
});
