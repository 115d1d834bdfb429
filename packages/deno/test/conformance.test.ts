import { cases, deviationFor, runCase, type Subject } from '@comm/conformance';
import * as api from '../dist/index.js';

// The shared suite, one Deno.test per conformance case, in this runtime (Deno): the code under test
// runs in Deno, and so do the fixtures the cases start (`command`).
const subject: Subject = {
  api,
  entry: new URL('../dist/index.js', import.meta.url).href,
  command: (script, args) => [Deno.execPath(), 'run', '-A', script, ...args],
};

/** runCase has the case's own timeout and bounded cleanups; this is the backstop over both. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

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
