import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
// Certificates made now with the system's openssl: a private CA and a localhost certificate.
import { type Certificates, makeCertificates } from '../dist/certs.js';
import { Cleanup, monologue, startTalkServer, transcript } from './helpers.js';

// R22 end to end: the talk server with --tls-cert/--tls-key, the talk client with --tls, real
// processes on free ports; the client verifies the server's certificate (a private CA given with
// --ca, else the system's roots, which do not have it).

const cleanup = new Cleanup();
afterEach(() => cleanup.run());
const certs: Certificates = makeCertificates('comm-talk-test-tls-');
afterAll(() => certs.remove());

const serverTls = () => ['--tls-cert', certs.cert, '--tls-key', certs.key];

/** The talk client as a user runs it; resolves once it has exited. */
async function client(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const child = cleanup.script('client.js', args);
  const code = await child.exited;
  const lines = (text: string) => text.split('\n').filter((line) => line !== '');
  return { code, out: lines(child.output()), err: lines(child.errors()) };
}

/** A node:tls connection, independent of @comm, verifying the certificate for localhost against the CA. */
async function independentClient(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: readFileSync(certs.ca),
  });
  cleanup.socket(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.setEncoding('utf8');
  return socket;
}

/** Reads from `socket` until `got()` has what is wanted. */
async function until(socket: tls.TLSSocket, done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => socket.once('data', resolve));
}

/**
 * The server's side of TLS, seen by a client that is not @comm's: the talk exchange (uws: the
 * comm-stream upgrade, answered with 101) and the protocol it was said in.
 */
async function independentTalk(
  port: number,
  backend: string,
): Promise<{ protocol: string | null; replies: string[] }> {
  const socket = await independentClient(port);
  let got = '';
  socket.on('data', (text: string) => {
    got += text;
  });
  const replies: string[] = [];
  if (backend === 'uws') {
    socket.write(
      'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Protocol: comm-stream\r\n\r\n',
    );
    await until(socket, () => got.includes('\r\n\r\n'));
    replies.push(got.slice(0, got.indexOf('\r\n')));
  } else
    for (const line of monologue) {
      socket.write(`${line}\n`);
      await until(socket, () => got.includes('\n'));
      const end = got.indexOf('\n');
      replies.push(got.slice(0, end));
      got = got.slice(end + 1);
    }
  const protocol = socket.getProtocol();
  socket.destroy();
  return { protocol, replies };
}

/**
 * A talk server on node:tls, independent of @comm: what a backend's client is checked against.
 * `names` gets the SNI name of every connection whose handshake finished.
 */
async function independentServer(names: (string | false | null)[] = []): Promise<number> {
  const server = tls.createServer(
    { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
    (socket) => {
      names.push(socket.servername);
      let pending = '';
      socket.setEncoding('utf8');
      socket.on('error', () => {});
      socket.on('data', (text: string) => {
        pending += text;
        for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
          socket.write(`You sent: '${pending.slice(0, end)}'\n`);
          pending = pending.slice(end + 1);
        }
      });
      socket.on('end', () => socket.end());
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return (server.address() as net.AddressInfo).port;
}
const servers: tls.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** The backends whose talk server and client talk TLS end to end here. */
const backends = ['node', 'bun', 'deno', 'uws'];

describe('the talk apps over TLS', () => {
  for (const backend of backends)
    it(`--backend ${backend}: server --tls-cert/--tls-key, client --tls --ca: the seed's transcript; SIGTERM exits 0`, async () => {
      const { server, port } = await startTalkServer(cleanup, ['--backend', backend, ...serverTls()]);
      expect(server.output()).toMatch(
        new RegExp(`^talk server: backend ${backend}, runtime \\S+ \\S+, TLS with ${certs.cert}$`, 'm'),
      );
      // --host localhost: the name sent as SNI and verified against the certificate.
      const talk = await client([
        '--backend',
        backend,
        '--service',
        String(port),
        '--host',
        'localhost',
        '--tls',
        '--ca',
        certs.ca,
      ]);
      expect(talk.err).toEqual([]);
      expect(talk.code).toBe(0);
      expect(talk.out).toEqual(transcript);
      // The server talks TLS to a client that is not @comm's...
      const independent = await independentTalk(port, backend);
      expect(independent.replies).toEqual(
        backend === 'uws'
          ? ['HTTP/1.1 101 Switching Protocols']
          : monologue.map((line) => `You sent: '${line}'`),
      );
      expect(independent.protocol).toMatch(/^TLSv1\.[23]$/);
      expect(await server.stop('SIGTERM')).toBe(0);
      // ... and the client to a server that is not @comm's, sending localhost as SNI and
      // verifying the certificate (uws's client speaks comm-stream, which that server does not:
      // its handshake and the name it sent are what is checked).
      const names: (string | false | null)[] = [];
      const other = await independentServer(names);
      const verified = await client([
        '--backend',
        backend,
        '--service',
        String(other),
        '--tls',
        '--ca',
        certs.ca,
      ]);
      if (backend !== 'uws') expect(verified).toEqual({ code: 0, out: transcript, err: [] });
      expect(names).toEqual(['localhost']);
      const unverified = await client(['--backend', backend, '--service', String(other), '--tls']);
      expect(unverified.code).toBe(1);
      expect(unverified.err).toHaveLength(1);
      expect(unverified.err[0]).toMatch(/^talk client: TLS with \S+ port \d+ \(localhost\) failed: /);
      expect(names).toEqual(['localhost']);
    }, 40_000);

  it('a client without --ca (the system roots do not have the private CA) exits 1 with one line naming the host and why', async () => {
    const { port } = await startTalkServer(cleanup, serverTls());
    const talk = await client(['--service', String(port), '--host', 'localhost', '--tls']);
    expect(talk.code).toBe(1);
    expect(talk.out).toEqual([]);
    expect(talk.err).toHaveLength(1);
    expect(talk.err[0]).toMatch(/^talk client: TLS with 127\.0\.0\.1 port \d+ \(localhost\) failed: .+/);
    // The runtime's reason: a certificate it cannot trust.
    expect(talk.err[0]).toMatch(/certificate|issuer/i);
  }, 30_000);

  it('a host the certificate is not for (127.0.0.2) exits 1 with one line naming it, even with --ca', async () => {
    const server = cleanup.script('server.js', ['--service', '0', ...serverTls()]);
    const [, port] = await server.waitFor(/ port (\d+)\n/);
    const talk = await client([
      '--service',
      port as string,
      '--host',
      '127.0.0.2',
      '--tls',
      '--ca',
      certs.ca,
    ]);
    expect(talk.code).toBe(1);
    expect(talk.err).toHaveLength(1);
    expect(talk.err[0]).toMatch(/^talk client: TLS with 127\.0\.0\.2 port \d+ failed: .*127\.0\.0\.2/);
  }, 30_000);

  it('a client that talks plain TCP to the TLS server costs only its own connection', async () => {
    const { server, port } = await startTalkServer(cleanup, serverTls());
    const plain = cleanup.socket(net.connect(port, '127.0.0.1'));
    await new Promise((resolve) => plain.once('connect', resolve));
    plain.write('Hello self.\n');
    await new Promise((resolve) => plain.once('close', resolve));
    const talk = await client(['--service', String(port), '--tls', '--ca', certs.ca]);
    expect(talk.code).toBe(0);
    expect(talk.out).toEqual(transcript);
    expect(await server.stop('SIGTERM')).toBe(0);
  }, 30_000);

  it('--workers passes --tls-cert and --tls-key on: every worker serves TLS', async () => {
    const parent = cleanup.script('server.js', [
      '--backend',
      'bun',
      '--workers',
      '2',
      '--service',
      '0',
      '--address',
      '127.0.0.1',
      ...serverTls(),
    ]);
    const [, port] = await parent.waitFor(
      /^talk server: 2 workers listening on 127\.0\.0\.1 port (\d+)/m,
      20_000,
    );
    expect(parent.output().match(/^talk server: backend bun, runtime bun \S+, TLS with /gm)).toHaveLength(2);
    const talks = await Promise.all(
      Array.from({ length: 4 }, () =>
        client(['--backend', 'bun', '--service', port as string, '--tls', '--ca', certs.ca]),
      ),
    );
    for (const talk of talks) expect(talk).toEqual({ code: 0, out: transcript, err: [] });
    process.kill(parent.process.pid as number, 'SIGTERM');
    expect(await parent.exited).toBe(0);
  }, 60_000);

  it('flags that do not fit are refused before anything starts: exit 2, one message naming the flag or the file', async () => {
    const cases: [string, string[], string][] = [
      ['server.js', ['--tls-cert', certs.cert], '--tls-cert needs --tls-key'],
      ['server.js', ['--tls-key', certs.key], '--tls-key needs --tls-cert'],
      [
        'server.js',
        ['--tls-cert', `${certs.dir}/missing.pem`, '--tls-key', certs.key],
        `talk server: createSslServerContext: cannot read certFile "${certs.dir}/missing.pem": ENOENT`,
      ],
      [
        'server.js',
        ['--tls-cert', certs.cert, '--tls-key', `${certs.dir}/missing-key.pem`],
        `talk server: createSslServerContext: cannot read keyFile "${certs.dir}/missing-key.pem": ENOENT`,
      ],
      [
        'server.js',
        ['--backend', 'deno', '--tls-cert', certs.key, '--tls-key', certs.key],
        `talk server: createSslServerContext: certFile "${certs.key}" holds no PEM certificate`,
      ],
      ['client.js', ['--ca', certs.ca], '--ca needs --tls'],
      [
        'client.js',
        ['--tls', '--ca', `${certs.dir}/missing-ca.pem`],
        `talk client: createSslClientContext: cannot read caFile "${certs.dir}/missing-ca.pem": ENOENT`,
      ],
    ];
    await Promise.all(
      cases.map(async ([script, args, message]) => {
        const child = cleanup.script(script, [...args, '--service', '0']);
        expect(await child.exited, message).toBe(2);
        expect(child.errors().split('\n')[0]).toBe(message);
        expect(child.output()).toBe('');
      }),
    );
  }, 30_000);

  it('--tls-cert with --proxy-protocol: the core refuses it, one line on stderr, exit 1', async () => {
    const server = cleanup.script('server.js', [
      '--service',
      '0',
      '--address',
      '127.0.0.1',
      '--proxy-protocol',
      'v1',
      ...serverTls(),
    ]);
    expect(await server.exited).toBe(1);
    const errors = server.errors().trim().split('\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^talk server: proxyProtocol together with sslCtx is not supported/);
    expect(server.output()).not.toMatch(/listening/);
  }, 30_000);
});
