import { describe, expect, test } from 'vitest';
import { scenarios } from '../src/scenarios.js';
import { allBackends } from '../src/server.js';
import { runSuite } from '../src/suite.js';
import { formatTable } from '../src/table.js';

// The short mode: every scenario, scaled down, on each backend in its own runtime.
describe('hostile traffic (short)', () => {
  for (const backend of allBackends)
    test(backend, async () => {
      const rows = await runSuite({ backends: [backend], scenarios, short: true });
      console.log(formatTable(rows, `${backend}, short mode`));
      const failed = rows
        .filter((r) => r.status === 'FAIL')
        .map((r) => `${r.scenario.name}: ${r.failures.join('; ')}`);
      expect(failed).toEqual([]);
    }, 240_000);
});
