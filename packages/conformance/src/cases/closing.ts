/**
 * R16: how a connection ends. A handle's `end()` is a FIN after what was written, never a reset,
 * and `close()` lingers, so that a peer still sending when the server closes gets its reply.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { type CaseContext, clientTransport, defineCase, RawClient, tcpTransport, within } from '../suite.js';
import { serve, stream } from './helpers.js';

/** An independent client, and what its TCP socket saw: the peer's FIN, or a failure (a reset). */
interface WatchedClient {
  readonly client: RawClient;
  /** Whether the peer's FIN arrived (node:net's 'end'); null where the transport cannot tell (uWS). */
  readonly fin: () => boolean | null;
  /** The code the socket failed with (ECONNRESET: the peer reset), or null. */
  readonly failure: () => string | null;
}

/**
 * An independent client that keeps its own side open after the peer's FIN (allowHalfOpen) and
 * tells a FIN from a reset: `node:net` over TCP. Over a backend's own transport (uWS) it is
 * `t.connect`'s client, whose end is a FIN-like message that cannot be told from a close.
 */
async function watchedClient(t: CaseContext, port: number): Promise<WatchedClient> {
  if (clientTransport(t.subject)) {
    const client = await t.connect(port);
    return { client, fin: () => null, failure: () => null };
  }
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  t.defer(() => socket.destroy());
  let fin = false;
  let failure: string | null = null;
  socket.on('end', () => {
    fin = true;
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    failure ??= error.code ?? error.message;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return { client: new RawClient(tcpTransport(socket)), fin: () => fin, failure: () => failure };
}

defineCase(
  'R16.end-sends-fin',
  "a handle's end() sends a FIN after what was written, not a reset: the client reads the reply and its end, and what the client sends afterwards still reaches the handler",
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      const request = await s.readLine();
      await s.writeLine(`reply to ${request}`);
      await s.finishOutput();
      await h.end();
      // Half-closed: reading goes on.
      const after = await s.readLine();
      const eof = await s.readLine();
      await s.close();
      return [after, eof];
    });
    const { client, fin, failure } = await watchedClient(t, port);
    await client.writeLine('hello');
    assert.equal(await within(client.readLine(), 5000, 'the reply'), 'reply to hello');
    await within(client.closedByPeer(), 5000, "the end of the server's output");
    assert.equal(failure(), null, 'the client saw a reset where end() should have sent a FIN');
    assert.notEqual(fin(), false, "the client's socket saw no FIN");
    await client.writeLine('after the fin').catch((error: NodeJS.ErrnoException) => {
      assert.fail(
        `the client cannot send after the server's end(): ${error.code ?? error.message} (a reset, not a FIN)`,
      );
    });
    client.end();
    assert.deepEqual(
      await result(),
      ['after the fin', null],
      'the handler reads what the client sent after its end(), then the end of input',
    );
    assert.equal(failure(), null, 'the client saw a reset');
  },
);

/** The lines a late reader sends after its request, 10 ms apart: it is still sending when the server closes. */
const LATE_LINES = 30;

defineCase(
  'R16.close-lingers-for-late-reader',
  'close() after a reply does not reset a client that is still sending: the client, reading only later, gets the whole reply and the end of output (twice)',
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      const line = await s.readLine();
      await s.writeLine(`reply to ${line}`);
      await s.close();
      return line;
    });
    for (let n = 0; n < 2; n++) {
      const { client, failure } = await watchedClient(t, port);
      // The reply waits in the client's kernel while the client goes on sending.
      client.pause();
      await client.writeLine(`request ${n}`);
      assert.equal(await result(n), `request ${n}`, 'the server read the request, replied and closed');
      for (let i = 0; i < LATE_LINES; i++) {
        client.writeLine(`more ${i}`).catch(() => {});
        await t.sleep(10);
      }
      client.resume();
      const reply = await within(client.readLine(), 5000, 'the reply');
      assert.equal(
        reply,
        `reply to request ${n}`,
        `the client, still sending when the server closed, lost the reply${failure() ? ` (its socket failed: ${failure()})` : ''}`,
      );
      await within(client.closedByPeer(), 5000, "the end of the server's output");
      assert.equal(failure(), null, 'the server reset the connection of a client that was still sending');
      client.end();
    }
  },
  15_000,
);
