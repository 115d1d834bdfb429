import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { testTimeout: 20_000, include: ['test/node.test.ts', 'test/declarations.test.ts'] },
});
