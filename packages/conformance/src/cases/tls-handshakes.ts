/**
 * TLS (contract section 6), R22: handshakes run outside the sequential accept loop; one that times
 * out or fails closes that connection only, on the server as on the client.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import type { CaseContext } from '../suite.js';
import { defineCase, within } from '../suite.js';
import {
  assertTlsCondition,
  hello,
  line,
  openTlsOk,
  rejection,
  serverContext,
  tlsServer,
  trustingContext,
} from './helpers/tls.js';

/** Resolves once `socket` (node:net, in the case's runtime) is closed by its peer; the time it took from `since`. */
function closedWithin(socket: net.Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    const done = () => resolve(Date.now() - since);
    if (socket.destroyed) done();
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', done);
  });
}

/** A raw node:net client to 127.0.0.1:`port` that sends `bytes` (nothing if empty); destroyed after the case. */
async function rawTcp(
  t: CaseContext,
  port: number,
  bytes: Uint8Array = new Uint8Array(0),
): Promise<{ socket: net.Socket; closed: Promise<number>; open: () => boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  t.defer(() => socket.destroy());
  socket.on('data', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const since = Date.now();
  let ended = false;
  const closed = closedWithin(socket, since).then((ms) => {
    ended = true;
    return ms;
  });
  if (bytes.length > 0) socket.write(bytes);
  return { socket, closed, open: () => !ended };
}

defineCase(
  'R22.server-handshake-timeout',
  'a client that never says hello is closed after the handshake timeout, and holds up no other client; function never sees it',
  async (t) => {
    const quick = await tlsServer(t, serverContext(t, undefined, { handshakeTimeout: 0.5 }), (h) =>
      hello(t, h),
    );
    const silent = await rawTcp(t, quick.port);
    const after = await openTlsOk(t, quick.port);
    assert.equal(await line(after), 'hello');
    const ms = await within(silent.closed, 5000, 'the silent client to be closed');
    assert.ok(ms >= 400, `the silent client was closed after ${ms} ms, before the timeout of 500 ms`);
    assert.ok(ms <= 3000, `the silent client was closed after ${ms} ms; the timeout is 500 ms`);
    assert.equal(quick.calls(), 1, 'function was called for the silent client');
    // With a long timeout, a silent client waits while a client behind it is served at once.
    const patient = await tlsServer(t, serverContext(t, undefined, { handshakeTimeout: 30 }), (h) =>
      hello(t, h),
    );
    const waiting = await rawTcp(t, patient.port);
    const half = await rawTcp(t, patient.port, Buffer.from([0x16, 0x03, 0x01, 0x00]));
    const started = Date.now();
    const next = await openTlsOk(t, patient.port);
    assert.equal(await line(next), 'hello');
    assert.ok(
      Date.now() - started < 3000,
      `the client behind a silent one waited ${Date.now() - started} ms`,
    );
    assert.ok(waiting.open() && half.open(), 'the silent clients should still be waiting for their timeout');
    assert.equal(patient.calls(), 1);
  },
  20_000,
);

defineCase(
  'R22.client-handshake-timeout',
  'openTcpStream to a server that never answers the hello gives up after handshakeTimeout: null, or ETIMEDOUT with errorp',
  async (t) => {
    const sockets = new Set<net.Socket>();
    const mute = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      mute.once('error', reject);
      mute.listen(0, '127.0.0.1', resolve);
    });
    t.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          mute.close(() => resolve());
        }),
    );
    const port = (mute.address() as net.AddressInfo).port;
    const options = { sslCtx: trustingContext(t), tlsextHostName: 'localhost', handshakeTimeout: 0.5 };
    let started = Date.now();
    const quiet = await within(
      t.api.openTcpStream('127.0.0.1', port, { ...options, errorp: false }),
      5000,
      'openTcpStream to give up',
    );
    let ms = Date.now() - started;
    assert.equal(quiet, null, 'a connection without a handshake was given as a stream');
    assert.ok(ms >= 400 && ms <= 3000, `gave up after ${ms} ms; the handshake timeout is 500 ms`);
    started = Date.now();
    const error = await rejection(
      t.api.openTcpStream('127.0.0.1', port, { ...options, errorp: true }),
      'a handshake with a mute server',
    );
    ms = Date.now() - started;
    assertTlsCondition(t, error, 'the timed-out handshake');
    assert.equal(error.code, 'ETIMEDOUT', `the condition's code is ${error.code}: ${error.message}`);
    assert.ok(ms >= 400 && ms <= 3000, `rejected after ${ms} ms; the handshake timeout is 500 ms`);
    // The attempts are given up: the server's sockets are closed by the client.
    await t.waitFor(() => sockets.size === 0, 'the client to close the connections it gave up', 3000);
  },
  20_000,
);

defineCase(
  'R22.failed-handshake-closes-one',
  'plain text and garbage to a TLS port are closed at once, never reach function, and the next TLS client is served',
  async (t) => {
    const { port, calls } = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const http = await rawTcp(t, port, Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    const garbage = await rawTcp(
      t,
      port,
      Buffer.concat([Buffer.alloc(64, 0xff), Buffer.from('\0not TLS at all\r\n'), randomBytes(256)]),
    );
    for (const [name, client] of Object.entries({ http, garbage })) {
      const ms = await within(client.closed, 5000, `the ${name} client to be closed`);
      assert.ok(
        ms < 3000,
        `the ${name} client was closed after ${ms} ms: by a timeout, not the failed handshake`,
      );
    }
    const s = await openTlsOk(t, port);
    assert.equal(await line(s), 'hello');
    await t.sleep(100);
    assert.equal(calls(), 1, 'function was called for a connection whose handshake failed');
  },
  20_000,
);
