/**
 * TLS, as LispWorks 8 has it (contract section 6), R22: a TLS server talks to @comm's own TLS client
 * and to Python's; the name asked for (SNI) reaches the server; an untrusted certificate, or one
 * that does not name the host, is refused. Handshakes are in tls-handshakes.ts, data in
 * tls-streams.ts, client certificates, STARTTLS and the option checks in tls-contexts.ts.
 */
import assert from 'node:assert/strict';
import type { Connection } from '@comm/core/backend';
import { defineCase, within } from '../suite.js';
import { certificates } from './certificates.js';
import {
  assertTlsCondition,
  assertTlsInfo,
  echo,
  hello,
  line,
  openTls,
  openTlsOk,
  PROTOCOL,
  peerArgs,
  pythonPeer,
  rejection,
  serverContext,
  tlsApi,
  tlsServer,
  trustingContext,
} from './helpers/tls.js';

defineCase(
  'R22.talk-over-tls',
  "a TLS server and @comm's own TLS client (trusting the test CA) exchange lines both ways; both ends' tls gives the handshake's info",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => echo(t, h));
    const s = await openTlsOk(t, port);
    const words = ['one', 'two', 'grüße ✓', 'x'.repeat(20_000)];
    for (const word of words) {
      await s.writeLine(word);
      s.forceOutput();
      assert.equal(await line(s), `echo ${word}`);
    }
    await s.writeLine('bye');
    s.forceOutput();
    assert.equal(await line(s), 'bye');
    assert.equal(await line(s), null, 'the end of input after bye');
    const served = (await result()) as { lines: string[]; tls: unknown };
    assert.deepEqual(served.lines, words);
    assertTlsInfo(served.tls, "the server's handle");
    assertTlsInfo((s.socket as Connection).tls, "the client's stream.socket");
  },
  20_000,
);

defineCase(
  'R22.independent-client',
  "Python's ssl module (OpenSSL, trusting the test CA) talks to the server; the replies are right",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => echo(t, h));
    const lines = ['one', 'two', 'ünïcödé', 'bye'];
    const peer = pythonPeer(
      t,
      'talk',
      peerArgs(
        t,
        port,
        lines.flatMap((l) => ['--line', l]),
      ),
    );
    const answer = await peer.result();
    assert.equal(answer.error, undefined, String(answer.error));
    assert.equal(answer.received, 'echo one\necho two\necho ünïcödé\nbye\n');
    assert.match(String(answer.version), PROTOCOL, `Python negotiated ${answer.version}`);
    const served = (await result()) as { lines: string[]; tls: unknown };
    assert.deepEqual(served.lines, ['one', 'two', 'ünïcödé']);
    assertTlsInfo(served.tls, "the server's handle");
  },
  20_000,
);

defineCase(
  'R22.sni-reaches-server',
  "the name the client asks for (SNI) is the server handle's tls.servername and the client's; none asked, none seen",
  async (t) => {
    const { port, result } = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const named = await openTlsOk(t, port, { tlsextHostName: 'localhost' });
    assert.equal(await line(named), 'hello');
    const seen = assertTlsInfo(await result(0), "the server's handle");
    assert.equal(seen.servername, 'localhost', 'the server should see the SNI name localhost');
    const asked = assertTlsInfo((named.socket as Connection).tls, "the client's stream.socket");
    assert.equal(asked.servername, 'localhost', 'the client should say it asked for localhost');
    // To 127.0.0.1 with no name: no SNI (an IP literal is never one, RFC 6066).
    const byAddress = await openTlsOk(t, port, { tlsextHostName: null });
    assert.equal(await line(byAddress), 'hello');
    const none = assertTlsInfo(await result(1), "the server's handle of a client that asked for no name");
    assert.equal(none.servername, null, 'a client that connected to 127.0.0.1 with no name sent an SNI name');
    // A host name as the hostspec is the name asked for.
    const byName = await within(
      t.api.openTcpStream('localhost', port, { sslCtx: trustingContext(t), errorp: true, ipv6: false }),
      15_000,
      'openTcpStream to localhost',
    );
    assert.ok(byName);
    t.defer(() => byName.close({ abort: true }));
    assert.equal(await line(byName), 'hello');
    const host = assertTlsInfo(await result(2), "the server's handle of a client to localhost");
    assert.equal(host.servername, 'localhost', 'openTcpStream to localhost should ask for localhost');
  },
  20_000,
);

defineCase(
  'R22.untrusted-certificate',
  'a server certificate the client does not trust is refused: null, or a condition with tls true; the server goes on serving',
  async (t) => {
    const { port, calls, result } = await tlsServer(t, serverContext(t, certificates().selfSigned), (h) =>
      hello(t, h),
    );
    const refused = await openTls(t, port, { errorp: false });
    assert.equal(
      refused,
      null,
      'a self-signed certificate was accepted by a client that trusts only the test CA',
    );
    const error = await rejection(openTls(t, port, { errorp: true }), 'connecting to a self-signed server');
    assertTlsCondition(t, error, 'errorp true');
    // The server is still serving: a client that does not verify is answered.
    const s = await openTlsOk(t, port, { sslCtx: tlsApi(t).createSslClientContext({ verify: false }) });
    assert.equal(await line(s), 'hello');
    await result(0);
    await t.sleep(200);
    assert.equal(calls(), 1, 'function was called for a client that refused the certificate');
  },
  20_000,
);

defineCase(
  'R22.host-name-verified',
  "the certificate must name the host asked for: other.test's is refused for localhost and for 127.0.0.1, accepted for other.test",
  async (t) => {
    const other = await tlsServer(t, serverContext(t, certificates().other), (h) => hello(t, h));
    const wrongName = await rejection(
      openTls(t, other.port, { tlsextHostName: 'localhost', errorp: true }),
      "connecting as localhost to other.test's certificate",
    );
    assertTlsCondition(t, wrongName, 'localhost against other.test');
    const byAddress = await rejection(
      openTls(t, other.port, { tlsextHostName: null, errorp: true }),
      "connecting to 127.0.0.1 (no name) with other.test's certificate",
    );
    assertTlsCondition(t, byAddress, '127.0.0.1 against other.test');
    const right = await openTlsOk(t, other.port, { tlsextHostName: 'other.test' });
    assert.equal(await line(right), 'hello');
    // Without verification, the name does not matter.
    const unverified = await openTlsOk(t, other.port, {
      tlsextHostName: 'localhost',
      sslCtx: tlsApi(t).createSslClientContext({ verify: false }),
    });
    assert.equal(await line(unverified), 'hello');
    await other.result(1);
    await t.sleep(200);
    assert.equal(other.calls(), 2, 'function was called for a client that refused the certificate');
    // The address is verified against the certificate's IP SAN: 127.0.0.1 is in localhost's.
    const local = await tlsServer(t, serverContext(t), (h) => hello(t, h));
    const ip = await openTlsOk(t, local.port, { tlsextHostName: null });
    assert.equal(await line(ip), 'hello');
  },
  20_000,
);
