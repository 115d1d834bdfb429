/**
 * Graceful drain (contract section 6), R23: a server knows its sessions and drains them; a failed
 * session's stream is closed; the stream `function` gets is made with `createStream`'s options.
 */
import assert from 'node:assert/strict';
import type { Connection, ServerProcess, SocketStream } from '@comm/core/backend';
import type { CaseContext } from '../suite.js';
import { defineCase, within } from '../suite.js';
import { bindable, settle } from './helpers.js';

/** A session that answers `echo <line>` to each line until end of file, then closes. */
async function echoSession(s: SocketStream): Promise<void> {
  try {
    for (let line = await s.readLine(); line !== null; line = await s.readLine()) {
      await s.writeLine(`echo ${line}`);
      s.forceOutput();
    }
  } finally {
    await s.close();
  }
}

/** A server whose `function` hands each connection to an echo session, as the talk example does. */
async function sessionServer(t: CaseContext): Promise<{ server: ServerProcess; port: number }> {
  const { SocketStream, processRunFunction } = t.api;
  return t.startServer({
    function: (handle: Connection) => {
      processRunFunction(
        'echo session',
        (h: Connection) => echoSession(new SocketStream({ socket: h })),
        handle,
      );
    },
  });
}

defineCase(
  'R23.sessions-listed',
  'process.sessions holds the processes that function started, each until it ends',
  async (t) => {
    const { server, port } = await sessionServer(t);
    assert.equal(server.sessions.size, 0);
    const clients = await Promise.all([t.connect(port), t.connect(port), t.connect(port)]);
    await t.waitFor(() => server.sessions.size === 3, 'three live sessions');
    for (const session of server.sessions) assert.equal(session.state, 'running');
    const [first] = clients;
    first?.end();
    await t.waitFor(() => server.sessions.size === 2, 'the ended session to leave the set', 5000);
  },
);

defineCase(
  'R23.drain-lets-sessions-finish',
  'serverTerminate(p, { drain: 5 }) frees the port, a live session still talks, and drained settles when it ends',
  async (t) => {
    const { server, port } = await sessionServer(t);
    const client = await t.connect(port);
    await client.writeLine('before');
    assert.equal(await within(client.readLine(), 5000, 'the echo before'), 'echo before');
    let drained = false;
    void server.drained.then(() => {
      drained = true;
    });
    assert.equal(t.api.serverTerminate(server, { drain: 5 }), true);
    await within(server.terminated, 5000, 'terminated');
    assert.ok(await bindable(port), 'the port is free once terminated settles, while a session drains');
    await client.writeLine('during');
    assert.equal(await within(client.readLine(), 5000, 'the echo while draining'), 'echo during');
    await t.sleep(100);
    assert.equal(drained, false, 'drained settled while a session was live');
    const ended = Date.now();
    client.end();
    await within(server.drained, 3000, 'drained, after the last session ended');
    assert.ok(Date.now() - ended < 3000);
    assert.equal(server.sessions.size, 0);
    await within(client.closedByPeer(), 3000, 'the session to close its side');
  },
  15_000,
);

defineCase(
  'R23.drain-closes-at-deadline',
  'a session that does not end within drain seconds has its stream closed: its client sees end of file, drained settles',
  async (t) => {
    const { server, port } = await sessionServer(t);
    const client = await t.connect(port);
    await client.writeLine('hello');
    assert.equal(await within(client.readLine(), 5000, 'the echo'), 'echo hello');
    const started = Date.now();
    t.api.serverTerminate(server, { drain: 0.5 });
    await within(client.closedByPeer(), 5000, 'the server to close the silent session');
    const waited = Date.now() - started;
    assert.ok(waited >= 400, `closed after ${waited} ms, before the drain time of 500 ms`);
    await within(server.drained, 5000, 'drained');
    assert.equal(server.sessions.size, 0);
  },
  15_000,
);

defineCase(
  'R23.closure-session-closed',
  'a session that holds its stream in a closure, not in its arguments, belongs to the connection whose call started it: drain closes it, and so does its failure',
  async (t) => {
    const { processRunFunction } = t.api;
    let calls = 0;
    const { server, port } = await t.startServer({
      createStream: true,
      function: (s: SocketStream) => {
        const fails = calls++ === 1;
        processRunFunction('closure session', async () => {
          if (!fails) return echoSession(s);
          await s.readLine();
          throw new Error('the session fails on purpose (R23.closure-session-closed)');
        });
      },
    });
    const silent = await t.connect(port);
    await silent.writeLine('hello');
    assert.equal(await within(silent.readLine(), 5000, 'the echo'), 'echo hello');
    const failing = await t.connect(port);
    await failing.writeLine('fail now');
    await within(failing.closedByPeer(), 5000, 'the failed closure session to be closed');
    t.api.serverTerminate(server, { drain: 0.3 });
    await within(silent.closedByPeer(), 5000, 'the drained closure session to be closed');
    await within(server.drained, 5000, 'drained');
  },
  15_000,
);

defineCase(
  'R23.no-drain-leaves-sessions',
  'without drain, terminating leaves handed-on sessions alone (R15); drained settles only once they end',
  async (t) => {
    const { server, port } = await sessionServer(t);
    const client = await t.connect(port);
    await client.writeLine('one');
    assert.equal(await within(client.readLine(), 5000, 'the first echo'), 'echo one');
    let drained = false;
    void server.drained.then(() => {
      drained = true;
    });
    t.api.serverTerminate(server);
    await within(server.terminated, 5000, 'terminated');
    await t.sleep(700);
    await client.writeLine('two');
    assert.equal(await within(client.readLine(), 5000, 'the echo after terminating'), 'echo two');
    assert.equal(drained, false, 'drained settled while a session was live');
    client.end();
    await within(server.drained, 5000, 'drained');
  },
  15_000,
);

defineCase(
  'R23.drain-checked',
  'a wrong drain is a TypeError that names it, and the server keeps serving',
  async (t) => {
    const { server } = await sessionServer(t);
    for (const bad of [{ drain: -1 }, { drain: 'soon' }, { drain: Number.NaN }, { drian: 5 }] as const)
      assert.throws(
        () => t.api.serverTerminate(server, bad as never),
        (error: unknown) => error instanceof TypeError && /drain|drian/.test(error.message),
        JSON.stringify(bad),
      );
    assert.equal(server.active, true);
    assert.equal(t.api.serverTerminate(server, { drain: 0 }), true);
    await within(server.drained, 5000, 'drained with no sessions');
  },
);

defineCase(
  'R23.failed-session-closed',
  'a session whose function fails has its stream closed: what it wrote is sent, then end of file',
  async (t) => {
    const { processRunFunction } = t.api;
    const failed = settle<void>();
    const { port } = await t.startServer({
      createStream: true,
      function: (s: SocketStream) => {
        processRunFunction(
          'failing session',
          async (stream: SocketStream) => {
            await stream.writeLine('bye');
            failed.resolve();
            throw new Error('the session fails on purpose (R23.failed-session-closed)');
          },
          s,
        );
      },
    });
    const client = await t.connect(port);
    await within(failed.promise, 5000, 'the session');
    assert.equal(await within(client.readLine(), 5000, 'what the session wrote'), 'bye');
    await within(client.closedByPeer(), 5000, 'the failed session to be closed');
  },
);

defineCase(
  'R23.failed-handle-session-closed',
  'a session started with the handle, whose function fails after making a stream on it, is closed too',
  async (t) => {
    const { processRunFunction, SocketStream } = t.api;
    const { port } = await t.startServer({
      function: (handle: Connection) => {
        processRunFunction(
          'failing session',
          async (h: Connection) => {
            const s = new SocketStream({ socket: h, lineLimit: 16 });
            await s.writeLine('ready');
            s.forceOutput();
            await s.readLine(); // the client's line is too long: RangeError, not caught
          },
          handle,
        );
      },
    });
    const client = await t.connect(port);
    assert.equal(await within(client.readLine(), 5000, 'ready'), 'ready');
    await client.writeLine('x'.repeat(100));
    await within(client.closedByPeer(), 5000, 'the failed session to be closed');
  },
);

defineCase(
  'R23.create-stream-options',
  'createStream: { lineLimit, readTimeout, writeTimeout } makes the stream function gets; wrong ones fail at the call',
  async (t) => {
    const seen = settle<{ lineLimit: number; readTimeout: number | null; writeTimeout: number | null }>();
    const line = settle<unknown>();
    const { port } = await t.startServer({
      createStream: { lineLimit: 16, readTimeout: 0.5, writeTimeout: 7 },
      function: async (s: SocketStream) => {
        seen.resolve({ lineLimit: s.lineLimit, readTimeout: s.readTimeout, writeTimeout: s.writeTimeout });
        try {
          line.resolve(await s.readLine());
        } catch (error) {
          line.resolve(error);
        }
        // A silent client: the read timeout gives end of file.
        line.resolve(await s.readLine());
        await s.close({ abort: true });
      },
    });
    const client = await t.connect(port);
    assert.deepEqual(await within(seen.promise, 5000, 'the stream'), {
      lineLimit: 16,
      readTimeout: 0.5,
      writeTimeout: 7,
    });
    await client.writeLine('y'.repeat(64));
    assert.ok((await within(line.promise, 5000, 'the long line')) instanceof RangeError);
    for (const [bad, named] of [
      [{ lineLimit: 0 }, 'createStream.lineLimit'],
      [{ readTimeout: -1 }, 'createStream.readTimeout'],
      [{ lineLimt: 10 }, 'createStream.lineLimt'],
      ['yes', 'createStream'],
    ] as const)
      assert.throws(
        () => t.api.startUpServer({ createStream: bad as never, service: 0 }),
        (error: unknown) => error instanceof TypeError && error.message.includes(`"${named}"`),
        named,
      );
  },
);
