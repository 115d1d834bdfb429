/**
 * Announce and lifecycle (contract section 3): R12 `wait` (the process at once, or a promise that
 * resolves once listening or failed, and never rejects) and R13 `error` (a failure ends the server
 * quietly, or is rethrown as an uncaught exception).
 */
import assert from 'node:assert/strict';
import type { Connection, ListeningSocket, SocketStream } from '@comm/core/backend';
import { type CaseContext, defineCase } from '../suite.js';
import {
  announceRecorder,
  closeAtOnce,
  connectionRefused,
  occupyPort,
  outcomeWithin,
  serverClass,
  startAtOnce,
  watchUncaught,
} from './helpers.js';

// ---- R12: wait ----

defineCase(
  'R12.wait-false-at-once',
  'wait false returns the ServerProcess at once, starting, then listening',
  async (t) => {
    const server = startAtOnce(t);
    assert.ok(server instanceof serverClass(t), 'a ServerProcess, not a promise');
    assert.equal(server.state, 'starting');
    assert.equal(server.socket, null);
    await t.waitFor(() => server.state === 'listening', 'the server to listen');
    const [, port] = t.api.getSocketAddress(server.socket);
    const client = await t.connect(port as number);
    await client.closedByPeer();
  },
);

defineCase(
  'R12.wait-true-listening',
  'wait true resolves to [process, null] once listening: a client connects at once',
  async (t) => {
    const result = await t.api.startUpServer({
      service: 0,
      address: '127.0.0.1',
      function: closeAtOnce,
      wait: true,
    });
    assert.ok(Array.isArray(result) && result.length === 2, 'a pair');
    const [server, condition] = result;
    if (server) t.defer(() => t.api.serverTerminate(server));
    assert.ok(server instanceof serverClass(t));
    assert.equal(condition, null);
    assert.equal(server.state, 'listening');
    const [, port] = t.api.getSocketAddress(server.socket);
    const client = await t.connect(port as number);
    await client.closedByPeer();
  },
);

defineCase(
  'R12.port-in-use',
  'wait true on a port in use resolves to [null, condition] naming the port and EADDRINUSE',
  async (t) => {
    const port = await occupyPort(t);
    const result = await t.api.startUpServer({
      service: port,
      address: '127.0.0.1',
      function: closeAtOnce,
      wait: true,
    });
    const [server, condition] = result;
    if (server) t.defer(() => t.api.serverTerminate(server));
    assert.equal(server, null);
    assert.ok(condition instanceof Error);
    assert.match(condition.message, new RegExp(`\\b${port}\\b`), `names the port: ${condition.message}`);
    assert.ok(condition.message.includes('EADDRINUSE'), `names EADDRINUSE: ${condition.message}`);
  },
);

defineCase(
  'R12.unknown-service-resolves',
  'wait true with an unknown service name resolves, never rejects',
  async (t) => {
    const outcome = await t.api
      .startUpServer({
        service: 'comm-no-such-service',
        address: '127.0.0.1',
        function: closeAtOnce,
        wait: true,
      })
      .then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
    assert.ok('result' in outcome, `rejected with ${String((outcome as { error: unknown }).error)}`);
    const [server, condition] = outcome.result;
    if (server) t.defer(() => t.api.serverTerminate(server));
    assert.equal(server, null);
    assert.ok(condition instanceof Error);
    assert.ok(condition.message.includes('comm-no-such-service'), `names the service: ${condition.message}`);
  },
);

defineCase(
  'R12.announce-throws-never-rejects',
  'wait true never rejects, even when announce throws, and leaves no port bound that nobody serves',
  async (t) => {
    let listening: ListeningSocket | null = null;
    let port = 0;
    const thrown = new Error('announce failed on purpose');
    const outcome = await t.api
      .startUpServer({
        service: 0,
        address: '127.0.0.1',
        wait: true,
        error: false,
        createStream: true,
        function: async (stream: SocketStream) => {
          await stream.writeLine('served');
          await stream.close();
        },
        announce: (socket) => {
          if (!socket) return;
          listening = socket;
          port = t.api.getSocketAddress(socket)[1] as number;
          throw thrown;
        },
      })
      .then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
    // Whatever happened, the listening socket does not outlive the case.
    t.defer(() => (listening as ListeningSocket | null)?.close());
    if ('result' in outcome && outcome.result[0]) {
      const server = outcome.result[0];
      t.defer(() => t.api.serverTerminate(server));
    }
    assert.ok(
      'result' in outcome,
      `wait: true rejected with ${String((outcome as { error: unknown }).error)}`,
    );
    assert.ok(port > 0, 'announce was called with the listening socket');
    const [server, condition] = outcome.result;
    if (server) {
      // Started after all: then it serves.
      const client = await t.connect(port);
      assert.equal(await client.readLine(), 'served');
    } else {
      assert.equal(condition, thrown);
      await t.waitFor(() => connectionRefused(port), 'the port to be closed');
    }
  },
);

// ---- R13: error ----

/** R13 with error false: the handler's failure ends the server quietly. */
async function failsQuietly(
  t: CaseContext,
  handler: (handle: Connection) => unknown,
  thrown: Error,
): Promise<void> {
  const uncaught = watchUncaught(t);
  const { calls, announce } = announceRecorder();
  const { server, port } = await t.startServer({ error: false, announce, function: handler });
  const client = await t.connect(port);
  await client.closedByPeer();
  assert.equal(
    await outcomeWithin(
      server.terminated.then(() => 'settled'),
      3000,
      'pending',
    ),
    'settled',
    'terminated settles',
  );
  assert.equal(server.state, 'failed');
  assert.equal(server.condition, thrown);
  assert.deepEqual(calls.at(-1), [null, thrown], 'announce (null, condition)');
  assert.equal(await connectionRefused(port), true, 'the listening socket is closed');
  await t.sleep(50);
  assert.deepEqual(uncaught, [], 'nothing reaches the host');
}

defineCase(
  'R13.handler-throws-quietly',
  'error false: a throwing function ends the server quietly',
  async (t) => {
    const thrown = new Error('the handler threw on purpose');
    await failsQuietly(
      t,
      (handle) => {
        handle.destroy();
        throw thrown;
      },
      thrown,
    );
  },
);

defineCase(
  'R13.handler-rejects-quietly',
  'error false: a rejecting function ends the server quietly',
  async (t) => {
    const thrown = new Error('the handler rejected on purpose');
    await failsQuietly(
      t,
      async (handle) => {
        await t.sleep(10);
        handle.destroy();
        throw thrown;
      },
      thrown,
    );
  },
);

defineCase(
  'R13.start-failure-quietly',
  'error false, wait false: a failed start leaves state failed and settles terminated',
  async (t) => {
    const uncaught = watchUncaught(t);
    const port = await occupyPort(t);
    const { calls, announce } = announceRecorder();
    const server = startAtOnce(t, { service: port, announce, error: false });
    assert.equal(
      await outcomeWithin(
        server.terminated.then(() => 'settled'),
        3000,
        'pending',
      ),
      'settled',
    );
    assert.equal(server.state, 'failed');
    assert.ok(server.condition instanceof Error);
    assert.ok(server.condition.message.includes(String(port)), server.condition.message);
    assert.deepEqual(calls, [[null, server.condition]]);
    await t.sleep(50);
    assert.deepEqual(uncaught, [], 'nothing reaches the host');
  },
);

defineCase(
  'R13.error-true-uncaught',
  "error true: a throwing function's condition is an uncaught exception in the host",
  async (t) => {
    const fixture = t.spawnFixture('error-true.mjs');
    const [, port] = await fixture.line(/^PORT (\d+)/);
    await t.connect(Number(port));
    const code = await fixture.exited;
    assert.ok(code !== 0, `the child should die of the uncaught exception, not exit ${code}`);
    assert.ok(
      fixture.stderr().includes('comm fixture: the handler failed on purpose'),
      `stderr should carry the error: ${fixture.stderr()}`,
    );
    assert.ok(
      !fixture.stdout().includes('ANNOUNCE condition'),
      `announce got the condition: ${fixture.stdout()}`,
    );
  },
);
