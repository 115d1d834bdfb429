/**
 * Scale-out (contract section 6): R20 `reuseport` (several servers on one port, the kernel spreads
 * connections, never silently ignored) and R21 the PROXY protocol (v1 and v2 headers from trusted
 * sources, read outside the sequential accept loop).
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import {
  type AnyServerOptions,
  type Connection,
  ipAddressString,
  type ServerProcess,
  StartupCondition,
} from '@comm/core/backend';
import { listeningSockets } from '../kernel.js';
import type { CaseContext } from '../suite.js';
import { defineCase, deviationFor, within } from '../suite.js';
import { gate, startWaiting } from './helpers.js';

// ---- R20: reuseport: several servers on one port, the kernel spreads connections ----

function portOf(t: CaseContext, server: ServerProcess): number {
  return t.api.getSocketAddress(server.socket)[1] as number;
}

/** True where the backend declares that its runtime has no SO_REUSEPORT. */
function reuseportMissing(t: CaseContext): boolean {
  return deviationFor(t.api.backend, { id: 'R20.spreads-connections', rule: 'R20' } as never) !== undefined;
}

defineCase(
  'R20.spreads-connections',
  'two servers with reuseport listen on one port (the kernel shows both) and both receive connections',
  async (t) => {
    const served = [0, 0];
    const counting = (i: number) => (handle: Connection) => {
      served[i] = (served[i] as number) + 1;
      handle.destroy();
    };
    const [first, why] = await startWaiting(t, {
      address: '127.0.0.1',
      service: 0,
      reuseport: true,
      function: counting(0),
    });
    assert.ok(first, `the first server did not start: ${why?.message}`);
    const port = portOf(t, first);
    const [second, why2] = await startWaiting(t, {
      address: '127.0.0.1',
      service: port,
      reuseport: true,
      function: counting(1),
    });
    assert.ok(second, `the second server did not start on port ${port}: ${why2?.message}`);
    assert.equal(await listeningSockets(port), 2, `the kernel should show two sockets listening on ${port}`);
    // The kernel picks a socket by a hash of the client's address and port: 64 clients all landing
    // on one of two sockets has a chance of 2^-63.
    for (let i = 0; i < 64; i++) {
      const client = await t.connect(port);
      await within(client.closedByPeer(), 5000, `connection ${i} to be served`);
      client.destroy();
    }
    await t.waitFor(() => (served[0] as number) + (served[1] as number) === 64, 'all 64 connections served');
    assert.ok(
      (served[0] as number) > 0 && (served[1] as number) > 0,
      `served per server: ${served.join(', ')}`,
    );
  },
  30_000,
);

defineCase(
  'R20.exclusive-without-reuseport',
  'without reuseport on both servers, the second bind of a port fails (EADDRINUSE)',
  async (t) => {
    const [first, why] = await startWaiting(t, {
      address: '127.0.0.1',
      service: 0,
      function: (h: Connection) => h.destroy(),
    });
    assert.ok(first, `the first server did not start: ${why?.message}`);
    const port = portOf(t, first);
    const [plain, plainWhy] = await startWaiting(t, {
      address: '127.0.0.1',
      service: port,
      function: (h: Connection) => h.destroy(),
    });
    assert.equal(plain, null, 'a second plain server started on a port in use');
    assert.equal((plainWhy as StartupCondition).code, 'EADDRINUSE');
    // SO_REUSEPORT shares a port only among sockets that all set it.
    const [shared, sharedWhy] = await startWaiting(t, {
      address: '127.0.0.1',
      service: port,
      reuseport: true,
      function: (h: Connection) => h.destroy(),
    });
    assert.equal(shared, null, 'a reuseport server started on a port a plain server holds');
    assert.equal((sharedWhy as StartupCondition).code, reuseportMissing(t) ? 'ENOTSUP' : 'EADDRINUSE');
  },
);

defineCase(
  'R20.unsupported-is-a-condition',
  'reuseport where the runtime cannot is a startup condition naming the runtime version, never ignored',
  async (t) => {
    const [first, why] = await startWaiting(t, {
      address: '127.0.0.1',
      service: 0,
      reuseport: true,
      function: (h: Connection) => h.destroy(),
    });
    if (reuseportMissing(t)) {
      assert.equal(first, null, 'the backend declares no SO_REUSEPORT, yet a reuseport server started');
      assert.ok(why instanceof StartupCondition, `expected a StartupCondition, got ${why}`);
      assert.equal(why.code, 'ENOTSUP');
      assert.match(why.message, /reuseport/);
      assert.match(why.message, /\d+\.\d+\.\d+/, 'the condition should name the runtime version');
      return;
    }
    assert.ok(first, `a reuseport server did not start: ${why?.message}`);
    const port = portOf(t, first);
    const [second, why2] = await startWaiting(t, {
      address: '127.0.0.1',
      service: port,
      reuseport: true,
      function: (h: Connection) => h.destroy(),
    });
    assert.ok(
      second,
      `SO_REUSEPORT was not set: a second reuseport server could not bind ${port}: ${why2?.message}`,
    );
  },
);

// ---- R21: the PROXY protocol ----

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function v1(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const family = net.isIPv6(source) ? 'TCP6' : 'TCP4';
  return Buffer.from(`PROXY ${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`);
}

function ipBytes(address: string): number[] {
  if (net.isIPv4(address)) return address.split('.').map(Number);
  const blocks = new net.SocketAddress({ address, family: 'ipv6' }).address;
  const [head = '', tail = ''] = blocks.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return all.flatMap((b) => [parseInt(b, 16) >> 8, parseInt(b, 16) & 0xff]);
}

/** A v2 header; `local` is the LOCAL command (a health check), `tlvs` extra bytes after the addresses. */
function v2(
  source: string,
  destination: string,
  sourcePort: number,
  destinationPort: number,
  options: { local?: boolean; tlvs?: number[] } = {},
): Buffer {
  const six = net.isIPv6(source);
  const body = [
    ...ipBytes(source),
    ...ipBytes(destination),
    sourcePort >> 8,
    sourcePort & 0xff,
    destinationPort >> 8,
    destinationPort & 0xff,
    ...(options.tlvs ?? []),
  ];
  return Buffer.from([
    ...V2_SIGNATURE,
    options.local ? 0x20 : 0x21,
    six ? 0x21 : 0x11,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}

/** A TCP client that sends `bytes` (in pieces if asked) and records what comes back and when it is cut off. */
async function proxyClient(
  t: CaseContext,
  port: number,
  bytes: Buffer | readonly Buffer[],
  options: { localAddress?: string; pieceDelayMs?: number } = {},
): Promise<{ socket: net.Socket; localPort: number; closed: Promise<void>; received: () => string }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: options.localAddress });
  t.defer(() => socket.destroy());
  let received = '';
  socket.setEncoding('utf8').on('data', (text: string) => {
    received += text;
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => resolve());
    socket.on('end', () => resolve());
    socket.on('error', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // Read now: a closed socket no longer knows its port.
  const localPort = socket.localPort as number;
  const pieces = Array.isArray(bytes) ? bytes : [bytes as Buffer];
  for (const piece of pieces) {
    socket.write(piece);
    if (options.pieceDelayMs) await t.sleep(options.pieceDelayMs);
  }
  return { socket, localPort, closed, received: () => received };
}

interface Seen {
  peer: string;
  peerPort: number;
  local: string;
  localPort: number;
  line: string | null;
}

/** A PROXY protocol server whose `function` records each connection's addresses and first line, then answers it. */
async function proxyServer(t: CaseContext, options: AnyServerOptions = {}) {
  const seen: Seen[] = [];
  const { port } = await t.startServer({
    proxyProtocol: true,
    ...options,
    function: async (handle: Connection) => {
      const [peer, peerPort] = t.api.getSocketPeerAddress(handle);
      const [local, localPort] = t.api.getSocketAddress(handle);
      const stream = new t.api.SocketStream({ socket: handle, direction: 'io', readTimeout: 5 });
      const line = await stream.readLine();
      seen.push({
        peer: peer === null ? 'none' : ipAddressString(peer),
        peerPort: peerPort ?? -1,
        local: local === null ? 'none' : ipAddressString(local),
        localPort: localPort ?? -1,
        line: line as string | null,
      });
      await stream.writeLine(`seen ${line}`);
      await stream.close();
    },
  } as AnyServerOptions);
  return { port, seen };
}

defineCase(
  'R21.start-or-refuse',
  'proxyProtocol starts a server that reads the header, or, where the backend cannot see one, is a condition that says why',
  async (t) => {
    const reason = t.api.backend.proxyProtocolUnsupported;
    if (reason !== undefined) {
      const [server, why] = await startWaiting(t, {
        address: '127.0.0.1',
        service: 0,
        proxyProtocol: true,
        function: (h: Connection) => h.destroy(),
      });
      assert.equal(server, null, 'a server that cannot read PROXY headers started anyway');
      assert.ok(why instanceof StartupCondition);
      assert.equal(why.code, 'ENOTSUP');
      assert.ok(why.message.includes(reason), why.message);
      return;
    }
    const { port, seen } = await proxyServer(t);
    const client = await proxyClient(
      t,
      port,
      Buffer.concat([v1('192.0.2.7', '198.51.100.9', 40123, 7000), Buffer.from('hello\n')]),
    );
    await within(client.closed, 5000, 'the reply and the end of the connection');
    assert.equal(client.received(), 'seen hello\n');
    assert.equal(seen[0]?.peer, '192.0.2.7');
  },
);

defineCase(
  'R21.v1-addresses',
  "a v1 header names the peer and local addresses; the bytes after it in the same packet are the client's",
  async (t) => {
    const { port, seen } = await proxyServer(t, { proxyProtocol: 'v1' });
    const client = await proxyClient(
      t,
      port,
      Buffer.concat([v1('192.0.2.7', '198.51.100.9', 40123, 7000), Buffer.from('hello\n')]),
    );
    await within(client.closed, 5000, 'the end of the connection');
    assert.deepEqual(seen, [
      { peer: '192.0.2.7', peerPort: 40123, local: '198.51.100.9', localPort: 7000, line: 'hello' },
    ]);
    assert.equal(client.received(), 'seen hello\n');
  },
);

defineCase(
  'R21.v2-addresses',
  'a v2 header (TCP over IPv6, with TLVs) names the addresses; its TLVs are skipped',
  async (t) => {
    const { port, seen } = await proxyServer(t, { proxyProtocol: 'v2' });
    // Two TLVs: PP2_TYPE_AUTHORITY "example.org" and a NOOP of 3 bytes.
    const authority = [...Buffer.from('example.org')];
    const tlvs = [0x02, 0, authority.length, ...authority, 0x04, 0, 3, 0, 0, 0];
    const header = v2('2001:db8::7', '2001:db8::1', 40123, 443, { tlvs });
    const client = await proxyClient(t, port, Buffer.concat([header, Buffer.from('over v2\n')]));
    await within(client.closed, 5000, 'the end of the connection');
    assert.deepEqual(seen, [
      { peer: '2001:db8::7', peerPort: 40123, local: '2001:db8::1', localPort: 443, line: 'over v2' },
    ]);
  },
);

defineCase(
  'R21.local-and-unknown-are-real',
  'a LOCAL (v2) or UNKNOWN (v1) header leaves the real addresses',
  async (t) => {
    const { port, seen } = await proxyServer(t);
    const local = await proxyClient(
      t,
      port,
      Buffer.concat([v2('10.0.0.1', '10.0.0.2', 1, 2, { local: true }), Buffer.from('local\n')]),
    );
    await within(local.closed, 5000, 'the end of the LOCAL connection');
    const unknown = await proxyClient(
      t,
      port,
      Buffer.from('PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 1 2\r\nunknown\n'),
    );
    await within(unknown.closed, 5000, 'the end of the UNKNOWN connection');
    assert.deepEqual(
      seen.map((s) => [s.peer, s.peerPort, s.line]),
      [
        ['127.0.0.1', local.localPort, 'local'],
        ['127.0.0.1', unknown.localPort, 'unknown'],
      ],
    );
    assert.equal(seen[0]?.localPort, port);
  },
);

defineCase(
  'R21.untrusted-closed',
  'a header from a source outside trustedProxies is refused: the connection closes and never reaches function',
  async (t) => {
    const { port, seen } = await proxyServer(t, { trustedProxies: ['127.0.0.2/32'] });
    const forged = await proxyClient(
      t,
      port,
      Buffer.concat([v1('6.6.6.6', '127.0.0.1', 666, port), Buffer.from('forged\n')]),
    );
    await within(forged.closed, 5000, 'the untrusted connection to be closed');
    const trusted = await proxyClient(
      t,
      port,
      Buffer.concat([v1('192.0.2.7', '127.0.0.1', 40123, port), Buffer.from('trusted\n')]),
      { localAddress: '127.0.0.2' },
    );
    await within(trusted.closed, 5000, 'the trusted connection to end');
    assert.deepEqual(
      seen.map((s) => s.line),
      ['trusted'],
    );
    assert.equal(forged.received(), '');
  },
);

defineCase(
  'R21.malformed-closed',
  'a connection without a valid header, or with the other version, is closed; the server keeps serving',
  async (t) => {
    const { port, seen } = await proxyServer(t, { proxyProtocol: 'v1' });
    const http = await proxyClient(t, port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const other = await proxyClient(
      t,
      port,
      Buffer.concat([v2('192.0.2.7', '192.0.2.8', 1, 2), Buffer.from('v2\n')]),
    );
    const bad = await proxyClient(t, port, Buffer.from('PROXY TCP4 192.0.2.300 192.0.2.8 1 2\r\nbad\n'));
    const long = await proxyClient(t, port, Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`));
    for (const [name, client] of Object.entries({ http, other, bad, long }))
      await within(client.closed, 5000, `the ${name} connection to be closed`);
    const good = await proxyClient(
      t,
      port,
      Buffer.concat([v1('192.0.2.7', '192.0.2.8', 1, 2), Buffer.from('good\n')]),
    );
    await within(good.closed, 5000, 'the good connection to end');
    assert.deepEqual(
      seen.map((s) => s.line),
      ['good'],
    );
  },
);

defineCase(
  'R21.header-timeout',
  'a connection that sends no header within proxyHeaderTimeout is closed and never reaches function',
  async (t) => {
    const { port, seen } = await proxyServer(t, { proxyHeaderTimeout: 0.3 });
    const started = Date.now();
    const silent = await proxyClient(t, port, Buffer.alloc(0));
    const partial = await proxyClient(t, port, Buffer.from('PROXY TCP4 192.0.2.7'));
    await within(silent.closed, 5000, 'the silent connection to be closed');
    await within(partial.closed, 5000, 'the half-header connection to be closed');
    assert.ok(Date.now() - started >= 250, `closed after ${Date.now() - started} ms, before the timeout`);
    assert.equal(seen.length, 0);
  },
);

defineCase(
  'R21.silent-holds-up-nobody',
  'headers are read outside the accept loop: a client that sends nothing does not delay the next',
  async (t) => {
    const { port, seen } = await proxyServer(t, { proxyHeaderTimeout: 30 });
    const silent = await proxyClient(t, port, Buffer.alloc(0));
    const half = await proxyClient(t, port, Buffer.from('\r\n\r\n\0'));
    const started = Date.now();
    const good = await proxyClient(
      t,
      port,
      Buffer.concat([v1('192.0.2.7', '192.0.2.8', 1, 2), Buffer.from('first\n')]),
    );
    await within(good.closed, 5000, 'the client behind two silent ones to be served');
    assert.ok(Date.now() - started < 4000);
    assert.deepEqual(
      seen.map((s) => s.line),
      ['first'],
    );
    assert.equal(
      silent.socket.destroyed || half.socket.destroyed,
      false,
      'the silent clients are still waiting',
    );
  },
);

defineCase('R21.split-header', 'a header that arrives a byte at a time is read whole', async (t) => {
  const { port, seen } = await proxyServer(t);
  const header = v2('192.0.2.7', '192.0.2.8', 40123, 7000, { tlvs: [0x04, 0, 2, 0, 0] });
  const pieces = [...header].map((b) => Buffer.from([b]));
  const client = await proxyClient(t, port, [...pieces, Buffer.from('split\n')], { pieceDelayMs: 2 });
  await within(client.closed, 5000, 'the end of the connection');
  assert.deepEqual(
    seen.map((s) => [s.peer, s.peerPort, s.line]),
    [['192.0.2.7', 40123, 'split']],
  );
});

defineCase(
  'R21.calls-stay-sequential',
  'with the PROXY protocol, function is still called one connection at a time (R2)',
  async (t) => {
    const hold = gate(t);
    const calls: string[] = [];
    const { port } = await t.startServer({
      proxyProtocol: true,
      function: async (handle: Connection) => {
        const [peer] = t.api.getSocketPeerAddress(handle);
        calls.push(`start ${ipAddressString(peer as number)}`);
        if (calls.length === 1) await hold.promise;
        calls.push(`end ${ipAddressString(peer as number)}`);
        handle.destroy();
      },
    });
    const first = await proxyClient(t, port, v1('192.0.2.1', '192.0.2.9', 1, 2));
    await t.waitFor(() => calls.length === 1, 'the first call');
    const second = await proxyClient(t, port, v1('192.0.2.2', '192.0.2.9', 1, 2));
    await t.sleep(200);
    assert.deepEqual(calls, ['start 192.0.2.1'], 'the second call began before the first ended');
    hold.open();
    await within(Promise.all([first.closed, second.closed]), 5000, 'both connections to end');
    assert.deepEqual(calls, ['start 192.0.2.1', 'end 192.0.2.1', 'start 192.0.2.2', 'end 192.0.2.2']);
  },
);

defineCase(
  'R21.options-checked',
  'wrong PROXY protocol options are a TypeError naming the option',
  async (t) => {
    const bad: Array<[string, AnyServerOptions]> = [
      ['proxyProtocol', { proxyProtocol: 'v3' as never }],
      ['trustedProxies', { trustedProxies: '127.0.0.1' as never }],
      ['trustedProxies', { trustedProxies: ['10.0.0.0/33'] }],
      ['trustedProxies', { trustedProxies: ['localhost'] }],
      ['proxyHeaderTimeout', { proxyHeaderTimeout: 0 }],
      ['proxyHeaderTimeout', { proxyHeaderTimeout: '5' as never }],
    ];
    for (const [name, options] of bad)
      assert.throws(
        () => t.api.startUpServer({ service: 0, ...options } as AnyServerOptions),
        (error: unknown) => error instanceof TypeError && error.message.includes(name),
        `${JSON.stringify(options)} should be a TypeError naming ${name}`,
      );
  },
);
