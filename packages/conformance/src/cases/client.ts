/**
 * Streams and the client (contract section 3), R17: `openTcpStream` connects, with `errorp`
 * deciding null or rejection, `timeout` bounding the attempt, and the stream options the client
 * shares with `SocketStream`.
 */
import assert from 'node:assert/strict';
import type { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import process from 'node:process';
import type { Connection, OpenTcpStreamOptions } from '@comm/core/backend';
import type { CaseContext } from '../suite.js';
import { defineCase, freePort, within } from '../suite.js';
import { closeAtOnce, gate, MiB, openStream, serve, stream, writeUntilStuck } from './helpers.js';

// ---- R17: openTcpStream ----

/** The seed's talk server: each connection gets its own light-weight process that echoes lines. */
function talkServer(t: CaseContext): Promise<{ port: number }> {
  return t.startServer({
    function: (handle: Connection) => {
      const s = stream(t, handle);
      t.api.processRunFunction('talk', async () => {
        try {
          for (let line = await s.readLine(); line !== null; line = await s.readLine()) {
            await s.writeLine(`You sent: '${line}'`);
            s.forceOutput();
          }
        } finally {
          await s.close();
        }
      });
    },
  });
}

defineCase(
  'R17.talk',
  "openTcpStream('localhost', port) talks to the seed's talk server, as in the seed's transcript",
  async (t) => {
    const { port } = await talkServer(t);
    const talk = await openStream(t, port, {}, 'localhost');
    const transcript: string[] = [];
    for (const monolog of [
      'Hello self.',
      "Why don't you say something original?",
      'Talk to you later then.  Bye.',
    ]) {
      await talk.writeLine(monolog);
      talk.forceOutput();
      transcript.push(`I said: "${monolog}"`);
      transcript.push(`Self replied: "${await within(talk.readLine(), 5000, 'the reply')}"`);
    }
    await talk.close();
    assert.deepEqual(transcript, [
      'I said: "Hello self."',
      `Self replied: "You sent: 'Hello self.'"`,
      `I said: "Why don't you say something original?"`,
      `Self replied: "You sent: 'Why don't you say something original?'"`,
      'I said: "Talk to you later then.  Bye."',
      `Self replied: "You sent: 'Talk to you later then.  Bye.'"`,
    ]);
  },
);

defineCase(
  'R17.errorp-false-null',
  'with errorp false (the default) a refused connection resolves to null',
  async (t) => {
    const port = await freePort();
    const result = await t.api.openTcpStream('127.0.0.1', port);
    if (result) t.defer(() => result.close({ abort: true }));
    assert.equal(result, null);
    const explicit = await t.api.openTcpStream('127.0.0.1', port, { errorp: false });
    if (explicit) t.defer(() => explicit.close({ abort: true }));
    assert.equal(explicit, null);
  },
);

defineCase(
  'R17.errorp-true-rejects',
  'with errorp true a refused connection rejects with a ConnectionError (code ECONNREFUSED), the same class on every backend',
  async (t) => {
    const port = await freePort();
    await assert.rejects(
      async () => {
        const s = await t.api.openTcpStream('127.0.0.1', port, { errorp: true });
        if (s) t.defer(() => s.close({ abort: true }));
      },
      (error: unknown) => {
        assert.ok(
          error instanceof t.api.ConnectionError,
          `expected a ConnectionError, got ${error instanceof Error ? error.constructor.name : String(error)}`,
        );
        assert.ok(!(error instanceof t.api.StartupCondition), 'a client failure is no StartupCondition');
        assert.equal(error.name, 'ConnectionError');
        assert.equal(error.code, 'ECONNREFUSED');
        assert.equal(error.host, '127.0.0.1');
        assert.equal(error.port, port);
        assert.match(error.message, new RegExp(String(port)));
        return true;
      },
    );
  },
);

defineCase(
  'R17.errorp-unknown-service',
  'an unknown service name is null with errorp false, and a condition naming it with errorp true',
  async (t) => {
    const name = 'no-such-service-comm-conformance';
    const quiet = await t.api.openTcpStream('127.0.0.1', name);
    if (quiet) t.defer(() => quiet.close({ abort: true }));
    assert.equal(quiet, null);
    await assert.rejects(
      async () => {
        const s = await t.api.openTcpStream('127.0.0.1', name, { errorp: true });
        if (s) t.defer(() => s.close({ abort: true }));
      },
      (error: unknown) => {
        assert.ok(error instanceof t.api.ConnectionError, 'the rejection is a ConnectionError');
        assert.match(error.message, new RegExp(name));
        return true;
      },
    );
  },
);

defineCase(
  'R17.timeout-connects',
  'with timeout 2 a listening server is reached, and the stream outlives the timeout',
  async (t) => {
    const { port } = await talkServer(t);
    const talk = await openStream(t, port, { timeout: 2 });
    await talk.writeLine('before');
    talk.forceOutput();
    assert.equal(await within(talk.readLine(), 5000, 'the reply'), "You sent: 'before'");
    await t.sleep(2300);
    await talk.writeLine('after');
    talk.forceOutput();
    assert.equal(
      await within(talk.readLine(), 5000, 'the reply after the timeout passed'),
      "You sent: 'after'",
    );
  },
  15_000,
);

defineCase(
  'R17.timeout-bounds-attempt',
  'timeout bounds an attempt the server never answers: null, not a hang',
  async (t) => {
    // A listener that never accepts, with its queue full: the kernel drops further SYNs, so a
    // connection attempt would wait for the kernel's retries (minutes) but for the timeout.
    const child = spawn(
      'python3',
      [
        '-c',
        "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(60)",
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.defer(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        // already gone
      }
    });
    const port = await within(
      new Promise<number>((resolve) =>
        child.stdout?.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
      ),
      5000,
      'the silent listener',
    );
    for (let i = 0; i < 3; i++) {
      const filler = net.connect({ host: '127.0.0.1', port });
      filler.on('error', () => {});
      t.defer(() => filler.destroy());
    }
    await t.sleep(200);
    const started = Date.now();
    const stream = await within(
      t.api.openTcpStream('127.0.0.1', port, { timeout: 0.5 }),
      5000,
      'openTcpStream to settle',
    );
    const took = Date.now() - started;
    if (stream) t.defer(() => stream.close({ abort: true }));
    assert.equal(stream, null, 'an attempt that times out gives null (errorp false)');
    assert.ok(took >= 400, `it waited for the timeout (${took} ms)`);
  },
  15_000,
);

defineCase('R17.local-port', "localPort sets the client's port, as the server sees it", async (t) => {
  const hold = gate(t);
  const { port, result } = await serve(t, [
    async (h) => {
      const peer = t.api.getSocketPeerAddress(h);
      await hold.promise;
      h.destroy();
      return peer;
    },
  ]);
  const localPort = await freePort();
  const s = await openStream(t, port, { localPort });
  assert.equal(t.api.socketStreamAddress(s)[1], localPort, "the stream's own port");
  hold.open();
  assert.deepEqual(await result(), [0x7f000001, localPort], "the server's view of the peer");
});

defineCase(
  'R17.direction-input',
  "openTcpStream's direction 'input' gives a stream that reads and refuses writes",
  async (t) => {
    const { port } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        await s.writeLine('hello');
        await s.finishOutput();
        await s.readLine(); // until the client closes
        await s.close();
      },
    ]);
    const s = await openStream(t, port, { direction: 'input' });
    assert.equal(s.direction, 'input');
    assert.equal(await within(s.readLine(), 5000, 'the greeting'), 'hello');
    await assert.rejects(async () => s.writeLine('no'), Error);
    await s.close();
  },
);

defineCase(
  'R17.read-timeout',
  "openTcpStream's readTimeout makes a silent read see end of file; later data is still read",
  async (t) => {
    const hold = gate(t);
    const { port } = await serve(t, [
      async (h) => {
        const s = stream(t, h);
        await hold.promise;
        await s.writeLine('late');
        await s.finishOutput();
        await s.readLine(); // until the client closes
        await s.close();
      },
    ]);
    const s = await openStream(t, port, { readTimeout: 0.2 });
    const started = performance.now();
    const first = await within(s.readLine(), 5000, 'readLine with readTimeout 0.2 s to return');
    const elapsed = performance.now() - started;
    assert.equal(first, null, 'a read with no input within readTimeout sees end of file');
    assert.ok(
      elapsed >= 150,
      `readLine returned after ${elapsed.toFixed(0)} ms, before the 0.2 s readTimeout`,
    );
    hold.open();
    let later: string | null = null;
    for (let i = 0; i < 100 && later === null; i++) later = await s.readLine();
    assert.equal(later, 'late');
  },
);

defineCase(
  'R17.write-timeout',
  "openTcpStream's writeTimeout makes a write to a server that reads nothing fail instead of hanging",
  async (t) => {
    const hold = gate(t);
    const { port } = await serve(t, [
      async (h) => {
        await hold.promise;
        h.destroy();
      },
    ]);
    const s = await openStream(t, port, { writeTimeout: 0.5 });
    const { written, error, lastCallMs } = await within(
      writeUntilStuck(s, 32 * MiB),
      12_000,
      'the writes to fail',
    );
    assert.ok(
      error instanceof Error,
      `the writes to a server that reads nothing did not fail (${written} bytes written)`,
    );
    assert.ok(
      lastCallMs >= 400,
      `the failing write failed after ${lastCallMs.toFixed(0)} ms, before writeTimeout`,
    );
    assert.ok(
      lastCallMs < 5500,
      `the failing write took ${lastCallMs.toFixed(0)} ms, far beyond writeTimeout 0.5 s`,
    );
  },
  20_000,
);

defineCase(
  'R17.client-end-sends-fin',
  'end() on the connection of a stream openTcpStream made sends a FIN, not a reset: the server reads to the end of input, and its reply still reaches the client',
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      const lines: string[] = [];
      for (let line = await s.readLine(); line !== null; line = await s.readLine()) lines.push(line);
      await s.writeLine(`got ${lines.join(' ')}`);
      await s.close();
      return lines;
    });
    const s = await openStream(t, port);
    await s.writeLine('one');
    await s.writeLine('two');
    await s.finishOutput();
    await s.socket.end();
    assert.deepEqual(await result(), ['one', 'two'], 'the server read both lines, then the end of input');
    assert.equal(await within(s.readLine(), 5000, 'the reply'), 'got one two', 'the reply after the FIN');
    assert.equal(await within(s.readLine(), 5000, "the end of the server's output"), null);
  },
);

defineCase(
  'R17.local-address-seen-by-server',
  "localAddress sets the client's address: the stream's own address and the server's view of the peer are 127.0.0.2",
  async (t) => {
    const hold = gate(t);
    const { port, result } = await serve(t, async (h) => {
      const peer = t.api.getSocketPeerAddress(h);
      await hold.promise;
      h.destroy();
      return peer;
    });
    const s = await openStream(t, port, { localAddress: '127.0.0.2' });
    assert.equal(t.api.socketStreamAddress(s)[0], 0x7f000002, "the stream's own address");
    hold.open();
    const [address] = (await result()) as [unknown, unknown];
    assert.equal(address, 0x7f000002, "the server's view of the peer's address");
  },
);

defineCase(
  'R17.ipv6-mode-respected',
  'ipv6 true connects to IPv6 only (to 127.0.0.1: null), ipv6 false to IPv4 only (to ::1: null); each connects to its own family',
  async (t) => {
    const v4 = await t.startServer({ address: '127.0.0.1', function: closeAtOnce });
    const v6 = await t.startServer({ address: '::1', function: closeAtOnce });
    const connects = async (host: string, port: number, ipv6: OpenTcpStreamOptions['ipv6']) => {
      const s = await within(t.api.openTcpStream(host, port, { ipv6 }), 5000, `openTcpStream to ${host}`);
      if (s) t.defer(() => s.close({ abort: true }));
      return s !== null;
    };
    assert.equal(await connects('127.0.0.1', v4.port, false), true, 'ipv6 false to 127.0.0.1 connects');
    assert.equal(await connects('::1', v6.port, true), true, 'ipv6 true to ::1 connects');
    assert.equal(
      await connects('127.0.0.1', v4.port, true),
      false,
      'ipv6 true (IPv6 only) to 127.0.0.1 gives null',
    );
    assert.equal(await connects('::1', v6.port, false), false, 'ipv6 false (IPv4 only) to ::1 gives null');
  },
);
