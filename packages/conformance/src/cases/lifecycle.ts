import assert from 'node:assert/strict';
import * as net from 'node:net';
import process from 'node:process';
import type {
  Connection,
  ListeningSocket,
  ServerProcess,
  SocketStream,
  StartUpServerOptions,
} from '@comm/core/backend';
import { type CaseContext, defineCase, rawConnect } from '../suite.js';

// ---- helpers ----

/** The backend module's `ServerProcess` class (re-exported from core). */
function serverClass(t: CaseContext): typeof ServerProcess {
  return t.api.ServerProcess as typeof ServerProcess;
}

type AnnounceCall = [ListeningSocket | null, Error | null];

/** An announce function that records every call. */
function announceRecorder(): {
  calls: AnnounceCall[];
  announce: (s: ListeningSocket | null, c: Error | null) => void;
} {
  const calls: AnnounceCall[] = [];
  return { calls, announce: (socket, condition) => void calls.push([socket, condition]) };
}

/** A handler that closes each connection at once. */
const closeAtOnce = (handle: Connection) => handle.destroy();

/** `wait: false` on loopback, a free port, `error: false` (a failure must not take the runner down); terminated after the case. */
function startAtOnce(t: CaseContext, options: StartUpServerOptions = {}): ServerProcess {
  const server = t.api.startUpServer({
    service: 0,
    address: '127.0.0.1',
    error: false,
    function: closeAtOnce,
    ...options,
    wait: false,
  });
  t.defer(() => t.api.serverTerminate(server));
  return server;
}

/** Binds `port` on 127.0.0.1 with `node:net` and closes it again: 'bound', or the error's code. */
function tryBind(port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve('bound')));
  });
}

/** Holds a port on 127.0.0.1 with `node:net` for the rest of the case. */
async function occupyPort(t: CaseContext): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve());
  });
  t.defer(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  return (holder.address() as net.AddressInfo).port;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) =>
    probe.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve()),
  );
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** True if a connection to 127.0.0.1 `port` is refused. */
async function refused(port: number): Promise<boolean> {
  try {
    const client = await rawConnect(port);
    client.destroy();
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

/** Resolves to what `promise` resolves to, or to `timedOut` after `ms`. */
function within<T, U>(promise: Promise<T>, ms: number, timedOut: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<U>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Records uncaught exceptions and unhandled rejections while the case runs. */
function watchUncaught(t: CaseContext): unknown[] {
  const seen: unknown[] = [];
  const record = (error: unknown) => void seen.push(error);
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  t.defer(() => {
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
  });
  return seen;
}

/** Replaces console.error for the case; what it was called with, restored afterwards. */
function captureConsoleError(t: CaseContext): unknown[][] {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  t.defer(() => {
    console.error = original;
  });
  return calls;
}

/** True if one console.error call names `name` and carries `error` (the object or its message). */
function reported(calls: unknown[][], name: string, error: Error): boolean {
  return calls.some((args) => {
    const text = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ');
    return text.includes(name) && (args.includes(error) || text.includes(error.message));
  });
}

/**
 * Expects `call` to throw a TypeError whose message names every one of `options`, at the call:
 * not a rejected promise, not a server that fails later. Whatever it started instead is ended.
 */
function throwsAtCall(t: CaseContext, call: () => unknown, options: readonly string[], what: string): void {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    assert.ok(error instanceof TypeError, `${what}: expected a TypeError, got ${String(error)}`);
    for (const option of options)
      assert.ok(
        error.message.includes(option),
        `${what}: the message should name "${option}": ${error.message}`,
      );
    return;
  }
  if (result instanceof serverClass(t)) t.api.serverTerminate(result);
  else if (result instanceof Promise)
    result.then(
      (value: unknown) => {
        if (Array.isArray(value) && value[0] instanceof serverClass(t)) t.api.serverTerminate(value[0]);
        else if (value instanceof t.api.SocketStream) void value.close({ abort: true });
      },
      () => {},
    );
  assert.fail(`${what}: expected a TypeError at the call, but the call returned`);
}

// ---- §2: options are validated at the call ----

const looseStart = (t: CaseContext) => t.api.startUpServer as unknown as (options?: unknown) => unknown;

/** Each bad option set must throw at the call, with `wait: true` as with `wait: false`. */
function rejectsOptions(t: CaseContext, bad: Record<string, unknown>, options: readonly string[]): void {
  const start = looseStart(t);
  const base = { service: 0, address: '127.0.0.1', error: false, function: closeAtOnce };
  const what = `startUpServer(${JSON.stringify(bad, (_, v) => (v === undefined ? 'undefined' : v))})`;
  throwsAtCall(t, () => start({ ...base, ...bad, wait: true }), options, `${what} with wait: true`);
  throwsAtCall(t, () => start({ ...base, ...bad, wait: false }), options, `${what} with wait: false`);
  throwsAtCall(t, () => start({ ...base, ...bad }), options, `${what} without wait`);
}

defineCase(
  'options.unknown-option',
  'an option that does not exist is a TypeError at the call naming it',
  async (t) => {
    rejectsOptions(t, { port: 8080 }, ['port']);
    rejectsOptions(t, { procesName: 'typo' }, ['procesName']);
  },
);

defineCase(
  'options.function-type',
  'a function option that is not a function (or null) is a TypeError naming it',
  async (t) => {
    for (const value of ['echo', 42, {}, true]) rejectsOptions(t, { function: value }, ['function']);
  },
);

defineCase(
  'options.announce-type',
  'an announce that is not true, a writable, a function or null is a TypeError naming it',
  async (t) => {
    for (const value of ['stdout', 1, {}, { write: 'not a function' }, []])
      rejectsOptions(t, { announce: value }, ['announce']);
  },
);

defineCase(
  'options.service-type',
  'a service that is not a port (0-65535), a name or null is a TypeError naming it',
  async (t) => {
    for (const value of [-1, 65536, 1.5, true, {}, Number.NaN]) {
      rejectsOptions(t, { service: value }, ['service']);
      rejectsOptions(t, { service: undefined, localPort: value }, ['localPort']);
    }
  },
);

defineCase(
  'options.address-type',
  'an address that is no string, IPv4 integer, Ipv6Address or null is a TypeError naming it',
  async (t) => {
    for (const value of [true, -1, 2 ** 32, 1.5, {}, []]) {
      rejectsOptions(t, { address: value }, ['address']);
      rejectsOptions(t, { address: undefined, localAddress: value }, ['localAddress']);
    }
  },
);

defineCase('options.backlog-range', 'a backlog of 0, -1, 1.5 or "5" is a TypeError naming it', async (t) => {
  for (const value of [0, -1, 1.5, '5', Number.NaN, Number.POSITIVE_INFINITY])
    rejectsOptions(t, { backlog: value }, ['backlog']);
});

defineCase(
  'options.boolean-types',
  'a boolean option given a non-boolean is a TypeError naming it',
  async (t) => {
    for (const name of ['nodelay', 'keepalive', 'createStream', 'error', 'reuseport'])
      for (const value of ['yes', 1]) rejectsOptions(t, { [name]: value }, [name]);
    const start = looseStart(t);
    throwsAtCall(
      t,
      () => start({ service: 0, address: '127.0.0.1', error: false, wait: 'yes' }),
      ['wait'],
      'startUpServer({wait: "yes"})',
    );
  },
);

defineCase(
  'options.ipv6-value',
  "ipv6 'maybe' (or any value but 'any', 'both', true, false) is a TypeError naming it",
  async (t) => {
    for (const value of ['maybe', 'v6', 6, 'ANY']) rejectsOptions(t, { ipv6: value }, ['ipv6']);
  },
);

defineCase(
  'options.process-name-type',
  'a processName that is not a string is a TypeError naming it',
  async (t) => {
    for (const value of [5, {}, true]) rejectsOptions(t, { processName: value }, ['processName']);
  },
);

defineCase(
  'options.service-synonyms-conflict',
  'service and localPort with different values are a TypeError naming both',
  async (t) => {
    rejectsOptions(t, { service: 0, localPort: 1 }, ['service', 'localPort']);
    rejectsOptions(t, { service: '10243', localPort: 10243 }, ['service', 'localPort']);
  },
);

defineCase(
  'options.address-synonyms-conflict',
  'address and localAddress with different values are a TypeError naming both',
  async (t) => {
    rejectsOptions(t, { address: '127.0.0.1', localAddress: '127.0.0.2' }, ['address', 'localAddress']);
    rejectsOptions(t, { address: '127.0.0.1', localAddress: 0x7f000001 + 1 }, ['address', 'localAddress']);
  },
);

defineCase(
  'options.synonyms-same-value',
  'both members of a synonym pair with the same value are accepted',
  async (t) => {
    const { server, port } = await t.startServer({
      service: 0,
      localPort: 0,
      address: '127.0.0.1',
      localAddress: '127.0.0.1',
      function: closeAtOnce,
    });
    assert.equal(server.state, 'listening');
    const client = await t.connect(port);
    await client.closedByPeer();
  },
);

defineCase(
  'options.open-tcp-stream',
  'openTcpStream with a wrong option throws a TypeError naming it at the call',
  async (t) => {
    const { port } = await t.startServer({ function: closeAtOnce });
    const open = t.api.openTcpStream as unknown as (
      host: unknown,
      service: unknown,
      options?: unknown,
    ) => unknown;
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ colour: 'red' }, 'colour'],
      [{ errorp: 'yes' }, 'errorp'],
      [{ timeout: -1 }, 'timeout'],
      [{ timeout: 'soon' }, 'timeout'],
      [{ direction: 'sideways' }, 'direction'],
      [{ elementType: 'utf-9' }, 'elementType'],
      [{ readTimeout: 'long' }, 'readTimeout'],
      [{ writeTimeout: -5 }, 'writeTimeout'],
      [{ nodelay: 'yes' }, 'nodelay'],
      [{ keepalive: 1 }, 'keepalive'],
      [{ ipv6: 'maybe' }, 'ipv6'],
      [{ localAddress: true }, 'localAddress'],
      [{ localPort: -1 }, 'localPort'],
    ];
    for (const [options, name] of bad)
      throwsAtCall(
        t,
        () => open('127.0.0.1', port, options),
        [name],
        `openTcpStream(..., ${JSON.stringify(options)})`,
      );
  },
);

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
      await t.waitFor(() => refused(port), 'the port to be closed');
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
    await within(
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
  assert.equal(await refused(port), true, 'the listening socket is closed');
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
      await within(
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

// ---- R15: serverTerminate ----

defineCase(
  'R15.returns-true-then-false',
  'serverTerminate returns true for an active server, then false, any number of times',
  async (t) => {
    const { server } = await t.startServer({ function: closeAtOnce });
    assert.equal(t.api.serverTerminate(server), true);
    assert.equal(server.state, 'terminated');
    assert.equal(t.api.serverTerminate(server), false);
    assert.equal(t.api.serverTerminate(server), false);
    await server.terminated;
    assert.equal(t.api.serverTerminate(server), false);
  },
);

defineCase(
  'R15.port-free-at-once',
  'once terminated has settled, the port can be bound again at once',
  async (t) => {
    const { server, port } = await t.startServer({ function: closeAtOnce });
    await (await t.connect(port)).closedByPeer();
    assert.equal(await tryBind(port), 'EADDRINUSE', 'the server holds the port');
    t.api.serverTerminate(server);
    await server.terminated;
    assert.equal(await tryBind(port), 'bound');
  },
);

/** A server whose function hands each connection to an echo process; one client, already echoed once. */
async function handedOn(t: CaseContext) {
  const { server, port } = await t.startServer({
    createStream: true,
    function: (stream: SocketStream) => {
      t.api.processRunFunction('echo', async () => {
        for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
          await stream.writeLine(`echo ${line}`);
          await stream.finishOutput();
        }
        await stream.close();
      });
    },
  });
  const client = await t.connect(port);
  await client.writeLine('before');
  assert.equal(await client.readLine(), 'echo before');
  return { server, port, client };
}

defineCase(
  'R15.handed-on-connections-stay',
  'connections handed on to processRunFunction stay open and keep working after serverTerminate',
  async (t) => {
    const { server, port, client } = await handedOn(t);
    assert.equal(t.api.serverTerminate(server), true);
    await t.waitFor(() => refused(port), 'new connections to be refused');
    await client.writeLine('after');
    assert.equal(await client.readLine(), 'echo after');
    assert.equal(client.ended, false);
  },
);

defineCase(
  'R15.terminated-settles-with-handed-on',
  'terminated settles, and the port is free, while a handed-on connection is still open',
  async (t) => {
    const { server, port, client } = await handedOn(t);
    t.api.serverTerminate(server);
    const settled = await within(
      server.terminated.then(() => 'settled'),
      2000,
      'pending',
    );
    assert.equal(settled, 'settled', 'the server holds nothing of the handed-on connection');
    assert.equal(await tryBind(port), 'bound');
    await client.writeLine('still');
    assert.equal(await client.readLine(), 'echo still');
  },
);

defineCase(
  'R15.no-argument-in-function',
  'serverTerminate() inside function ends the server once function returns: this client is served, the next refused',
  async (t) => {
    const seen: Array<{ returned: boolean; state: string }> = [];
    const { server, port } = await t.startServer({
      createStream: true,
      function: async (stream: SocketStream) => {
        const line = await stream.readLine();
        // After an await too, the call knows which server runs it.
        const returned = t.api.serverTerminate();
        await t.sleep(20);
        seen.push({ returned, state: server.state });
        await stream.writeLine(`bye ${line}`);
        await stream.close();
      },
    });
    const client = await t.connect(port);
    await client.writeLine('first');
    assert.equal(await client.readLine(), 'bye first');
    assert.deepEqual(
      seen,
      [{ returned: true, state: 'listening' }],
      'the server ends after function returns',
    );
    await server.terminated;
    assert.equal(server.state, 'terminated');
    assert.equal(await refused(port), true, 'the next connection is refused');
  },
);

defineCase('R15.no-argument-in-announce', 'serverTerminate() inside announce ends that server', async (t) => {
  const returned: boolean[] = [];
  const calls: AnnounceCall[] = [];
  let port = 0;
  const server = startAtOnce(t, {
    announce: (socket, condition) => {
      calls.push([socket, condition]);
      if (!socket) return;
      port = t.api.getSocketAddress(socket)[1] as number;
      returned.push(t.api.serverTerminate());
    },
  });
  assert.equal(
    await within(
      server.terminated.then(() => 'settled'),
      3000,
      'pending',
    ),
    'settled',
  );
  assert.equal(server.state, 'terminated');
  assert.deepEqual(returned, [true]);
  assert.deepEqual(calls.at(-1), [null, null]);
  assert.ok(port > 0);
  assert.equal(await refused(port), true);
});

defineCase(
  'R15.no-argument-outside',
  'serverTerminate() and serverTerminate(null) outside any server return false',
  async (t) => {
    const { server, port } = await t.startServer({ function: closeAtOnce });
    assert.equal(t.api.serverTerminate(), false);
    assert.equal(t.api.serverTerminate(null), false);
    await t.sleep(20);
    assert.equal(server.state, 'listening', 'no other server is ended');
    await (await t.connect(port)).closedByPeer();
  },
);

defineCase(
  'R15.no-argument-in-handed-on-process',
  'serverTerminate() in a process the function started ends nothing: that process is not the server',
  async (t) => {
    const returned: unknown[] = [];
    const { server, port } = await t.startServer({
      function: (handle: Connection) => {
        t.api.processRunFunction('worker', () => {
          returned.push(t.api.serverTerminate());
          handle.destroy();
        });
      },
    });
    await (await t.connect(port)).closedByPeer();
    await (await t.connect(port)).closedByPeer();
    assert.deepEqual(returned, [false, false]);
    assert.equal(server.state, 'listening');
  },
);

defineCase('R15.terminate-while-starting', 'a server terminated while starting never listens', async (t) => {
  const port = await freePort();
  const { calls, announce } = announceRecorder();
  const server = startAtOnce(t, { service: port, announce });
  assert.equal(t.api.serverTerminate(server), true);
  assert.equal(server.state, 'terminated');
  await server.terminated;
  await t.sleep(200);
  assert.equal(server.state, 'terminated');
  assert.equal(server.socket, null);
  assert.ok(
    calls.every(([socket]) => socket === null),
    'announce is never called with a listening socket',
  );
  assert.equal(await refused(port), true, 'nothing listens on the port');
  assert.equal(await tryBind(port), 'bound');
});

defineCase(
  'R15.terminate-while-starting-port-free',
  'a server terminated while starting holds no port once terminated has settled',
  async (t) => {
    const port = await freePort();
    const server = startAtOnce(t, { service: port });
    t.api.serverTerminate(server);
    await server.terminated;
    assert.equal(await tryBind(port), 'bound', 'the port is free as soon as terminated settles');
  },
);

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
  const outcome = await within(
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
