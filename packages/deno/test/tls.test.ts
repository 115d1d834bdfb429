import assert from 'node:assert/strict';
import { socketOptions } from '@comm/conformance';
import type { Connection, ListenSpec, TlsServerSpec } from '@comm/core/backend';
import {
  attachSsl,
  backend,
  ConnectionError,
  createSslClientContext,
  createSslServerContext,
  openTcpStream,
  type SocketHandle,
  type SocketStream,
  serverTerminate,
  startUpServer,
} from '../dist/index.js';
import { seamTest as tlsTest } from './helpers.ts';

// R22 on Deno. These tests run with every permission: TLS servers are Deno's node:tls on sockets
// made with FFI, TLS clients its node:tls, STARTTLS clients Deno.startTls. Deno.listenTls (what a
// server gets without --allow-ffi) is tested in a child process without it. Certificates are made
// with openssl for each run.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const FIXTURES = new URL('./fixtures/', import.meta.url);
const ENTRY = new URL('../dist/index.js', import.meta.url).href;

const spec4: ListenSpec = {
  host: '127.0.0.1',
  port: 0,
  family: 4,
  ipv6Only: false,
  backlog: null,
  reusePort: false,
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const written = (write: Promise<void> | undefined): Promise<void> => write ?? Promise.resolve();

async function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, { args, stdin: 'null', stdout: 'piped', stderr: 'piped' }).spawn();
  const [stdout, stderr, status] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
  ]);
  return { code: status.code, stdout, stderr };
}

interface Pki {
  readonly dir: string;
  readonly path: (name: string) => string;
  readonly text: (name: string) => Promise<string>;
}

/**
 * A CA; a server certificate it signed for localhost, 127.0.0.1 and ::1 (also with its key
 * encrypted, passphrase "secret"); a client certificate it signed; and a client certificate
 * another CA signed. In a temp dir removed after the test.
 */
async function makePki(defer: (cleanup: () => unknown) => void): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: 'comm-deno-tls-' });
  defer(() => Deno.remove(dir, { recursive: true }));
  const path = (name: string) => `${dir}/${name}`;
  const openssl = async (...args: string[]) => {
    const result = await run('openssl', args);
    if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = async (name: string) =>
    openssl(
      'req',
      '-x509',
      ...ec,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      path(`${name}-key.pem`),
      '-out',
      path(`${name}.pem`),
    );
  const leaf = async (name: string, caName: string, ext: string) => {
    await openssl(
      'req',
      ...ec,
      '-subj',
      `/CN=${name}`,
      '-keyout',
      path(`${name}-key.pem`),
      '-out',
      path(`${name}.csr`),
    );
    await Deno.writeTextFile(path(`${name}.ext`), ext);
    await openssl(
      'x509',
      '-req',
      '-in',
      path(`${name}.csr`),
      '-CA',
      path(`${caName}.pem`),
      '-CAkey',
      path(`${caName}-key.pem`),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      path(`${name}.ext`),
      '-out',
      path(`${name}.pem`),
    );
  };
  await ca('ca');
  await ca('other-ca');
  await leaf(
    'server',
    'ca',
    'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';
  await leaf('client', 'ca', clientExt);
  await leaf('stranger', 'other-ca', clientExt);
  await openssl(
    'pkcs8',
    '-topk8',
    '-in',
    path('server-key.pem'),
    '-out',
    path('server-key-encrypted.pem'),
    '-passout',
    'pass:secret',
  );
  return { dir, path, text: (name) => Deno.readTextFile(path(name)) };
}

async function serverTls(pki: Pki, extra: Partial<TlsServerSpec> = {}): Promise<TlsServerSpec> {
  return {
    cert: await pki.text('server.pem'),
    key: await pki.text('server-key.pem'),
    requestCert: false,
    files: { cert: pki.path('server.pem'), key: pki.path('server-key.pem') },
    ...extra,
  };
}

/** Runs the Python TLS client to its end; its lines. */
async function python(pki: Pki, port: number, ...args: string[]): Promise<string[]> {
  const result = await run('python3', [
    new URL('tls-client.py', FIXTURES).pathname,
    String(port),
    pki.path('ca.pem'),
    ...args,
  ]);
  if (result.code !== 0) throw new Error(`tls-client.py failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim().split('\n');
}

async function readLine(connection: Connection): Promise<string> {
  let text = '';
  while (!text.includes('\n')) {
    const chunk = await connection.read();
    if (chunk === null) break;
    text += decoder.decode(chunk);
  }
  return text;
}

tlsTest(
  'a TLS server: Python talks TLS 1.3 to it; end() sends close_notify, then FIN; accept does not wait for hellos',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const listener = await backend.listen({ ...spec4, tls: await serverTls(pki) });
    defer(() => listener.close());
    // A client that never says hello: accept() gives it at once (TCP is connected) and takes the next.
    const silent = await Deno.connect({ hostname: '127.0.0.1', port: listener.local.port });
    defer(() => silent.close());
    const first = await listener.accept();
    assert.ok(first);
    defer(() => first.destroy());
    const client = python(pki, listener.local.port, '--servername', 'localhost', '--line', 'ping');
    const server = await listener.accept();
    assert.ok(server?.handshake, 'a TLS connection has handshake()');
    defer(() => server.destroy());
    assert.equal(server.tls ?? null, null, 'no TLS info before the handshake');
    await server.handshake();
    assert.deepEqual(server.tls, { servername: 'localhost', protocol: 'TLSv1.3' });
    assert.equal(await readLine(server), 'ping\n');
    await written(server.write(encoder.encode('pong\n')));
    await server.end();
    const lines = await client;
    assert.deepEqual(lines, ['VERSION TLSv1.3', 'GOT "pong\\n"', 'CLEAN', 'FIN'], lines.join('\n'));
    // The client's close_notify (and close) is the end of input; a read after it gives null.
    assert.equal(await server.read(), null);
    // The silent one still waits for its handshake; destroy() ends that.
    const pending = first.handshake?.();
    first.destroy();
    await assert.rejects(pending ?? Promise.reject(new Error('no handshake')));
  },
);

tlsTest(
  'startUpServer with sslCtx: a silent client holds up no one, and its handshake times out',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const served: string[] = [];
    const [server, condition] = await (startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      sslCtx: createSslServerContext({
        certFile: pki.path('server.pem'),
        keyFile: pki.path('server-key.pem'),
        handshakeTimeout: 1,
      }),
      function: async (handle: SocketHandle) => {
        served.push(handle.tls?.servername ?? 'null');
        await handle.write(encoder.encode('hello\n'));
        await handle.end();
      },
    } as never) as Promise<[{ socket: unknown } | null, Error | null]>);
    assert.ok(server, `the server did not start: ${condition?.message}`);
    defer(() => serverTerminate(server as never));
    const port = (server.socket as { local: { port: number } }).local.port;
    const started = performance.now();
    const silent = await Deno.connect({ hostname: '127.0.0.1', port });
    defer(() => silent.close());
    await sleep(50);
    const stream = (await openTcpStream('127.0.0.1', port, {
      sslCtx: createSslClientContext({ caFile: pki.path('ca.pem') }),
      tlsextHostName: 'localhost',
      errorp: true,
    })) as SocketStream;
    defer(() => stream.close({ abort: true }));
    assert.equal(await stream.readLine(), 'hello');
    assert.ok(performance.now() - started < 900, 'served before the silent client timed out');
    assert.deepEqual((stream.socket as SocketHandle).tls, { servername: 'localhost', protocol: 'TLSv1.3' });
    // The silent client is closed once its handshake timed out (1 s).
    const n = await silent.read(new Uint8Array(16)).catch(() => null);
    assert.equal(n, null);
    assert.ok(performance.now() - started >= 900, 'closed by the handshake timeout');
    assert.deepEqual(served, ['localhost'], 'only the client that finished its handshake was served');
  },
);

tlsTest(
  'openTcpStream verifies: untrusted CA and wrong name fail as TLS conditions; verify: false connects',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const listener = await backend.listen({ ...spec4, tls: await serverTls(pki) });
    defer(() => listener.close());
    const port = listener.local.port;
    // The server side: every connection's handshake, its outcome kept.
    const outcomes: string[] = [];
    const serving = (async () => {
      for (;;) {
        const connection = await listener.accept();
        if (!connection) return;
        connection.handshake?.().then(
          async () => {
            outcomes.push('ok');
            await written(connection.write(encoder.encode('hi\n')));
            await connection.end();
          },
          () => {
            outcomes.push('failed');
            connection.destroy();
          },
        );
      }
    })();
    // The loop ends once the listener is closed (the cleanup before this one).
    void serving;
    const attempt = (options: Record<string, unknown>, host = '127.0.0.1') =>
      openTcpStream(host, port, {
        errorp: true,
        handshakeTimeout: 5,
        ...options,
      } as never) as Promise<SocketStream>;

    const untrusted = await attempt({ sslCtx: createSslClientContext(), tlsextHostName: 'localhost' }).then(
      () => null,
      (error: unknown) => error,
    );
    assert.ok(untrusted instanceof ConnectionError, String(untrusted));
    assert.equal((untrusted as ConnectionError & { tls?: boolean }).tls, true);
    assert.equal((untrusted as ConnectionError).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');

    const wrongName = await attempt({
      sslCtx: createSslClientContext({ caFile: pki.path('ca.pem') }),
      tlsextHostName: 'wrong.example',
    }).then(
      () => null,
      (error: unknown) => error,
    );
    assert.ok(wrongName instanceof ConnectionError, String(wrongName));
    assert.equal((wrongName as ConnectionError).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.match((wrongName as Error).message, /wrong\.example/);

    // No name: the address connected to is verified (the certificate names 127.0.0.1).
    const byAddress = await attempt({ sslCtx: createSslClientContext({ caFile: pki.path('ca.pem') }) });
    assert.equal(await byAddress.readLine(), 'hi');
    assert.deepEqual((byAddress.socket as SocketHandle).tls, { servername: null, protocol: 'TLSv1.3' });
    await byAddress.close();

    // verify: false (Deno.startTls would always verify).
    const unverified = await attempt({
      sslCtx: createSslClientContext({ verify: false }),
      tlsextHostName: 'wrong.example',
    });
    assert.equal(await unverified.readLine(), 'hi');
    assert.deepEqual((unverified.socket as SocketHandle).tls, {
      servername: 'wrong.example',
      protocol: 'TLSv1.3',
    });
    await unverified.close();

    // Deno's node:tls client checks the certificate once TLS's own handshake is done, then closes:
    // the server may see a finished handshake and a connection that ends. Either way the listener
    // served the clients that came after.
    for (let i = 0; i < 100 && outcomes.length < 4; i++) await sleep(20);
    assert.equal(outcomes.filter((o) => o === 'ok').length >= 2, true, outcomes.join(' '));
  },
);

tlsTest(
  'STARTTLS as the client (Deno.startTls) against Python; as the server: ENOTSUP naming denoland/deno#18451',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const child = new Deno.Command('python3', {
      args: [
        new URL('starttls-server.py', FIXTURES).pathname,
        pki.path('server.pem'),
        pki.path('server-key.pem'),
      ],
      stdin: 'null',
      stdout: 'piped',
      stderr: 'piped',
    }).spawn();
    defer(async () => {
      try {
        child.kill('SIGKILL');
      } catch {
        // Exited already.
      }
      await child.status;
    });
    const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!/PORT \d+\n/.test(text)) {
      const { value, done } = await output.read();
      if (done) throw new Error(`starttls-server.py ended: ${text}`);
      text += value;
    }
    const port = Number(/PORT (\d+)/.exec(text)?.[1]);
    const stream = (await openTcpStream('127.0.0.1', port, { errorp: true } as never)) as SocketStream;
    defer(() => stream.close({ abort: true }));
    await stream.writeLine('STARTTLS');
    stream.forceOutput();
    assert.equal(await stream.readLine(), 'GO');
    await attachSsl(stream, {
      sslCtx: createSslClientContext({ caFile: pki.path('ca.pem') }),
      tlsextHostName: 'localhost',
    });
    assert.deepEqual((stream.socket as SocketHandle).tls, { servername: 'localhost', protocol: null });
    await stream.writeLine('hi');
    stream.forceOutput();
    assert.equal(await stream.readLine(), 'secure hi');
    await stream.close();
    while (!text.includes('DONE')) {
      const { value, done } = await output.read();
      if (done) break;
      text += value;
    }
    assert.match(text, /VERSION TLSv1\.3\nDONE/);

    // The server side: a connection from Deno.listen cannot become the TLS server.
    let settle: (value: unknown) => void = () => {};
    const outcome = {
      promise: new Promise<unknown>((resolve) => (settle = resolve)),
      resolve: (value: unknown) => settle(value),
    };
    const [server] = await (startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      createStream: true,
      function: async (plain: SocketStream) => {
        try {
          await attachSsl(plain, {
            sslCtx: createSslServerContext({
              certFile: pki.path('server.pem'),
              keyFile: pki.path('server-key.pem'),
            }),
          });
          outcome.resolve('upgraded');
        } catch (error) {
          outcome.resolve(error);
        }
      },
    } as never) as Promise<[{ socket: { local: { port: number } } } | null, Error | null]>);
    assert.ok(server);
    defer(() => serverTerminate(server as never));
    const client = await Deno.connect({ hostname: '127.0.0.1', port: server.socket.local.port });
    defer(() => client.close());
    const error = (await outcome.promise) as { code?: string; message?: string };
    assert.equal(error.code, 'ENOTSUP');
    assert.match(error.message ?? '', /denoland\/deno\/issues\/18451/);
  },
);

tlsTest(
  'backpressure over TLS: a write waits for a slow reader; no read pending, no reading',
  30_000,
  async (defer) => {
    const pki = await makePki(defer);
    const listener = await backend.listen({ ...spec4, tls: await serverTls(pki) });
    defer(() => listener.close());
    const ca = await pki.text('ca.pem');
    const connecting = Deno.connect({ hostname: '127.0.0.1', port: listener.local.port }).then((tcp) =>
      Deno.startTls(tcp, { hostname: 'localhost', caCerts: [ca] }),
    );
    const server = await listener.accept();
    assert.ok(server);
    defer(() => server.destroy());
    const client = await connecting;
    defer(() => client.close());
    await Promise.all([server.handshake?.(), client.handshake()]);

    const size = 16 * 1024 * 1024;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 16)) & 0xff;
    let done = false;
    const writing = written(server.write(data)).then(() => {
      done = true;
    });
    await sleep(300);
    assert.equal(done, false, 'the write waits while the peer reads nothing');
    const received = new Uint8Array(size);
    let at = 0;
    const buffer = new Uint8Array(256 * 1024);
    while (at < size) {
      const n = await client.read(buffer);
      if (n === null) break;
      received.set(buffer.subarray(0, n), at);
      at += n;
      if (at < size / 2) await sleep(1);
    }
    await writing;
    assert.equal(at, size, 'every byte arrived');
    assert.ok(
      received.every((byte, i) => byte === data[i]),
      'in order, none lost or repeated',
    );

    // With no read pending the server takes nothing: the client's writes stall at what the kernel buffers.
    let sent = 0;
    const chunk = new Uint8Array(64 * 1024);
    const flooding = (async () => {
      for (;;) sent += await client.write(chunk);
    })().catch(() => {});
    // The client stops once the kernel's buffers are full (no change for 300 ms), well before 32 MiB;
    // a server that read without a read pending would take hundreds of MiB a second.
    let stalled = -1;
    for (let quiet = 0; quiet < 3 && sent < 32 * 1024 * 1024; ) {
      await sleep(100);
      quiet = sent === stalled ? quiet + 1 : 0;
      stalled = sent;
    }
    assert.ok(stalled < 32 * 1024 * 1024, `${stalled} bytes taken without a read: the client is not held up`);
    // One read: the client moves again.
    assert.ok(await server.read());
    for (let i = 0; i < 50 && sent === stalled; i++) await sleep(20);
    assert.ok(sent > stalled, 'reading lets the client go on');
    server.destroy();
    await flooding;

    // The same from the client's side: a client (node:tls) with no read pending takes nothing either.
    const client2 = await backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      tls: { ca, verify: true, servername: 'localhost' },
    });
    defer(() => client2.destroy());
    const server2 = await listener.accept();
    assert.ok(server2);
    defer(() => server2.destroy());
    await Promise.all([server2.handshake?.(), client2.handshake?.()]);
    let done2 = false;
    const writing2 = written(server2.write(new Uint8Array(64 * 1024 * 1024))).then(
      () => {
        done2 = true;
      },
      () => {},
    );
    await sleep(500);
    assert.equal(done2, false, "a client that reads nothing holds the server's write up");
    server2.destroy();
    await writing2;
  },
);

tlsTest(
  'TCP_NODELAY and SO_KEEPALIVE reach the sockets of TLS connections, both sides',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const listener = await backend.listen({ ...spec4, tls: await serverTls(pki) });
    defer(() => listener.close());
    const client = await backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      tls: { ca: await pki.text('ca.pem'), verify: true, servername: 'localhost' },
    });
    defer(() => client.destroy());
    const server = await listener.accept();
    assert.ok(server);
    defer(() => server.destroy());
    // As core does: the client's right after connecting, the server's after the handshake.
    client.setNoDelay(true);
    client.setKeepAlive(true);
    await Promise.all([server.handshake?.(), client.handshake?.()]);
    server.setNoDelay(true);
    const ref = (c: Connection) => ({ pid: Deno.pid, localPort: c.local.port, remotePort: c.remote.port });
    const pick = (o: { nodelay: boolean; keepalive: boolean }) => ({
      nodelay: o.nodelay,
      keepalive: o.keepalive,
    });
    assert.deepEqual(pick(await socketOptions(ref(server))), { nodelay: true, keepalive: false });
    assert.deepEqual(pick(await socketOptions(ref(client))), { nodelay: true, keepalive: true });
    server.setKeepAlive(true);
    client.setNoDelay(false);
    assert.deepEqual(pick(await socketOptions(ref(server))), { nodelay: true, keepalive: true });
    assert.deepEqual(pick(await socketOptions(ref(client))), { nodelay: false, keepalive: true });
  },
);

tlsTest(
  "requestCert (node:tls on an FFI socket): a certificate the CA signed passes; none or another CA's fails",
  30_000,
  async (defer) => {
    const pki = await makePki(defer);
    const listener = await backend.listen({
      ...spec4,
      tls: await serverTls(pki, { requestCert: true, ca: await pki.text('ca.pem') }),
    });
    defer(() => listener.close());
    const port = listener.local.port;
    const results: Array<{ outcome: string; tls: unknown; line?: string }> = [];
    const serving = (async () => {
      for (;;) {
        const connection = await listener.accept();
        if (!connection) return;
        try {
          await connection.handshake?.();
          const line = await readLine(connection);
          results.push({ outcome: 'ok', tls: connection.tls, line });
          await written(connection.write(encoder.encode('welcome\n')));
          await connection.end();
        } catch (error) {
          results.push({ outcome: `failed ${(error as { code?: string }).code}`, tls: null });
          connection.destroy();
        }
      }
    })();
    // The loop ends once the listener is closed (the cleanup before this one).
    void serving;
    const trusted = await python(
      pki,
      port,
      '--servername',
      'localhost',
      '--cert',
      pki.path('client.pem'),
      '--key',
      pki.path('client-key.pem'),
    );
    assert.deepEqual(trusted, ['VERSION TLSv1.3', 'GOT "welcome\\n"', 'CLEAN', 'FIN'], trusted.join('\n'));
    const none = await python(pki, port, '--servername', 'localhost');
    assert.ok(!none.includes('GOT "welcome\\n"'), none.join('\n'));
    const stranger = await python(
      pki,
      port,
      '--servername',
      'localhost',
      '--cert',
      pki.path('stranger.pem'),
      '--key',
      pki.path('stranger-key.pem'),
    );
    assert.ok(!stranger.includes('GOT "welcome\\n"'), stranger.join('\n'));
    // A Deno client with a certificate (node:tls: Deno.startTls takes none).
    const deno = await backend.connect({
      host: '127.0.0.1',
      port,
      family: 4,
      tls: {
        ca: await pki.text('ca.pem'),
        verify: true,
        servername: 'localhost',
        cert: await pki.text('client.pem'),
        key: await pki.text('client-key.pem'),
      },
    });
    defer(() => deno.destroy());
    await deno.handshake?.();
    await written(deno.write(encoder.encode('from deno\n')));
    assert.equal(await readLine(deno), 'welcome\n');
    for (let i = 0; i < 100 && results.length < 4; i++) await sleep(20);
    assert.deepEqual(results[0], {
      outcome: 'ok',
      tls: { servername: 'localhost', protocol: 'TLSv1.3' },
      line: 'ping\n',
    });
    assert.match(results[1]?.outcome ?? '', /^failed /);
    assert.match(results[2]?.outcome ?? '', /^failed /);
    assert.deepEqual(results[3], {
      outcome: 'ok',
      tls: { servername: 'localhost', protocol: 'TLSv1.3' },
      line: 'from deno\n',
    });
  },
);

tlsTest(
  'TLS on an IPv6-only socket on :: (FFI), and an encrypted key with its passphrase',
  20_000,
  async (defer) => {
    const pki = await makePki(defer);
    const tls = await serverTls(pki, {
      key: await pki.text('server-key-encrypted.pem'),
      passphrase: 'secret',
    });
    await assert.rejects(backend.listen({ ...spec4, tls: { ...tls, passphrase: 'wrong' } }), /decrypt/);
    const listener = await backend.listen({ ...spec4, host: '::', family: 6, ipv6Only: true, tls });
    defer(() => listener.close());
    const port = listener.local.port;
    await assert.rejects(Deno.connect({ hostname: '127.0.0.1', port }), { code: 'ECONNREFUSED' });
    const client = python(pki, port, '--host', '::1', '--servername', 'localhost', '--line', 'six');
    const server = await listener.accept();
    assert.ok(server);
    defer(() => server.destroy());
    await server.handshake?.();
    assert.deepEqual(server.tls, { servername: 'localhost', protocol: 'TLSv1.3' });
    assert.equal(await readLine(server), 'six\n');
    await written(server.write(encoder.encode('ok\n')));
    await server.end();
    assert.deepEqual(await client, ['VERSION TLSv1.3', 'GOT "ok\\n"', 'CLEAN', 'FIN']);
  },
);

tlsTest(
  'without the ffi permission, requestCert fails to listen (ENOTSUP); the deviations are declared',
  30_000,
  async (defer) => {
    const pki = await makePki(defer);
    const tls = await serverTls(pki);
    const specs = [
      { ...spec4, tls: { ...tls, requestCert: true, ca: await pki.text('ca.pem') } },
      { ...spec4, tls },
    ];
    const result = await run(Deno.execPath(), [
      'run',
      '--no-prompt',
      '--allow-net',
      '--allow-read',
      '--allow-env',
      '--allow-sys',
      new URL('listen.mjs', FIXTURES).pathname,
      ENTRY,
      JSON.stringify(specs),
    ]);
    const lines = result.stdout.trim().split('\n');
    assert.equal(result.code, 0, result.stderr);
    assert.ok(lines.includes('DONE'), lines.join('\n'));
    const deviations =
      lines
        .find((line) => line.startsWith('DEVIATIONS'))
        ?.split(' ')
        .slice(1) ?? [];
    assert.deepEqual(deviations, [
      'R7.ipv6-true-no-address',
      'R8.true-ipv6-only',
      'R15.port-free-at-once',
      'R22.client-certificate',
      'R22.sni-reaches-server',
      'R22.server-handshake-timeout',
      'R22.starttls-server',
    ]);
    const [requestCert, plain] = lines.filter((line) => /^(LISTENING|FAILED)/.test(line));
    assert.match(
      requestCert ?? '',
      /^FAILED ENOTSUP Deno\.listenTls cannot ask clients for a certificate .*--allow-ffi/,
    );
    assert.match(plain ?? '', /^LISTENING 127\.0\.0\.1 \d+$/);
  },
);

tlsTest(
  'without the ffi permission, Deno.listenTls: Python talks TLS with close_notify; a silent client holds up no one',
  30_000,
  async (defer) => {
    const pki = await makePki(defer);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        'run',
        '--no-prompt',
        '--allow-net',
        '--allow-read',
        '--allow-env',
        '--allow-sys',
        new URL('tls-server.mjs', FIXTURES).pathname,
        ENTRY,
        pki.path('server.pem'),
        pki.path('server-key.pem'),
        '1',
      ],
      stdin: 'null',
      stdout: 'piped',
      stderr: 'piped',
    }).spawn();
    defer(async () => {
      try {
        child.kill('SIGKILL');
      } catch {
        // Exited already.
      }
      await child.status;
    });
    const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await output.read();
        if (done) throw new Error(`tls-server.mjs ended:\n${text}`);
        text += value;
      }
    };
    await until(/PORT \d+\n/);
    assert.match(text, /^DEVIATIONS .*R22\.sni-reaches-server/m);
    const port = Number(/PORT (\d+)/.exec(text)?.[1]);
    const started = performance.now();
    const silent = await Deno.connect({ hostname: '127.0.0.1', port });
    defer(() => silent.close());
    await sleep(50);
    const lines = await python(pki, port, '--servername', 'localhost', '--line', 'native');
    assert.deepEqual(lines, ['VERSION TLSv1.3', 'GOT "pong native\\n"', 'CLEAN', 'FIN'], lines.join('\n'));
    assert.ok(performance.now() - started < 900, 'served before the silent client timed out');
    await until(/SERVED /);
    // Deno.listenTls tells neither the name the client asked for nor the version.
    assert.match(text, /^SERVED null null native$/m);
    // The silent client's handshake times out after 1 s and core closes the TlsConn, but Deno keeps
    // its socket open until the client sends or closes (the declared R22.server-handshake-timeout).
    const read = silent.read(new Uint8Array(16)).catch(() => null);
    const outcome = await Promise.race([read.then(() => 'closed'), sleep(2500).then(() => 'open')]);
    assert.equal(
      outcome,
      'open',
      'Deno closes a silent client now: drop the R22.server-handshake-timeout deviation',
    );
  },
);
