import { afterEach, describe, expect, it } from 'vitest';
import {
  Cleanup,
  connectFrom,
  startHaproxy,
  startNginx,
  startTalkServer,
  talkFrom,
  transcript,
  until,
} from './helpers.js';

// R21 end to end: real HAProxy (v2 headers) and nginx's stream module (v1 headers) in front of the
// talk server, a client on 127.0.0.2 (Linux routes all of 127/8 to lo), the server's
// --log-sessions line naming that client, not the proxy.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const proxies = [
  { name: 'HAProxy', version: 'v2', start: startHaproxy },
  { name: 'nginx', version: 'v1', start: startNginx },
] as const;

/** The line --log-sessions prints for a client. */
const sessionLine = (address: string, port: number) =>
  new RegExp(`^session from ${address.replace(/\./g, '\\.')} port ${port}$`, 'm');

describe('the talk server behind a PROXY protocol proxy (--proxy-protocol)', () => {
  for (const backend of ['node', 'bun', 'deno'])
    for (const proxy of proxies)
      for (const mode of [proxy.version, 'any'])
        it(`${proxy.name} (${proxy.version}) -> --backend ${backend} --proxy-protocol ${mode}: the session is the client's, 127.0.0.2 and its own port`, async () => {
          const { server, port } = await startTalkServer(cleanup, [
            '--backend',
            backend,
            '--proxy-protocol',
            mode,
            '--log-sessions',
          ]);
          const proxyPort = await proxy.start(cleanup, port);
          const client = await talkFrom(cleanup, proxyPort, '127.0.0.2');
          expect(client.lines).toEqual(transcript);
          await server.waitFor(sessionLine('127.0.0.2', client.localPort), 5_000);
          // Only the client's session: the proxy's own address never appears.
          expect(server.output()).not.toMatch(/^session from 127\.0\.0\.1 /m);
          expect(await server.stop('SIGTERM')).toBe(0);
        }, 30_000);

  for (const proxy of proxies)
    it(`${proxy.name} (${proxy.version}) on ::1: an IPv6 client's session is logged as ::1 and its own port`, async () => {
      const { server, port } = await startTalkServer(cleanup, ['--proxy-protocol', 'any', '--log-sessions']);
      const proxyPort = await proxy.start(cleanup, port, '::1');
      const client = await talkFrom(cleanup, proxyPort, '::1');
      expect(client.lines).toEqual(transcript);
      await server.waitFor(sessionLine('::1', client.localPort), 5_000);
      expect(await server.stop('SIGTERM')).toBe(0);
    }, 30_000);

  it('a v1-only server refuses the v2 header HAProxy sends, and a v2-only server the v1 header of nginx', async () => {
    const v1 = await startTalkServer(cleanup, ['--proxy-protocol', 'v1', '--log-sessions']);
    const v2 = await startTalkServer(cleanup, ['--proxy-protocol', 'v2', '--log-sessions']);
    for (const [server, start] of [
      [v1, startHaproxy],
      [v2, startNginx],
    ] as const) {
      const proxyPort = await start(cleanup, server.port);
      const client = await connectFrom(cleanup, proxyPort, '127.0.0.2');
      client.socket.write('Hello self.\n');
      expect(await client.line()).toBeNull();
      await client.closed;
      expect(server.server.output()).not.toMatch(/^session from /m);
    }
  }, 30_000);

  it('a forged header from an untrusted address is cut off before the session; the server then serves a good client', async () => {
    // Long enough that a close at the timeout, rather than at once, would show.
    const { server, port } = await startTalkServer(cleanup, [
      '--proxy-protocol',
      'any',
      '--trusted-proxy',
      '127.0.0.1/32',
      '--proxy-timeout',
      '20',
      '--log-sessions',
    ]);
    const forger = await connectFrom(cleanup, port, '127.0.0.3');
    forger.socket.write(`PROXY TCP4 6.6.6.6 127.0.0.1 4444 ${port}\r\nHello self.\n`);
    expect(await forger.line()).toBeNull();
    expect(await forger.closed).toBeLessThan(5_000);

    const proxyPort = await startHaproxy(cleanup, port);
    const client = await talkFrom(cleanup, proxyPort, '127.0.0.2');
    expect(client.lines).toEqual(transcript);
    await server.waitFor(sessionLine('127.0.0.2', client.localPort), 5_000);
    expect(server.output()).not.toMatch(/session from 6\.6\.6\.6/);
    expect(server.output()).not.toMatch(/session from 127\.0\.0\.3/);
    expect(server.output().match(/^session from /gm)).toHaveLength(1);
    expect(await server.stop('SIGTERM')).toBe(0);
  }, 30_000);

  it('a connection that never sends its header holds up nobody, and is closed after --proxy-timeout', async () => {
    const timeout = 3;
    const { server, port } = await startTalkServer(cleanup, [
      '--proxy-protocol',
      'v2',
      '--proxy-timeout',
      String(timeout),
      '--log-sessions',
    ]);
    const proxyPort = await startHaproxy(cleanup, port);
    // Straight to the server, from a trusted address, and then nothing.
    const silent = await connectFrom(cleanup, port, '127.0.0.1');
    const started = Date.now();
    const client = await talkFrom(cleanup, proxyPort, '127.0.0.2');
    const served = Date.now() - started;
    expect(client.lines).toEqual(transcript);
    expect(served).toBeLessThan((timeout * 1000) / 2);
    await server.waitFor(sessionLine('127.0.0.2', client.localPort), 5_000);

    const silentFor = await silent.closed;
    expect(silentFor).toBeGreaterThanOrEqual(timeout * 1000 - 250);
    expect(silentFor).toBeLessThan(timeout * 1000 + 3_000);
    expect(await silent.line()).toBeNull();
    expect(server.output()).not.toMatch(
      new RegExp(`^session from 127\\.0\\.0\\.1 port ${silent.localPort}$`, 'm'),
    );
    // The server still serves.
    const again = await talkFrom(cleanup, proxyPort, '127.0.0.2');
    expect(again.lines).toEqual(transcript);
    await until(
      'the second session line',
      () => sessionLine('127.0.0.2', again.localPort).test(server.output()),
      5_000,
    );
    expect(await server.stop('SIGTERM')).toBe(0);
  }, 30_000);
});
