/**
 * Failures (contract section 3) and hostile peers (section 6): R14 repeated accept failures reopen
 * the listening socket, with a backoff, never a busy loop; R14a accept failures are classified (one
 * connection's is skipped, exhausted resources back off), as a reset while queued shows.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
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
} from '@comm/core/backend';
import type { CaseContext } from '../suite.js';
import { defineCase, freePort, within } from '../suite.js';
import { connectAndReset, gate } from './helpers.js';

// ---- R14: repeated accept failures reopen the listening socket; failures back off ----

interface Injector {
  readonly api: BoundApi;
  /** Accept failures still to inject; Infinity for ever. The case may raise it again. */
  failures: number;
  /** Every listen call's spec, in order, failed or not. */
  readonly listens: ListenSpec[];
  /**
   * Every accept call: when (performance.now()), in which turn of the event loop (counted by 0 ms
   * timers), on which listener (index of its listen call), injected or not.
   */
  readonly accepts: Array<{ at: number; turn: number; listener: number; injected: boolean }>;
}

/**
 * A backend like the one under test, whose accept() fails with `code` as often as the case says.
 * The default, EINVAL, is a failure of the listening socket itself (R14); R14a's codes say more.
 */
function injector(
  base: Backend,
  options: { failures: number; listenFailsAfter?: number; codes?: readonly string[] },
): Injector {
  const codes = options.codes ?? ['EINVAL'];
  let injectedCount = 0;
  let turn = 0;
  let ticking = false;
  const tick = () => {
    if (ticking) return;
    ticking = true;
    setTimeout(() => {
      ticking = false;
      turn += 1;
    }, 0);
  };
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
          tick();
          state.accepts.push({ at: performance.now(), turn, listener: index, injected });
          if (!injected) return listener.accept();
          state.failures -= 1;
          const code = codes[injectedCount++ % codes.length] as string;
          return Promise.reject(Object.assign(new Error(`injected accept failure (${code})`), { code }));
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

/** After each of the first `failures` accept calls the next came later by at least the policy's backoff. */
function assertBackoffGrows(inj: Injector, failures: number): void {
  const { firstBackoffMs, maxBackoffMs } = acceptFailurePolicy;
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
}

/** Over about a second of failing accepts, the server tried again, but only a few times. */
async function assertNoBusyLoop(t: CaseContext, inj: Injector): Promise<void> {
  await t.sleep(1000);
  const start = inj.accepts[0]?.at as number;
  const inFirst100 = inj.accepts.filter((c) => c.at - start < 100).length;
  const count = inj.accepts.length;
  assert.ok(count >= 2, `the server kept trying to accept (${count} calls)`);
  assert.ok(inFirst100 <= 6, `${inFirst100} accept calls within the first 100 ms: that is a busy loop`);
  assert.ok(count <= 60, `${count} accept calls within about 1 s: that is a busy loop`);
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
    const failures = acceptFailurePolicy.reopenAfter - 1;
    const inj = injector(t.api.backend, { failures });
    const { announced } = await startInjected(t, inj, { service: 0 });
    await t.waitFor(() => inj.accepts.length > failures, 'the accept call after the failures');
    assertBackoffGrows(inj, failures);
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
    await assertNoBusyLoop(t, inj);
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

// ---- R14a: accept failures are classified ----

const CONNECTION_CODES = ['ECONNABORTED', 'ECONNRESET', 'ENOTCONN', 'EPROTO', 'EPERM', 'ETIMEDOUT'];
const RESOURCE_CODES = ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM'];

defineCase(
  'R14a.connection-failure-skipped',
  'an accept failure of one connection (ECONNABORTED, ECONNRESET, ENOTCONN, EPROTO, EPERM, ETIMEDOUT) is skipped at once, without a wait, and never leads to a reopen',
  async (t) => {
    const failures = 2 * acceptFailurePolicy.reopenAfter + 2;
    const inj = injector(t.api.backend, { failures, codes: CONNECTION_CODES });
    const { server, announced } = await startInjected(t, inj, { service: 0 });
    await t.waitFor(() => inj.accepts.length > failures, 'the accept call after the failures');
    const turns = new Set(inj.accepts.slice(0, failures + 1).map((c) => c.turn));
    // A wait (a backoff timer) would let a 0 ms timer fire between two accept calls.
    assert.equal(turns.size, 1, `the accept calls after the failures were spread over ${turns.size} turns`);
    assert.equal(inj.listens.length, 1, 'no reopen');
    assert.equal(announced.length, 1, 'announce called once');
    await assertServed(t, announced[0]?.port as number, 'a client after the failures');
    assert.equal(server.state, 'listening');
  },
);

defineCase(
  'R14a.resources-back-off',
  'exhausted resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) back off, longer each time, and never reopen the listening socket',
  async (t) => {
    const failures = acceptFailurePolicy.reopenAfter + 2;
    const inj = injector(t.api.backend, { failures, codes: RESOURCE_CODES });
    const { server, announced } = await startInjected(t, inj, { service: 0 });
    await t.waitFor(() => inj.accepts.length > failures, 'the accept call after the failures');
    assertBackoffGrows(inj, failures);
    assert.equal(inj.listens.length, 1, `no reopen after ${failures} exhausted-resource failures`);
    assert.equal(announced.length, 1, 'announce called once');
    const port = announced[0]?.port as number;
    await assertServed(t, port, 'a client once resources are free');
    await assertServed(t, port, 'another client');
    assert.equal(server.state, 'listening');
  },
  20_000,
);

defineCase(
  'R14a.resources-no-busy-loop-resume',
  'while resources stay exhausted the server tries to accept a few times a second, never reopens, and serves again by itself once they are free',
  async (t) => {
    const inj = injector(t.api.backend, { failures: Number.POSITIVE_INFINITY, codes: ['EMFILE'] });
    const { server, announced } = await startInjected(t, inj, { service: 0 });
    await assertNoBusyLoop(t, inj);
    assert.equal(inj.listens.length, 1, 'no reopen while resources are exhausted');
    assert.equal(server.state, 'listening');
    inj.failures = 0;
    await assertServed(t, announced[0]?.port as number, 'a client once resources are free');
  },
  15_000,
);

defineCase(
  'R14a.reset-while-queued-no-reopen',
  '100 clients that connect and reset while queued behind a busy function: the listening socket stays the same and the next client is served',
  async (t) => {
    const busy = gate(t);
    let calls = 0;
    const { server, port } = await t.startServer({
      backlog: 256,
      function: async (handle: Connection) => {
        calls += 1;
        const stream = new t.api.SocketStream({ socket: handle, direction: 'io' });
        if (calls === 1) await busy.promise;
        try {
          const line = await stream.readLine();
          if (line !== null) await stream.writeLine(`You sent: '${line}'`);
          await stream.finishOutput();
        } catch {
          // A reset peer: its stream fails, and only its own.
        } finally {
          await stream.close({ abort: true });
        }
      },
    });
    const listening = server.socket;
    assert.ok(listening, 'the server has its listening socket');
    const holder = await t.connect(port);
    await t.waitFor(() => calls === 1, 'the first call of function');
    await connectAndReset(port, 100);
    // Let the resets reach the kernel's queue before the server accepts them.
    await t.sleep(100);
    busy.open();
    await holder.writeLine('first');
    assert.equal(await holder.readLine(), "You sent: 'first'");
    const client = await t.connect(port);
    await client.writeLine('after the resets');
    assert.equal(
      await within(client.readLine(), 10_000, 'the reply after the resets'),
      "You sent: 'after the resets'",
    );
    assert.equal(server.state, 'listening');
    assert.equal(
      server.socket,
      listening,
      'the listening socket is the one the server started with (no reopen)',
    );
  },
  30_000,
);
