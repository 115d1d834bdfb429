/**
 * Connections (contract section 3): R1 what `function` is called with, R2 sequential calls (and the
 * hand-off to `processRunFunction` for concurrency). R3, the built-in listener, is in listener.ts.
 */
import assert from 'node:assert/strict';
import type { Connection, SocketStream } from '@comm/core/backend';
import { defineCase } from '../suite.js';

// R1: `function` is called with the connected socket handle (a SocketStream when createStream).

defineCase(
  'R1.handle-is-connection',
  'function gets a socket handle that a SocketStream can wrap',
  async (t) => {
    const { SocketStream } = t.api;
    const { port } = await t.startServer({
      function: (handle: Connection) => {
        const stream = new SocketStream({ socket: handle, direction: 'io' });
        void stream.writeLine('hello from the handle').then(() => stream.close());
      },
    });
    const client = await t.connect(port);
    assert.equal(await client.readLine(), 'hello from the handle');
  },
);

defineCase('R1.handle-addresses', "the handle's addresses are the connection's two ends", async (t) => {
  let seen: [unknown, unknown, unknown, unknown] | null = null;
  const { port } = await t.startServer({
    function: (handle: Connection) => {
      const [la, lp] = t.api.getSocketAddress(handle);
      const [pa, pp] = t.api.getSocketPeerAddress(handle);
      seen = [la, lp, pa, pp];
      handle.destroy();
    },
  });
  const client = await t.connect(port);
  await t.waitFor(() => seen !== null, 'the handler');
  assert.deepEqual(seen, [0x7f000001, port, 0x7f000001, client.localPort]);
});

defineCase('R1.create-stream', 'createStream: true gives function an io SocketStream', async (t) => {
  const { port } = await t.startServer({
    createStream: true,
    function: async (stream: SocketStream) => {
      assert.ok(stream instanceof t.api.SocketStream);
      assert.equal(stream.direction, 'io');
      const line = await stream.readLine();
      await stream.writeLine(`got ${line}`);
      await stream.close();
    },
  });
  const client = await t.connect(port);
  await client.writeLine('ping');
  assert.equal(await client.readLine(), 'got ping');
});

defineCase('R1.one-call-per-connection', 'function is called once for each connection', async (t) => {
  let calls = 0;
  const { port } = await t.startServer({
    function: (handle: Connection) => {
      calls++;
      handle.destroy();
    },
  });
  for (let i = 0; i < 5; i++) await (await t.connect(port)).closedByPeer();
  assert.equal(calls, 5);
});

// R2: calls are sequential; clients that connect meanwhile wait and are served in order; none is lost.

defineCase('R2.sequential-calls', 'the next connection is taken only after function returned', async (t) => {
  let running = 0;
  let overlap = false;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const served: number[] = [];
  const { port } = await t.startServer({
    createStream: true,
    function: async (stream: SocketStream) => {
      running++;
      if (running > 1) overlap = true;
      const id = Number(await stream.readLine());
      served.push(id);
      if (id === 0) await gate;
      await stream.writeLine(`served ${id}`);
      await stream.close();
      running--;
    },
  });
  const first = await t.connect(port);
  await first.writeLine('0');
  await t.waitFor(() => served.length === 1, 'the first call');
  const others = [];
  for (let i = 1; i <= 3; i++) {
    const c = await t.connect(port);
    await c.writeLine(String(i));
    others.push(c);
  }
  await t.sleep(100);
  assert.deepEqual(served, [0], 'no other call may start while the first has not returned');
  release();
  assert.equal(await first.readLine(), 'served 0');
  for (let i = 1; i <= 3; i++) assert.equal(await others[i - 1]?.readLine(), `served ${i}`);
  assert.deepEqual(served, [0, 1, 2, 3]);
  assert.equal(overlap, false);
});

defineCase(
  'R2.promise-settles-first',
  'a returned promise holds the next call until it settles',
  async (t) => {
    const events: string[] = [];
    const { port } = await t.startServer({
      function: (handle: Connection) => {
        events.push('start');
        return new Promise<void>((resolve) =>
          setTimeout(() => {
            events.push('end');
            handle.destroy();
            resolve();
          }, 50),
        );
      },
    });
    const a = await t.connect(port);
    const b = await t.connect(port);
    await a.closedByPeer();
    await b.closedByPeer();
    assert.deepEqual(events, ['start', 'end', 'start', 'end']);
  },
);

defineCase(
  'R2.burst-none-lost',
  '30 clients that connect at once are all served, in order of arrival',
  async (t) => {
    const { port } = await t.startServer({
      backlog: 64,
      createStream: true,
      function: async (stream: SocketStream) => {
        const line = await stream.readLine();
        await stream.writeLine(`ok ${line}`);
        await stream.close();
      },
    });
    const clients = await Promise.all(Array.from({ length: 30 }, () => t.connect(port)));
    await Promise.all(clients.map((c, i) => c.writeLine(String(i))));
    const replies = await Promise.all(clients.map((c) => c.readLine()));
    assert.deepEqual(
      replies,
      clients.map((_, i) => `ok ${i}`),
    );
  },
);

defineCase(
  'R2.process-run-function-concurrency',
  'a handler that hands on to processRunFunction serves clients at once',
  async (t) => {
    const { port } = await t.startServer({
      createStream: true,
      function: (stream: SocketStream) => {
        t.api.processRunFunction('talk', async () => {
          for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
            await stream.writeLine(`You sent: '${line}'`);
            await stream.finishOutput();
          }
          await stream.close();
        });
      },
    });
    const a = await t.connect(port);
    const b = await t.connect(port);
    // b is served while a still holds its session open.
    await b.writeLine('from b');
    assert.equal(await b.readLine(), "You sent: 'from b'");
    await a.writeLine('from a');
    assert.equal(await a.readLine(), "You sent: 'from a'");
  },
);
