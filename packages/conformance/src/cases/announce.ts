/**
 * Announce and lifecycle (contract section 3): R4 `announce` (a line, or calls of a function, when
 * listening, when starting fails, when terminated) and R11 the default `processName`.
 */
import assert from 'node:assert/strict';
import type { StartUpServerOptions } from '@comm/core/backend';
import { type CaseContext, defineCase } from '../suite.js';
import { type AnnounceCall, announceRecorder, closeAtOnce, occupyPort } from './helpers.js';

// ---- R4: announce ----

defineCase(
  'R4.announce-writable-line',
  'a writable announce gets one line naming the process, the address and the port',
  async (t) => {
    const written: string[] = [];
    const { port } = await t.startServer({
      processName: 'announced server',
      function: closeAtOnce,
      announce: { write: (text: string) => void written.push(text) },
    });
    await t.waitFor(() => written.join('').includes('\n'), 'the announce line');
    await t.sleep(50);
    const lines = written
      .join('')
      .split('\n')
      .filter((line) => line.trim() !== '');
    assert.equal(lines.length, 1, `one line, not ${JSON.stringify(written)}`);
    const line = lines[0] as string;
    assert.ok(line.includes('announced server'), `the line names the process: ${line}`);
    assert.ok(line.includes('127.0.0.1'), `the line names the address: ${line}`);
    assert.match(line, new RegExp(`\\b${port}\\b`), `the line names the port ${port}`);
  },
);

defineCase('R4.announce-true-stdout', 'announce: true writes that one line to standard output', async (t) => {
  const fixture = t.spawnFixture('announce-true.mjs');
  const [line, port] = await fixture.line(/announce-true fixture.*\b127\.0\.0\.1\b.*?\b(\d+)\b\s*$/);
  assert.ok(port, `no port in ${line}`);
  // The port it names is the one it listens on: the fixture serves one connection, then ends.
  const client = await t.connect(Number(port));
  await client.closedByPeer();
  assert.equal(await fixture.exited, 0, `the fixture should exit by itself; stderr: ${fixture.stderr()}`);
  const lines = fixture
    .stdout()
    .split('\n')
    .filter((l) => l.includes('announce-true fixture'));
  assert.equal(lines.length, 1, `one line, not ${JSON.stringify(fixture.stdout())}`);
});

defineCase(
  'R4.announce-function-listening',
  'an announce function is called (listeningSocket, null) once listening, with the real port',
  async (t) => {
    const { calls, announce } = announceRecorder();
    const { server } = await t.startServer({ announce, function: closeAtOnce });
    await t.waitFor(() => calls.length > 0, 'announce');
    assert.equal(calls.length, 1);
    const [socket, condition] = calls[0] as AnnounceCall;
    assert.equal(condition, null);
    assert.ok(socket instanceof t.api.ListeningSocket, 'the first argument is the listening socket');
    const [address, port] = t.api.getSocketAddress(socket);
    assert.equal(address, 0x7f000001);
    assert.ok(typeof port === 'number' && port > 0, `a real port, not ${port}`);
    assert.deepEqual(t.api.getSocketAddress(server.socket), [address, port]);
    // A client reaches the server through that port.
    const client = await t.connect(port);
    await client.closedByPeer();
  },
);

defineCase(
  'R4.announce-function-start-failure',
  'with error false, a failed start calls announce (null, condition), with the condition returned',
  async (t) => {
    const port = await occupyPort(t);
    const { calls, announce } = announceRecorder();
    const [server, condition] = await t.api.startUpServer({
      service: port,
      address: '127.0.0.1',
      announce,
      function: closeAtOnce,
      error: false,
      wait: true,
    });
    if (server) t.defer(() => t.api.serverTerminate(server));
    assert.equal(server, null, 'the port is taken: the start fails');
    assert.ok(condition instanceof Error);
    await t.sleep(50);
    assert.equal(calls.length, 1, `one call, not ${calls.length}`);
    assert.equal(calls[0]?.[0], null);
    assert.equal(calls[0]?.[1], condition);
  },
);

defineCase(
  'R4.announce-function-terminate',
  'serverTerminate calls announce (null, null), once',
  async (t) => {
    const { calls, announce } = announceRecorder();
    const { server } = await t.startServer({ announce, function: closeAtOnce });
    await t.waitFor(() => calls.length === 1, 'announce when listening');
    t.api.serverTerminate(server);
    await t.waitFor(() => calls.length >= 2, 'announce when terminated');
    assert.deepEqual(calls[1], [null, null]);
    t.api.serverTerminate(server);
    await server.terminated;
    await t.sleep(50);
    assert.equal(calls.length, 2, 'a second serverTerminate announces nothing');
  },
);

defineCase(
  'R4.error-true-no-condition',
  'with error true, a failed start is not announced with its condition but rethrown',
  async (t) => {
    const fixture = t.spawnFixture('error-true.mjs', ['start']);
    const code = await fixture.exited;
    assert.ok(code !== 0, `the child should die of the uncaught condition, not exit ${code}`);
    assert.ok(
      fixture.stderr().includes('comm-fixture-no-such-service'),
      `stderr should carry the condition: ${fixture.stderr()}`,
    );
    assert.ok(
      !fixture.stdout().includes('ANNOUNCE condition'),
      `announce got the condition: ${fixture.stdout()}`,
    );
  },
);

// ---- R11: processName ----

/** A server whose start does not matter, only its name: ended at once. */
function nameOf(t: CaseContext, options: StartUpServerOptions): string {
  const server = t.api.startUpServer({ address: '127.0.0.1', error: false, ...options, wait: false });
  t.api.serverTerminate(server);
  t.defer(() => server.terminated);
  return server.name;
}

defineCase('R11.default-port-number', 'service 10243 makes the process name `10243 server`', async (t) => {
  assert.equal(nameOf(t, { service: 10243 }), '10243 server');
});

defineCase('R11.default-lispworks', 'with no service the process name is `"lispworks" server`', async (t) => {
  // "lispworks" is not in most /etc/services: the start fails, but the process has its name.
  assert.equal(nameOf(t, {}), '"lispworks" server');
});

defineCase('R11.default-string-service', 'a service string is printed as ~S prints it: quoted', async (t) => {
  assert.equal(nameOf(t, { service: '10243' }), '"10243" server');
  assert.equal(nameOf(t, { service: 'say "hi"' }), '"say \\"hi\\"" server');
});

defineCase('R11.default-nil', 'service null makes the process name `NIL server`', async (t) => {
  const { server } = await t.startServer({ service: null, function: closeAtOnce });
  assert.equal(server.name, 'NIL server');
});

defineCase('R11.explicit-name', 'an explicit processName is kept as it is', async (t) => {
  const { server } = await t.startServer({ processName: 'talk server', function: closeAtOnce });
  assert.equal(server.name, 'talk server');
});
