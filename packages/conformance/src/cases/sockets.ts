import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import process from 'node:process';
import {
  acceptFailurePolicy,
  type Backend,
  type BoundApi,
  bindBackend,
  type Connection,
  type Listener,
  type ListeningSocket,
  type ListenSpec,
  type ServerProcess,
  type StartUpServerOptions,
} from '@comm/core';
import { type KernelSocketOptions, kernelToolsAvailable, listenBacklog, socketOptions } from '../kernel.js';
import type { CaseContext } from '../suite.js';
import { defineCase, freePort, within } from '../suite.js';

// ---- helpers ----

let kernelTools: Promise<string | null> | null = null;

/** Fails the case, with the reason, when this machine cannot show the kernel's view of a socket. */
async function requireKernel(): Promise<void> {
  kernelTools ??= kernelToolsAvailable();
  const problem = await kernelTools;
  if (problem !== null) throw new Error(`this kernel check cannot run: ${problem}`);
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * A server whose `function` holds each connection until the case is done with it, so that the
 * accepted socket can be inspected while it is still the server's.
 */
async function holdingServer(
  t: CaseContext,
  options: StartUpServerOptions = {},
): Promise<{ port: number; accepted: Promise<Connection> }> {
  const release = gate();
  t.defer(release.open);
  let took!: (handle: Connection) => void;
  const accepted = new Promise<Connection>((resolve) => {
    took = resolve;
  });
  const { port } = await t.startServer({
    ...options,
    function: async (handle: Connection) => {
      took(handle);
      await release.promise;
      handle.destroy();
    },
  });
  return { port, accepted };
}

/** The kernel's options of the socket the server accepted for a raw client. */
async function acceptedSocketOptions(
  t: CaseContext,
  options: StartUpServerOptions,
): Promise<KernelSocketOptions> {
  await requireKernel();
  const { port, accepted } = await holdingServer(t, options);
  const client = await t.connect(port);
  await within(accepted, 5000, 'the call of function');
  return socketOptions({ pid: process.pid, localPort: port, remotePort: client.localPort });
}

/** The kernel's options of the client socket that openTcpStream made with `options`. */
async function clientSocketOptions(
  t: CaseContext,
  options: { nodelay?: boolean; keepalive?: boolean },
): Promise<KernelSocketOptions> {
  await requireKernel();
  const { port, accepted } = await holdingServer(t);
  const stream = await t.api.openTcpStream('127.0.0.1', port, { ...options, errorp: true });
  assert.ok(stream, 'openTcpStream with errorp true resolved to null');
  t.defer(() => stream.close({ abort: true }));
  await within(accepted, 5000, 'the call of function');
  const [, clientPort] = t.api.socketStreamAddress(stream);
  assert.equal(typeof clientPort, 'number', "the client stream's local port");
  return socketOptions({ pid: process.pid, localPort: clientPort as number, remotePort: port });
}

// ---- R9: backlog is the queue length the kernel reports for the listening socket ----

async function kernelBacklog(t: CaseContext, options: StartUpServerOptions): Promise<number> {
  await requireKernel();
  const { port } = await t.startServer({ ...options, function: (handle: Connection) => handle.destroy() });
  return listenBacklog(port);
}

defineCase('R9.backlog-default', 'without backlog, the kernel reports a listen queue of 5', async (t) => {
  assert.equal(await kernelBacklog(t, {}), 5);
});

defineCase('R9.backlog-17', 'backlog 17 is the listen queue the kernel reports', async (t) => {
  assert.equal(await kernelBacklog(t, { backlog: 17 }), 17);
});

defineCase('R9.backlog-1', 'backlog 1 is the listen queue the kernel reports', async (t) => {
  assert.equal(await kernelBacklog(t, { backlog: 1 }), 1);
});

defineCase('R9.backlog-null', 'backlog null leaves the system default (net.core.somaxconn)', async (t) => {
  await requireKernel();
  const somaxconn = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8')).trim());
  assert.ok(Number.isInteger(somaxconn) && somaxconn > 0, `cannot read net.core.somaxconn: ${somaxconn}`);
  assert.equal(await kernelBacklog(t, { backlog: null }), somaxconn);
});

// ---- R10: nodelay and keepalive on the accepted socket (and on openTcpStream's socket) ----

defineCase('R10.nodelay-default', 'by default TCP_NODELAY is set on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, {});
  assert.equal(options.nodelay, true, 'TCP_NODELAY as the kernel has it');
});

defineCase('R10.nodelay-false', 'nodelay false clears TCP_NODELAY on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, { nodelay: false });
  assert.equal(options.nodelay, false, 'TCP_NODELAY as the kernel has it');
});

defineCase('R10.keepalive-true', 'keepalive true sets SO_KEEPALIVE on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, { keepalive: true });
  assert.equal(options.keepalive, true, 'SO_KEEPALIVE as the kernel has it');
});

defineCase(
  'R10.keepalive-default',
  'by default SO_KEEPALIVE is not set on the accepted socket',
  async (t) => {
    const options = await acceptedSocketOptions(t, {});
    assert.equal(options.keepalive, false, 'SO_KEEPALIVE as the kernel has it');
  },
);

defineCase(
  'R10.client-nodelay-default',
  "openTcpStream sets TCP_NODELAY on the client's socket by default",
  async (t) => {
    const options = await clientSocketOptions(t, {});
    assert.equal(options.nodelay, true, 'TCP_NODELAY as the kernel has it');
  },
);

defineCase(
  'R10.client-nodelay-false',
  "openTcpStream's nodelay false clears TCP_NODELAY on the client's socket",
  async (t) => {
    const options = await clientSocketOptions(t, { nodelay: false });
    assert.equal(options.nodelay, false, 'TCP_NODELAY as the kernel has it');
  },
);

defineCase(
  'R10.client-keepalive-true',
  "openTcpStream's keepalive true sets SO_KEEPALIVE on the client's socket",
  async (t) => {
    const options = await clientSocketOptions(t, { keepalive: true });
    assert.equal(options.keepalive, true, 'SO_KEEPALIVE as the kernel has it');
  },
);

defineCase(
  'R10.client-keepalive-default',
  "openTcpStream leaves SO_KEEPALIVE off on the client's socket by default",
  async (t) => {
    const options = await clientSocketOptions(t, {});
    assert.equal(options.keepalive, false, 'SO_KEEPALIVE as the kernel has it');
  },
);

// ---- R14: repeated accept failures reopen the listening socket; failures back off ----

/** A backend like the one under test, whose accept() fails as often as the case says. */
interface Injector {
  readonly api: BoundApi;
  /** Accept failures still to inject; Infinity for ever. The case may raise it again. */
  failures: number;
  /** Every listen call's spec, in order, failed or not. */
  readonly listens: ListenSpec[];
  /** Every accept call: when (performance.now()), on which listener (index of its listen call), injected or not. */
  readonly accepts: Array<{ at: number; listener: number; injected: boolean }>;
}

function injector(base: Backend, options: { failures: number; listenFailsAfter?: number }): Injector {
  const state: Omit<Injector, 'api'> = { failures: options.failures, listens: [], accepts: [] };
  const wrapped: Backend = {
    ...base,
    name: `${base.name}+accept-failures`,
    listen: async (spec: ListenSpec): Promise<Listener> => {
      state.listens.push(spec);
      const index = state.listens.length - 1;
      if (options.listenFailsAfter !== undefined && index >= options.listenFailsAfter)
        throw Object.assign(new Error(`injected listen failure on port ${spec.port} (EADDRINUSE)`), {
          code: 'EADDRINUSE',
        });
      const listener = await base.listen(spec);
      return {
        local: listener.local,
        accept: () => {
          const injected = state.failures > 0;
          state.accepts.push({ at: performance.now(), listener: index, injected });
          if (!injected) return listener.accept();
          state.failures -= 1;
          return Promise.reject(
            Object.assign(new Error('injected accept failure (EMFILE)'), { code: 'EMFILE' }),
          );
        },
        close: () => listener.close(),
      };
    },
  };
  return Object.assign(state, { api: bindBackend(wrapped) });
}

interface Announced {
  socket: ListeningSocket | null;
  port: number | null;
  condition: Error | null;
}

/** Starts a server on the injector's backend; its function says `served` and closes. */
async function startInjected(
  t: CaseContext,
  inj: Injector,
  options: StartUpServerOptions,
): Promise<{ server: ServerProcess; announced: Announced[] }> {
  const announced: Announced[] = [];
  const { SocketStream } = t.api;
  const [server, condition] = await inj.api.startUpServer({
    address: '127.0.0.1',
    error: false,
    function: async (handle: Connection) => {
      const stream = new SocketStream({ socket: handle, direction: 'io' });
      await stream.writeLine('served');
      await stream.close();
    },
    announce: (socket: ListeningSocket | null, condition: Error | null) => {
      announced.push({ socket, port: socket ? socket.local.port : null, condition });
    },
    ...options,
    wait: true,
  });
  if (!server) throw new Error(`the server did not start: ${condition?.message}`);
  t.defer(() => inj.api.serverTerminate(server));
  return { server, announced };
}

async function assertServed(t: CaseContext, port: number, what: string): Promise<void> {
  const client = await t.connect(port);
  assert.equal(await within(client.readLine(), 5000, `${what}: the reply`), 'served', what);
}

async function checkReopen(t: CaseContext, service: number | null): Promise<void> {
  const { reopenAfter } = acceptFailurePolicy;
  const inj = injector(t.api.backend, { failures: reopenAfter });
  const { server, announced } = await startInjected(t, inj, { service });
  const first = announced[0];
  assert.ok(first?.socket && first.port !== null, 'announce was called with the listening socket');
  const port = first.port;
  if (service !== null) assert.equal(port, service);
  await t.waitFor(
    () => inj.listens.length >= 2 && announced.length >= 2,
    'the reopen (a second listen and announce)',
  );
  assert.equal(inj.listens.length, 2, 'one reopen');
  const [a, b] = inj.listens as [ListenSpec, ListenSpec];
  assert.equal(b.host, a.host, 'reopened on the same address');
  assert.equal(b.port, port, 'reopened on the port first assigned');
  assert.equal(announced.length, 2, 'announce called again after the reopen');
  const second = announced[1] as Announced;
  assert.ok(second.socket, 'the second announce has the new listening socket');
  assert.notEqual(second.socket, first.socket, 'a new listening socket');
  assert.equal(second.condition, null);
  assert.equal(second.port, port, 'the new socket is on the same port');
  assert.equal(first.socket.open, false, 'the old listening socket was closed');
  const failed = inj.accepts.filter((c) => c.injected);
  assert.equal(failed.length, reopenAfter);
  assert.ok(
    failed.every((c) => c.listener === 0),
    'the failures happened on the first socket',
  );
  assert.equal(server.state, 'listening');
  assert.equal(server.socket, second.socket, "the server's socket is the new one");
  await assertServed(t, port, 'a client after the reopen');
  await assertServed(t, port, 'another client after the reopen');
  assert.equal(inj.listens.length, 2, 'no further reopen');
}

defineCase(
  'R14.reopen-same-port',
  'after reopenAfter accept failures in a row the server reopens on the same address and port and announces again',
  async (t) => {
    await checkReopen(t, await freePort());
  },
);

defineCase(
  'R14.reopen-service-null',
  'with service null, the reopen uses the port first assigned',
  async (t) => {
    await checkReopen(t, null);
  },
);

defineCase(
  'R14.below-threshold-no-reopen',
  'fewer failures in a row than reopenAfter do not reopen; a success resets the count',
  async (t) => {
    const { reopenAfter } = acceptFailurePolicy;
    const inj = injector(t.api.backend, { failures: reopenAfter - 1 });
    const { server, announced } = await startInjected(t, inj, { service: 0 });
    const port = announced[0]?.port as number;
    await t.waitFor(() => inj.accepts.length >= reopenAfter, 'the accept call after the failures');
    // As many failures again, for the accept calls after the next success: they are not "in a row"
    // with the first ones. (The accept call now pending has already passed the injector.)
    inj.failures = reopenAfter - 1;
    await assertServed(t, port, 'a client after the failures');
    await assertServed(t, port, 'a client after the second run of failures');
    assert.equal(
      inj.accepts.filter((c) => c.injected).length,
      2 * (reopenAfter - 1),
      'every injected failure was met',
    );
    assert.equal(inj.listens.length, 1, 'no reopen');
    assert.equal(announced.length, 1, 'announce called once');
    assert.equal(server.state, 'listening');
    await assertServed(t, port, 'a third client');
  },
);

defineCase(
  'R14.backoff-grows',
  'after each accept failure the server waits longer before the next accept',
  async (t) => {
    const { reopenAfter, firstBackoffMs, maxBackoffMs } = acceptFailurePolicy;
    const failures = reopenAfter - 1;
    const inj = injector(t.api.backend, { failures });
    const { announced } = await startInjected(t, inj, { service: 0 });
    await t.waitFor(() => inj.accepts.length > failures, 'the accept call after the failures');
    const times = inj.accepts.map((c) => c.at);
    // Timers never fire early (by more than rounding), so these lower bounds hold however busy the machine is.
    for (let k = 1; k <= failures; k++) {
      const gap = (times[k] as number) - (times[k - 1] as number);
      const backoff = Math.min(firstBackoffMs * 2 ** (k - 1), maxBackoffMs);
      assert.ok(
        gap >= backoff - 2,
        `wait after failure ${k}: ${gap.toFixed(1)} ms, expected at least ${backoff} ms`,
      );
    }
    assert.equal(inj.listens.length, 1, 'no reopen below the threshold');
    await assertServed(t, announced[0]?.port as number, 'a client after the failures');
  },
);

defineCase(
  'R14.no-busy-loop',
  'accept failing for ever is no busy loop: few accept calls per second',
  async (t) => {
    const inj = injector(t.api.backend, { failures: Number.POSITIVE_INFINITY });
    const { server } = await startInjected(t, inj, { service: 0 });
    await t.sleep(1000);
    const start = inj.accepts[0]?.at as number;
    const inFirst100 = inj.accepts.filter((c) => c.at - start < 100).length;
    const count = inj.accepts.length;
    assert.ok(count >= 2, `the server kept trying to accept (${count} calls)`);
    assert.ok(inFirst100 <= 6, `${inFirst100} accept calls within the first 100 ms: that is a busy loop`);
    assert.ok(count <= 60, `${count} accept calls within about 1 s: that is a busy loop`);
    assert.ok(inj.listens.length <= 12, `${inj.listens.length} listen calls within about 1 s`);
    assert.equal(server.state, 'listening', 'the server goes on (reopening) while reopening works');
  },
);

defineCase(
  'R14.reopen-fails',
  "if reopening fails every attempt, the server ends as 'failed' with a condition, announced, and terminated settles",
  async (t) => {
    const inj = injector(t.api.backend, { failures: Number.POSITIVE_INFINITY, listenFailsAfter: 1 });
    const { server, announced } = await startInjected(t, inj, { service: 0 });
    const port = announced[0]?.port as number;
    await within(server.terminated, 8000, 'the end of the server (terminated settling)');
    assert.equal(server.state, 'failed');
    assert.ok(server.condition instanceof Error, 'the server has a condition');
    assert.equal(server.active, false);
    assert.equal(server.socket, null, 'the server holds no listening socket');
    assert.equal(inj.listens.length, 1 + acceptFailurePolicy.reopenAttempts, 'every reopen attempt was made');
    assert.ok(
      inj.listens.slice(1).every((s) => s.port === port),
      'every reopen attempt was on the port first assigned',
    );
    const last = announced.at(-1) as Announced;
    assert.equal(last.socket, null, 'announce (null, condition) after the failure');
    assert.equal(last.condition, server.condition, 'announce gets the condition');
    assert.equal(inj.api.serverTerminate(server), false, 'serverTerminate of a failed server gives false');
    // Its port is free again.
    await new Promise<void>((resolve, reject) => {
      const probe = net.createServer();
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  },
  15_000,
);
