/**
 * Addresses and services (contract section 3), R18: `[address, port]` as `getSocketAddress`,
 * `getSocketPeerAddress`, `socketStreamAddress` and `socketStreamPeerAddress` report them, and the
 * address helpers (`Ipv6Address`, `parseIpv6Address` and the string conversions). R18a, for
 * connections a hostile peer reset, is in address-functions-never-throw.ts.
 */
import assert from 'node:assert/strict';
import type * as Core from '@comm/core/backend';
import type { AnnounceFunction, Connection, ListeningSocket, SocketStream } from '@comm/core/backend';
import { defineCase } from '../suite.js';
import {
  ANY6,
  addressApi,
  assertIpv6,
  groups,
  helloServer,
  LOOPBACK4,
  LOOPBACK6,
  MAPPED_LOOPBACK4,
} from './helpers/addresses.js';

// R18: [address, port] as getSocketAddress and friends report them; the address helpers.

defineCase('R18.ipv4-addresses', 'IPv4 addresses are reported as [integer, port]', async (t) => {
  let seen: unknown[] | null = null;
  const { server, port } = await t.startServer({
    address: '127.0.0.1',
    function: (handle: Connection) => {
      seen = [...t.api.getSocketAddress(handle), ...t.api.getSocketPeerAddress(handle)];
      handle.destroy();
    },
  });
  assert.deepEqual(t.api.getSocketAddress(server.socket), [LOOPBACK4, port]);
  const clientPort = (await t.connect(port, '127.0.0.1')).localPort;
  await t.waitFor(() => seen !== null, 'the handler');
  assert.deepEqual(seen, [LOOPBACK4, port, LOOPBACK4, clientPort]);
});

defineCase('R18.ipv6-addresses', 'IPv6 addresses are reported as [Ipv6Address, port]', async (t) => {
  let seen: unknown[] | null = null;
  const { server, port } = await t.startServer({
    address: '::1',
    function: (handle: Connection) => {
      seen = [...t.api.getSocketAddress(handle), ...t.api.getSocketPeerAddress(handle)];
      handle.destroy();
    },
  });
  const [listening, listeningPort] = t.api.getSocketAddress(server.socket);
  assertIpv6(t, listening, LOOPBACK6, 'the listening address');
  assert.equal(listeningPort, port);
  const clientPort = (await t.connect(port, '::1')).localPort;
  await t.waitFor(() => seen !== null, 'the handler');
  const [local, localPort, peer, peerPort] = seen as unknown as unknown[];
  assertIpv6(t, local, LOOPBACK6, 'the local address of the connection');
  assert.equal(localPort, port);
  assertIpv6(t, peer, LOOPBACK6, 'the peer address of the connection');
  assert.equal(peerPort, clientPort);
});

defineCase(
  'R18.not-connected',
  "[null, null]: a listening socket's peer, and a terminated server's socket",
  async (t) => {
    let recorded = null as ListeningSocket | null;
    const announce: AnnounceFunction = (socket) => {
      if (socket) recorded = socket;
    };
    const { server, port } = await t.startServer({ ...helloServer, announce });
    assert.ok(recorded, 'announce got the listening socket');
    assert.deepEqual(t.api.getSocketAddress(recorded), [LOOPBACK4, port]);
    assert.deepEqual(t.api.getSocketPeerAddress(recorded), [null, null], 'a listening socket has no peer');
    assert.deepEqual(t.api.getSocketPeerAddress(server.socket), [null, null]);
    assert.equal(t.api.serverTerminate(server), true);
    assert.deepEqual(t.api.getSocketAddress(recorded), [null, null], "a terminated server's socket");
    assert.deepEqual(t.api.getSocketPeerAddress(recorded), [null, null]);
    assert.deepEqual(t.api.getSocketAddress(server.socket), [null, null]);
  },
);

defineCase('R18.closed-handle', '[null, null] for a socket handle once it was closed', async (t) => {
  let seen: unknown[] | null = null;
  const { port } = await t.startServer({
    function: (handle: Connection) => {
      const open = [t.api.getSocketAddress(handle), t.api.getSocketPeerAddress(handle)];
      handle.destroy();
      seen = [...open, t.api.getSocketAddress(handle), t.api.getSocketPeerAddress(handle)];
    },
  });
  const client = await t.connect(port);
  const clientPort = client.localPort;
  await t.waitFor(() => seen !== null, 'the handler');
  assert.deepEqual(seen, [
    [LOOPBACK4, port],
    [LOOPBACK4, clientPort],
    [null, null],
    [null, null],
  ]);
});

defineCase(
  'R18.socket-stream-addresses',
  'socketStreamAddress / socketStreamPeerAddress, [null, null] once closed',
  async (t) => {
    let serverSide: unknown[] | null = null;
    const { port } = await t.startServer({
      createStream: true,
      function: async (stream: SocketStream) => {
        const open = [...t.api.socketStreamAddress(stream), ...t.api.socketStreamPeerAddress(stream)];
        await stream.close();
        serverSide = [
          ...open,
          ...t.api.socketStreamAddress(stream),
          ...t.api.socketStreamPeerAddress(stream),
        ];
      },
    });
    const client = await t.api.openTcpStream('127.0.0.1', port, { errorp: true });
    assert.ok(client);
    t.defer(() => client.close({ abort: true }));
    const [localAddress, localPort] = t.api.socketStreamAddress(client);
    assert.equal(localAddress, LOOPBACK4);
    assert.ok(typeof localPort === 'number' && localPort > 0);
    assert.deepEqual(t.api.socketStreamPeerAddress(client), [LOOPBACK4, port]);
    await t.waitFor(() => serverSide !== null, 'the handler');
    assert.deepEqual(serverSide, [LOOPBACK4, port, LOOPBACK4, localPort, null, null, null, null]);
    await client.close();
    assert.deepEqual(t.api.socketStreamAddress(client), [null, null]);
    assert.deepEqual(t.api.socketStreamPeerAddress(client), [null, null]);
  },
);

defineCase(
  'R18.parse-ipv6-forms',
  'parseIpv6Address reads standard and dotted-quad forms, %scope and /prefix',
  async (t) => {
    const { parseIpv6Address, Ipv6Address } = addressApi(t);
    const forms: Array<[string, number[], string | null, number | null]> = [
      ['::', ANY6, null, null],
      ['::1', LOOPBACK6, null, null],
      ['2001:db8::1', groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), null, null],
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), null, null],
      ['1:2:3:4:5:6:7:8', groups(1, 2, 3, 4, 5, 6, 7, 8), null, null],
      ['fe80::', groups(0xfe80, 0, 0, 0, 0, 0, 0, 0), null, null],
      ['::ffff:192.0.2.1', groups(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201), null, null],
      ['0:0:0:0:0:ffff:127.0.0.1', MAPPED_LOOPBACK4, null, null],
      ['64:ff9b::198.51.100.7', groups(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6407), null, null],
      ['fe80::1%eth0', groups(0xfe80, 0, 0, 0, 0, 0, 0, 1), 'eth0', null],
      ['fe80::1%2', groups(0xfe80, 0, 0, 0, 0, 0, 0, 1), '2', null],
      ['2001:db8::/32', groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), null, 32],
      ['fe80::1%eth0/64', groups(0xfe80, 0, 0, 0, 0, 0, 0, 1), 'eth0', 64],
    ];
    for (const [input, bytes, scopeId, prefixLength] of forms) {
      const parsed = parseIpv6Address(input);
      assert.ok(parsed instanceof Ipv6Address, `${input} parses to an Ipv6Address`);
      assert.deepEqual([...parsed.bytes], bytes, `the bytes of ${input}`);
      assert.equal(parsed.scopeId, scopeId, `the scope of ${input}`);
      assert.equal(parsed.prefixLength, prefixLength, `the prefix length of ${input}`);
    }
  },
);

defineCase('R18.parse-ipv6-junk', 'parseIpv6Address returns null for text that is no address', async (t) => {
  const { parseIpv6Address } = addressApi(t);
  const junk = [
    '',
    'hello',
    'localhost',
    '1.2.3.4',
    ':',
    ':::',
    '1::2::3',
    '12345::',
    'g::1',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::ffff:1.2.3',
    '::ffff:1.2.3.256',
    '1.2.3.4::',
    '::1%',
    '::1/129',
    '::1/x',
  ];
  for (const input of junk)
    assert.equal(parseIpv6Address(input), null, `${JSON.stringify(input)} is no address`);
});

defineCase(
  'R18.address-strings',
  'ipAddressString, stringIpAddress and ipv6AddressString convert both ways',
  async (t) => {
    const { ipAddressString, stringIpAddress, ipv6AddressString, parseIpv6Address, Ipv6Address } =
      addressApi(t);
    const ipv4: Array<[number, string]> = [
      [0xcc47b14b, '204.71.177.75'],
      [0x7f000001, '127.0.0.1'],
      [0, '0.0.0.0'],
      [0xffffffff, '255.255.255.255'],
    ];
    for (const [n, s] of ipv4) {
      assert.equal(ipAddressString(n), s);
      assert.equal(stringIpAddress(s), n);
    }
    for (const s of ['::', '::1', '2001:db8::1', 'fe80::1%eth0']) {
      const a = parseIpv6Address(s);
      assert.ok(a);
      assert.equal(ipv6AddressString(a), s, `${s} prints as it was written`);
      assert.equal(ipAddressString(a), s);
      const b = stringIpAddress(s);
      assert.ok(b instanceof Ipv6Address, `stringIpAddress(${s}) is an Ipv6Address`);
      assert.deepEqual([...b.bytes], [...a.bytes]);
      assert.equal(b.scopeId, a.scopeId);
    }
    // Long forms print shorter, and what is printed parses back to the same address.
    for (const s of [
      '2001:0DB8:0000:0000:0000:0000:0000:0001',
      '::ffff:192.0.2.1',
      '1:0:0:2:0:0:0:3',
      'fe80::1%2',
    ]) {
      const a = parseIpv6Address(s);
      assert.ok(a);
      const printed = ipv6AddressString(a);
      const back = parseIpv6Address(printed);
      assert.ok(back, `${printed} (printed from ${s}) parses`);
      assert.deepEqual([...back.bytes], [...a.bytes], `${s} -> ${printed}`);
      assert.equal(back.scopeId, a.scopeId);
    }
    assert.equal(
      ipv6AddressString(parseIpv6Address('2001:0DB8:0000:0000:0000:0000:0000:0001') as Core.Ipv6Address),
      '2001:db8::1',
    );
    assert.equal(stringIpAddress('no address'), null);
    assert.equal(stringIpAddress('1.2.3.256'), null);
  },
);

defineCase(
  'R18.seed-third-example',
  "the seed's third example: service null, an announce that records the socket, getSocketAddress",
  async (t) => {
    let mySocket = null as ListeningSocket | null;
    const logged: Error[] = [];
    const myAnnounceFunction: AnnounceFunction = (socket, condition) => {
      if (socket) mySocket = socket;
      else if (condition) logged.push(condition);
    };
    const server = t.api.startUpServer({ service: null, error: false, announce: myAnnounceFunction });
    t.defer(() => t.api.serverTerminate(server));
    await t.waitFor(() => mySocket !== null || logged.length > 0, 'announce');
    assert.deepEqual(logged, [], 'announce reported no condition');
    const [address, port] = t.api.getSocketAddress(mySocket);
    assert.ok(typeof port === 'number' && port > 0, `getSocketAddress gives the port, not ${port}`);
    // No function: the built-in listener, which binds the loopback address (R3).
    assert.equal(address, LOOPBACK4);
    const client = await t.connect(port, '127.0.0.1');
    await client.writeLine('"seed"');
    await client.writeLine('6 * 7');
    assert.equal(await client.readLine(), '42');
  },
);
