/**
 * TLS (contract section 6), R22: contexts at work. A server that asks for client certificates,
 * STARTTLS with `attachSsl` on either side, and wrong TLS options as a TypeError at the call.
 */
import assert from 'node:assert/strict';
import type { AnyServerOptions, Connection, SocketStream, SslClientContext } from '@comm/core/backend';
import { defineCase, within } from '../suite.js';
import { certificates } from './certificates.js';
import {
  assertTlsInfo,
  hello,
  line,
  openTls,
  openTlsOk,
  PROTOCOL,
  pythonPeer,
  serverContext,
  tlsApi,
  tlsServer,
  trustingContext,
} from './helpers/tls.js';
import { occupyPort, serve, stream } from './helpers.js';

defineCase(
  'R22.client-certificate',
  'a server that asks for client certificates refuses a client without one (or with one the CA did not sign) before function, and serves one the CA signed',
  async (t) => {
    const ca = certificates().ca.certFile;
    const { port, calls } = await tlsServer(
      t,
      serverContext(t, undefined, { requestCert: true, caFile: ca }),
      (h) => hello(t, h),
    );
    /** Refused: no stream, or (TLS 1.3: the client finishes first) one that ends without a word. */
    const refusedWith = async (ctx: SslClientContext, what: string) => {
      const s = await openTls(t, port, { sslCtx: ctx, errorp: false });
      if (s === null) return;
      const got = await within(
        s.readLine().catch(() => null),
        5000,
        `the server to close the connection of a client ${what}`,
      );
      assert.equal(got, null, `a client ${what} was served`);
    };
    await refusedWith(trustingContext(t), 'without a certificate');
    const stranger = certificates().selfSigned;
    await refusedWith(
      trustingContext(t, { certFile: stranger.certFile, keyFile: stranger.keyFile }),
      'with a certificate the CA did not sign',
    );
    const mine = certificates().client;
    const s = await openTlsOk(t, port, {
      sslCtx: trustingContext(t, { certFile: mine.certFile, keyFile: mine.keyFile }),
    });
    assert.equal(await line(s), 'hello');
    await t.sleep(100);
    assert.equal(calls(), 1, 'function was called for a client without a good certificate');
  },
  20_000,
);

defineCase(
  'R22.starttls-server',
  'attachSsl with a server context upgrades an accepted plain connection after STARTTLS/OK; Python talks TLS on it',
  async (t) => {
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h, { readTimeout: 10 });
      const first = await s.readLine();
      if (first !== 'STARTTLS') return { error: `the client sent ${JSON.stringify(first)}` };
      await s.writeLine('OK');
      await s.finishOutput();
      await tlsApi(t).attachSsl(s, { sslCtx: serverContext(t) });
      const tls = h.tls ?? null;
      const lines: string[] = [];
      for (let l = await s.readLine(); l !== null && l !== 'bye'; l = await s.readLine()) {
        lines.push(l);
        await s.writeLine(`echo ${l}`);
        s.forceOutput();
      }
      await s.writeLine('bye');
      await s.close();
      return { lines, tls };
    });
    const peer = pythonPeer(t, 'starttls-client', [
      '--port',
      String(port),
      '--ca',
      certificates().ca.certFile,
      '--servername',
      'localhost',
      ...['one', 'two', 'bye'].flatMap((l) => ['--line', l]),
    ]);
    // The server's outcome first: where attachSsl refuses, it says why.
    const served = (await result(0, 15_000)) as { lines?: string[]; tls?: unknown; error?: string };
    assert.equal(served.error, undefined, served.error);
    assert.deepEqual(served.lines, ['one', 'two']);
    const info = assertTlsInfo(served.tls, "the server's handle after attachSsl");
    assert.equal(info.servername, 'localhost');
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.equal(answer.received, 'echo one\necho two\nbye\n');
    assert.equal(answer.eof, 'clean', `the upgraded stream's close sent no close_notify: ${answer.eof}`);
  },
  20_000,
);

defineCase(
  'R22.starttls-client',
  'attachSsl with a client context upgrades an openTcpStream stream after STARTTLS/OK (Python is the server); the name is sent and verified',
  async (t) => {
    const cert = certificates().server;
    const peer = pythonPeer(t, 'starttls-server', ['--cert', cert.certFile, '--key', cert.keyFile]);
    const [, port] = await peer.line(/^PORT (\d+)$/);
    const s = await within(
      t.api.openTcpStream('127.0.0.1', Number(port), { errorp: true, readTimeout: 10 }),
      10_000,
      'a plain connection to the Python server',
    );
    assert.ok(s);
    t.defer(() => s.close({ abort: true }));
    await s.writeLine('STARTTLS');
    s.forceOutput();
    assert.equal(await line(s), 'OK');
    await within(
      tlsApi(t).attachSsl(s, { sslCtx: trustingContext(t), tlsextHostName: 'localhost' }),
      10_000,
      'attachSsl as the client',
    );
    const info = assertTlsInfo((s.socket as Connection).tls, "the client's stream.socket after attachSsl");
    assert.equal(info.servername, 'localhost');
    for (const word of ['one', 'two']) {
      await s.writeLine(word);
      s.forceOutput();
      assert.equal(await line(s), `echo ${word}`);
    }
    await s.writeLine('bye');
    s.forceOutput();
    assert.equal(await line(s), 'bye');
    await s.close();
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.deepEqual(answer.lines, ['one', 'two', 'bye']);
    assert.equal(answer.sni, 'localhost', 'the client sent no SNI name');
    assert.match(String(answer.version), PROTOCOL);
    assert.equal(answer.eof, 'clean', `the client's close sent no close_notify: ${answer.eof}`);
  },
  20_000,
);

defineCase(
  'R22.contexts-checked',
  'wrong TLS options are a TypeError at the call that names the file or the option',
  async (t) => {
    const { createSslServerContext, createSslClientContext } = tlsApi(t);
    const { server, ca } = certificates();
    const missing = `${certificates().dir}/no-such-cert.pem`;
    const typeError = (fn: () => unknown, names: readonly string[], what: string) => {
      let outcome: unknown;
      try {
        outcome = fn();
      } catch (error) {
        assert.ok(
          error instanceof TypeError,
          `${what}: ${error instanceof Error ? error.name : typeof error}, not a TypeError: ${String(error)}`,
        );
        for (const name of names)
          assert.ok(
            error.message.includes(name),
            `${what}: the TypeError does not name ${name}: ${error.message}`,
          );
        return;
      }
      // Something started anyway: stop it before failing.
      if (outcome instanceof Promise)
        outcome.then(
          (s) => (s as SocketStream | null)?.close({ abort: true }),
          () => {},
        );
      else if (outcome && typeof outcome === 'object' && 'socket' in outcome)
        t.api.serverTerminate(outcome as never);
      assert.fail(`${what} was accepted`);
    };
    typeError(
      () => createSslServerContext({ certFile: missing, keyFile: server.keyFile }),
      [missing],
      'a missing certFile',
    );
    typeError(
      () => createSslServerContext({ certFile: server.certFile, keyFile: ca.certFile }),
      ['keyFile', ca.certFile],
      'a keyFile that holds a certificate, no key',
    );
    typeError(
      () =>
        createSslServerContext({
          certFile: server.certFile,
          keyFile: server.keyFile,
          verify: false,
        } as never),
      ['verify'],
      'an unknown option of createSslServerContext',
    );
    typeError(
      () =>
        createSslServerContext({ certFile: server.certFile, keyFile: server.keyFile, handshakeTimeout: 0 }),
      ['handshakeTimeout'],
      'handshakeTimeout 0',
    );
    typeError(
      () => createSslServerContext({ certFile: server.certFile, keyFile: server.keyFile, requestCert: true }),
      ['caFile'],
      'requestCert without caFile',
    );
    typeError(
      () => createSslClientContext({ requestCert: true } as never),
      ['requestCert'],
      'an unknown option of createSslClientContext',
    );
    typeError(() => createSslClientContext({ caFile: missing }), [missing], 'a missing caFile');
    typeError(
      () => createSslClientContext({ certFile: server.certFile }),
      ['keyFile'],
      'certFile without keyFile',
    );
    const client = createSslClientContext({ caFile: ca.certFile });
    typeError(
      () =>
        t.api.startUpServer({
          service: 0,
          address: '127.0.0.1',
          sslCtx: client as never,
          function: (h: Connection) => h.destroy(),
        } as AnyServerOptions),
      ['sslCtx'],
      'startUpServer with a client context',
    );
    const port = await occupyPort(t);
    typeError(
      () => t.api.openTcpStream('127.0.0.1', port, { tlsextHostName: 'localhost' }),
      ['tlsextHostName'],
      'tlsextHostName without sslCtx',
    );
    typeError(
      () => t.api.openTcpStream('127.0.0.1', port, { sslCtx: serverContext(t) as never }),
      ['sslCtx'],
      'openTcpStream with a server context',
    );
  },
);
