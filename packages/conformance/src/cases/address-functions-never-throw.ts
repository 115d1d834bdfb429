/**
 * Hostile peers (contract section 6), R18a: no address function ever throws for a handle or stream
 * the server gave, not even for a connection whose peer reset before it was accepted.
 */
import assert from 'node:assert/strict';
import type * as Core from '@comm/core/backend';
import type { Connection } from '@comm/core/backend';
import { bindBackend } from '@comm/core/backend';
import { defineCase } from '../suite.js';
import { connectAndReset } from './helpers.js';

// ---- R18a: no address function ever throws for a handle the server gave ----

/** The backend under test, whose accepted connections have no address, as after a reset in the queue. */
function addresslessBackend(base: Core.Backend): Core.Backend {
  const none: Core.SocketAddress = { address: '', port: 0, family: 4 };
  return {
    ...base,
    name: `${base.name}+no-addresses`,
    async listen(spec) {
      const listener = await base.listen(spec);
      return {
        local: listener.local,
        close: () => listener.close(),
        async accept() {
          const connection = await listener.accept();
          if (connection === null) return null;
          return new Proxy(connection, {
            get: (target, key) => {
              if (key === 'local' || key === 'remote') return none;
              const value = Reflect.get(target, key, target);
              return typeof value === 'function' ? value.bind(target) : value;
            },
          });
        },
      };
    },
  };
}

defineCase(
  'R18a.no-address-no-throw',
  'a connection the runtime reports without an address (its peer reset in the queue) gives [null, null] from every address function, and the server goes on',
  async (t) => {
    const api = bindBackend(addresslessBackend(t.api.backend));
    const seen: unknown[][] = [];
    const [server, condition] = await api.startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      error: false,
      function: async (handle: Connection) => {
        const stream = new t.api.SocketStream({ socket: handle, direction: 'io' });
        seen.push([
          t.api.getSocketAddress(handle),
          t.api.getSocketPeerAddress(handle),
          t.api.socketStreamAddress(stream),
          t.api.socketStreamPeerAddress(stream),
        ]);
        await stream.writeLine('served');
        await stream.close();
      },
    });
    assert.ok(server, `the server started: ${condition?.message}`);
    t.defer(() => api.serverTerminate(server));
    const port = server.socket?.local.port as number;
    for (const n of [1, 2]) {
      const client = await t.connect(port);
      assert.equal(await client.readLine(), 'served', `client ${n} served`);
    }
    assert.equal(server.state, 'listening', 'the server is still listening');
    assert.deepEqual(seen, [
      [
        [null, null],
        [null, null],
        [null, null],
        [null, null],
      ],
      [
        [null, null],
        [null, null],
        [null, null],
        [null, null],
      ],
    ]);
  },
);

defineCase(
  'R18a.reset-storm-server-lives',
  "200 clients that connect and reset at once (a port scanner) while the talk handler asks each stream's peer address: the server lives and serves the next client",
  async (t) => {
    let served = 0;
    const { server, port } = await t.startServer({
      backlog: 512,
      function: (handle: Connection) => {
        const stream = new t.api.SocketStream({ socket: handle, direction: 'io' });
        const [, peerPort] = t.api.socketStreamPeerAddress(stream);
        t.api.processRunFunction(`talk ${peerPort}`, async () => {
          try {
            for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
              await stream.writeLine(`You sent: '${line}'`);
              stream.forceOutput();
              served++;
            }
          } finally {
            await stream.close({ abort: true });
          }
        });
      },
    });
    await connectAndReset(port, 200);
    assert.ok(server.active, `the server is still active (state ${server.state})`);
    await t.waitFor(() => server.state === 'listening', 'the server listening');
    const client = await t.connect(port);
    await client.writeLine('after the storm');
    assert.equal(await client.readLine(), "You sent: 'after the storm'");
    assert.ok(served >= 1);
  },
  30_000,
);
