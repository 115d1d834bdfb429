/**
 * Streams and the client (contract section 3), R19: `processRunFunction` runs a named light-weight
 * process whose failure is reported and never ends the server that started it. R2's hand-off to
 * `processRunFunction` for concurrency is in connections.ts.
 */
import assert from 'node:assert/strict';
import type { SocketStream } from '@comm/core/backend';
import { type CaseContext, defineCase } from '../suite.js';
import { captureConsoleError, outcomeWithin, reported, watchUncaught } from './helpers.js';

// ---- R19: processRunFunction ----

defineCase(
  'R19.runs-with-args',
  'processRunFunction runs fn with its args under its name; done gives its value',
  async (t) => {
    const p = t.api.processRunFunction('adder', (a: number, b: number) => a + b, 2, 3);
    assert.equal(p.name, 'adder');
    assert.equal(await p.done, 5);
    assert.equal(p.state, 'finished');
  },
);

defineCase(
  'R19.async-value',
  'an async process is running until it settles, then finished with its value',
  async (t) => {
    let release!: (value: string) => void;
    const gate = new Promise<string>((resolve) => {
      release = resolve;
    });
    const p = t.api.processRunFunction('waiter', async (prefix: string) => `${prefix} ${await gate}`, 'got');
    await t.sleep(20);
    assert.equal(p.state, 'running');
    release('it');
    assert.equal(await p.done, 'got it');
    assert.equal(p.state, 'finished');
  },
);

async function failureReported(
  t: CaseContext,
  name: string,
  fn: () => unknown,
  thrown: Error,
): Promise<void> {
  const errors = captureConsoleError(t);
  const uncaught = watchUncaught(t);
  const p = t.api.processRunFunction(name, fn);
  const outcome = await outcomeWithin(
    p.done.then(
      () => 'resolved',
      () => 'rejected',
    ),
    3000,
    'pending',
  );
  assert.equal(outcome, 'resolved', 'done settles without rejecting');
  assert.equal(p.state, 'failed');
  await t.waitFor(() => reported(errors, name, thrown), 'the failure to be reported on console.error', 2000);
  await t.sleep(20);
  assert.deepEqual(uncaught, [], 'the failure does not reach the host');
}

defineCase(
  'R19.throwing-reported',
  'a process that throws is failed and reported, not propagated',
  async (t) => {
    const thrown = new Error('the process threw on purpose');
    await failureReported(
      t,
      'thrower',
      () => {
        throw thrown;
      },
      thrown,
    );
  },
);

defineCase(
  'R19.rejecting-reported',
  'a process that rejects is failed and reported, not propagated',
  async (t) => {
    const thrown = new Error('the process rejected on purpose');
    await failureReported(
      t,
      'rejecter',
      async () => {
        await t.sleep(10);
        throw thrown;
      },
      thrown,
    );
  },
);

defineCase(
  'R19.failure-keeps-server',
  'a failing process the function started never ends the server: it keeps serving',
  async (t) => {
    const errors = captureConsoleError(t);
    const uncaught = watchUncaught(t);
    const thrown = new Error('the worker failed on purpose');
    const { server, port } = await t.startServer({
      createStream: true,
      function: async (stream: SocketStream) => {
        t.api.processRunFunction('failing worker', async () => {
          await t.sleep(5);
          throw thrown;
        });
        await stream.writeLine('served');
        await stream.close();
      },
    });
    for (let i = 0; i < 3; i++) {
      const client = await t.connect(port);
      assert.equal(await client.readLine(), 'served');
      await t.waitFor(
        () => errors.filter((args) => reported([args], 'failing worker', thrown)).length === i + 1,
        `failure ${i + 1} to be reported`,
        2000,
      );
    }
    assert.equal(server.state, 'listening');
    assert.deepEqual(uncaught, []);
  },
);
