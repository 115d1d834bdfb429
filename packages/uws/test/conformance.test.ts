import { cases, deviationFor, runCase, type Subject } from '@comm/conformance';
import { describe, it } from 'vitest';
import * as api from '../src/conformance.js';

// The shared suite, one vitest case per conformance case, its independent client speaking comm-stream
// over WebSocket (the module's `conformanceTransport`). Declared deviations are listed with their reason.
const subject: Subject = {
  api,
  entry: new URL('../dist/index.js', import.meta.url).href,
  transport: api.conformanceTransport,
};

describe(`conformance on @comm/${api.backend.name}`, () => {
  for (const c of cases) {
    const deviation = deviationFor(api.backend, c);
    if (deviation) it.skip(`${c.id}: deviation: ${deviation.reason} (${deviation.upstream})`, () => {});
    else it(`${c.id}: ${c.title}`, () => runCase(c, subject), (c.timeoutMs ?? 10_000) + 6_000);
  }
});
