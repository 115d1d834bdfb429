import { cases, deviationFor, runCase, type Subject, within } from '@comm/conformance';
import * as api from '../dist/index.js';

// The shared suite, one Deno.test per conformance case, in this runtime (Deno): the code under test
// runs in Deno, and so do the fixtures the cases start (`command`).
const subject: Subject = {
  api,
  entry: new URL('../dist/index.js', import.meta.url).href,
  command: (script, args) => [Deno.execPath(), 'run', '-A', script, ...args],
};

for (const c of cases) {
  const deviation = deviationFor(api.backend, c);
  if (deviation)
    Deno.test({
      name: `${c.id}: deviation: ${deviation.reason} (${deviation.upstream})`,
      ignore: true,
      fn: () => {},
    });
  else
    Deno.test({
      name: `${c.id}: ${c.title}`,
      // Cases close what they open, but some of it (a peer's FIN, a child's exit) settles after the case.
      sanitizeOps: false,
      sanitizeResources: false,
      fn: () => within(runCase(c, subject), (c.timeoutMs ?? 10_000) + 6_000, c.id),
    });
}
