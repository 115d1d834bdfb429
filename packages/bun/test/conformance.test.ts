import { describe, it } from 'bun:test';
import process from 'node:process';
import { cases, deviationFor, runCase, type Subject } from '@comm/conformance';
import * as api from '../src/index.js';

// The shared suite, one case per conformance case, in this runtime (Bun): fixtures run in Bun too.
const subject: Subject = {
  api,
  entry: new URL('../dist/index.js', import.meta.url).href,
  command: (script, args) => [process.execPath, script, ...args],
};

describe(`conformance on @comm/${api.backend.name}`, () => {
  for (const c of cases) {
    const deviation = deviationFor(api.backend, c);
    if (deviation) it.skip(`${c.id}: deviation: ${deviation.reason} (${deviation.upstream})`, () => {});
    else it(`${c.id}: ${c.title}`, () => runCase(c, subject), (c.timeoutMs ?? 10_000) + 6_000);
  }
});
