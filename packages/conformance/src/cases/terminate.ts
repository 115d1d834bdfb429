/**
 * Announce and lifecycle (contract section 3), R15: `serverTerminate` frees the port at once,
 * returns whether the server was active, ends the server running it when called with no argument,
 * and leaves connections already handed on alone. Draining them (R23) is in drain.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Connection, SocketStream } from '@comm/core/backend';
import { type CaseContext, defineCase, freePort, within } from '../suite.js';
import {
  type AnnounceCall,
  announceRecorder,
  closeAtOnce,
  connectionRefused,
  outcomeWithin,
  startAtOnce,
  tryBind,
} from './helpers.js';

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

/**
 * Binds and listens on `host` port `port` with SO_REUSEADDR, as every server runtime does (libuv,
 * Deno's tokio, uSockets), and IPV6_V6ONLY for IPv6; prints `bound` or the errno's name.
 */
const BIND_PROBE = `
import errno, socket, sys
host, port, family = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if family == 6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
try:
    s.bind((host, port))
    s.listen(1)
    print("bound")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
finally:
    s.close()
`;

/**
 * Tries to bind the port in another process, synchronously: the event loop of this process does
 * not turn until the answer is in, so nothing the runtime defers to a later turn has happened.
 */
function bindNow(host: string, port: number, family: 4 | 6): string {
  try {
    return execFileSync('python3', ['-c', BIND_PROBE, host, String(port), String(family)], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    throw new Error(`the bind probe (python3) did not run: ${(error as Error).message}`);
  }
}

defineCase(
  'R15.port-free-at-once',
  'the port can be bound again as soon as serverTerminate returns, before anything is awaited: an IPv4 socket, and an IPv6-only socket on ::',
  async (t) => {
    const configurations = [
      { address: '127.0.0.1', client: '127.0.0.1' },
      { address: null, ipv6: true, client: '::1' },
    ] as const;
    for (const { client: clientHost, ...options } of configurations) {
      const { server, port } = await t.startServer({ ...options, function: closeAtOnce });
      const socket = server.socket;
      assert.ok(socket, 'the server has a listening socket');
      const { address, family } = socket.local;
      // One connection served and closed: the port has a connection in TIME_WAIT, as a real one does.
      const client = await t.connect(port, clientHost);
      await within(client.closedByPeer(), 5000, 'the server to close the connection');
      assert.equal(bindNow(address, port, family), 'EADDRINUSE', `the server holds ${address} port ${port}`);
      assert.equal(t.api.serverTerminate(server), true);
      // Nothing awaited since serverTerminate returned: the event loop has not turned.
      const probe = bindNow(address, port, family);
      assert.equal(
        probe,
        'bound',
        `binding ${address} port ${port} as soon as serverTerminate returned failed with ${probe}`,
      );
      await within(server.terminated, 5000, 'terminated to settle');
    }
  },
  15_000,
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
    await t.waitFor(() => connectionRefused(port), 'new connections to be refused');
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
    const settled = await outcomeWithin(
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
    assert.equal(await connectionRefused(port), true, 'the next connection is refused');
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
    await outcomeWithin(
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
  assert.equal(await connectionRefused(port), true);
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
  assert.equal(await connectionRefused(port), true, 'nothing listens on the port');
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
