import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import type * as Core from '@comm/core/backend';
import type {
  AnnounceFunction,
  Connection,
  ListeningSocket,
  ServerProcess,
  SocketStream,
} from '@comm/core/backend';
import { bindBackend } from '@comm/core/backend';
import { type CaseContext, defineCase } from '../suite.js';
import { connectAndReset } from './helpers.js';

// R3, R5-R8, R18: where a server listens, how services and addresses are named, and how
// addresses are reported. Every connection goes to a loopback address: a server may listen on
// 0.0.0.0 or ::, but its clients reach it through 127.0.0.1 or ::1 only.

/** The address helpers of the contract, as the backend module re-exports them. */
type AddressApi = Pick<
  typeof Core,
  'Ipv6Address' | 'parseIpv6Address' | 'ipv6AddressString' | 'ipAddressString' | 'stringIpAddress'
>;

function addressApi(t: CaseContext): AddressApi {
  for (const name of [
    'Ipv6Address',
    'parseIpv6Address',
    'ipv6AddressString',
    'ipAddressString',
    'stringIpAddress',
  ])
    assert.equal(typeof t.api[name], 'function', `the backend module exports ${name}`);
  return t.api as unknown as AddressApi;
}

type Started = [ServerProcess, null] | [null, Error];
/** Whatever `startUpServer` takes, as the suite's own `startServer` spells it. */
type Options = NonNullable<Parameters<CaseContext['startServer']>[0]>;

/** `startUpServer` with `wait: true` and exactly the options given; a server that starts is terminated after the case. */
async function start(t: CaseContext, options: Options): Promise<Started> {
  const result = await (t.api.startUpServer({ ...options, wait: true } as Options) as Promise<Started>);
  const [server] = result;
  if (server) t.defer(() => t.api.serverTerminate(server));
  return result;
}

/** Like `start`, but the server must start; gives what `getSocketAddress` says of its socket. */
async function started(
  t: CaseContext,
  options: Options,
): Promise<{ server: ServerProcess; address: unknown; port: number }> {
  const [server, condition] = await start(t, options);
  assert.ok(server, `the server did not start: ${condition?.message}`);
  const [address, port] = t.api.getSocketAddress(server.socket);
  assert.equal(typeof port, 'number', 'getSocketAddress gives the port of a listening socket');
  return { server, address, port: port as number };
}

/** The server must not start; gives the startup condition. */
async function refused(t: CaseContext, options: Options): Promise<Error> {
  const [server, condition] = await start(t, options);
  assert.equal(server, null, 'the server must not start');
  assert.ok(condition instanceof Error, 'a refused start resolves to [null, condition]');
  return condition;
}

/** A handler that greets each client with `hello` and hangs up. */
const hello = {
  createStream: true,
  function: async (stream: SocketStream) => {
    await stream.writeLine('hello');
    await stream.close();
  },
} as const;

/** A client on `host` (loopback) reaches the server: it is greeted by `hello`. */
async function assertServed(t: CaseContext, port: number, host: string): Promise<void> {
  const client = await t.connect(port, host);
  assert.equal(await client.readLine(), 'hello', `a client on ${host} port ${port} is served`);
}

/** Connecting to `host` port `port` is refused by the kernel. */
async function assertRefused(t: CaseContext, port: number, host: string): Promise<void> {
  await assert.rejects(
    t.connect(port, host),
    (error) => code(error) === 'ECONNREFUSED',
    `a client on ${host} port ${port} must be refused`,
  );
}

function groups(...words: number[]): number[] {
  assert.equal(words.length, 8);
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

const ANY6 = groups(0, 0, 0, 0, 0, 0, 0, 0);
const LOOPBACK6 = groups(0, 0, 0, 0, 0, 0, 0, 1);
const MAPPED_LOOPBACK4 = groups(0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001);
const LOOPBACK4 = 0x7f000001;

/** `value` is an `Ipv6Address` holding exactly `bytes`. */
function assertIpv6(t: CaseContext, value: unknown, bytes: number[], what: string): void {
  const { Ipv6Address } = addressApi(t);
  assert.ok(value instanceof Ipv6Address, `${what} is an Ipv6Address, not ${String(value)}`);
  assert.deepEqual([...value.bytes], bytes, what);
}

/** A port nobody listens on right now (a socket bound to port 0 and closed again). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A plain node:net server holding `host` port `port` (0: any free one), closed after the case. */
function occupy(t: CaseContext, host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const holder = net.createServer((socket) => socket.destroy());
    holder.once('error', reject);
    holder.listen({ host, port, exclusive: true }, () => {
      t.defer(() => new Promise<void>((done) => holder.close(() => done())));
      resolve((holder.address() as net.AddressInfo).port);
    });
  });
}

function code(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/** Starts a server on a port that was free a moment ago, retrying if another process took it meanwhile. */
async function startOnFreePort(
  t: CaseContext,
  service: (port: number) => number | string,
): Promise<{ server: ServerProcess; expected: number; address: unknown; port: unknown }> {
  let last: Error | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const expected = await freePort();
    const [server, condition] = await start(t, {
      ...hello,
      address: '127.0.0.1',
      service: service(expected),
    });
    if (server) {
      const [address, port] = t.api.getSocketAddress(server.socket);
      return { server, expected, address, port };
    }
    last = condition;
    if (!/EADDRINUSE|in use/i.test(`${code(condition)} ${condition.message}`))
      assert.fail(`the server did not start: ${condition.message}`);
  }
  assert.fail(`no free port stayed free long enough: ${last?.message}`);
}

interface ServiceLine {
  readonly names: readonly string[];
  readonly port: number;
}

/** The tcp entries of /etc/services, read here without any @comm code. */
function tcpServices(): ServiceLine[] {
  const entries: ServiceLine[] = [];
  for (const line of readFileSync('/etc/services', 'utf8').split('\n')) {
    const [name, portProtocol, ...aliases] = line.replace(/#.*/, '').trim().split(/\s+/);
    const match = /^(\d+)\/tcp$/.exec(portProtocol ?? '');
    if (name && match) entries.push({ names: [name, ...aliases], port: Number(match[1]) });
  }
  return entries;
}

/** What the system resolver says `name` is, as address text; [] when it has no such address. */
async function resolveName(name: string, family?: 4 | 6): Promise<string[]> {
  try {
    const found = await lookup(name, { all: true, ...(family ? { family } : {}) });
    return found.filter((a) => family === undefined || a.family === family).map((a) => a.address);
  } catch {
    return [];
  }
}

/** `[address, port]` as printable text, for comparing against what the resolver said. */
function text(t: CaseContext, address: unknown): string {
  const { ipAddressString, Ipv6Address } = addressApi(t);
  assert.ok(
    typeof address === 'number' || address instanceof Ipv6Address,
    `an address is an integer or an Ipv6Address, not ${String(address)}`,
  );
  return ipAddressString(address);
}

// R5: service is an integer port, a string of digits, a name from /etc/services, or null for any free port.

defineCase('R5.integer-port', 'an integer service is the port the server listens on', async (t) => {
  const { expected, address, port } = await startOnFreePort(t, (p) => p);
  assert.deepEqual([address, port], [LOOPBACK4, expected]);
  await assertServed(t, expected, '127.0.0.1');
});

defineCase('R5.digit-string-port', 'a string of decimal digits is the port', async (t) => {
  const { expected, address, port } = await startOnFreePort(t, (p) => String(p));
  assert.deepEqual([address, port], [LOOPBACK4, expected]);
  await assertServed(t, expected, '127.0.0.1');
});

defineCase('R5.service-name', 'a service name is looked up in /etc/services', async (t) => {
  const entries = tcpServices();
  const firstPort = (name: string) => entries.find((e) => e.names.includes(name))?.port;
  // Rarely used services first (the end of the file has the high ports); a busy port moves on to the next.
  const candidates = entries
    .slice()
    .reverse()
    .filter((e) => e.port > 0 && e.names[0] !== undefined && !/^\d+$/.test(e.names[0]))
    .filter((e) => firstPort(e.names[0] as string) === e.port);
  assert.ok(candidates.length > 0, '/etc/services names at least one tcp service');
  const tried: string[] = [];
  for (const entry of candidates.slice(0, 20)) {
    const name = entry.names[0] as string;
    const [server, condition] = await start(t, { ...hello, address: '127.0.0.1', service: name });
    if (!server) {
      tried.push(`${name}: ${condition.message}`);
      assert.match(
        `${code(condition)} ${condition.message}`,
        /EADDRINUSE|in use/i,
        'only a busy port may stop it',
      );
      continue;
    }
    const [address, port] = t.api.getSocketAddress(server.socket);
    assert.deepEqual([address, port], [LOOPBACK4, entry.port], `service "${name}" is port ${entry.port}`);
    await assertServed(t, entry.port, '127.0.0.1');
    return;
  }
  assert.fail(`every service tried was busy:\n${tried.join('\n')}`);
});

defineCase(
  'R5.null-free-port',
  'service null asks the system for a free port, which getSocketAddress reports',
  async (t) => {
    const a = await started(t, { ...hello, address: '127.0.0.1', service: null });
    const b = await started(t, { ...hello, address: '127.0.0.1', service: null });
    for (const { port } of [a, b])
      assert.ok(Number.isInteger(port) && port > 0 && port <= 65535, `port ${port}`);
    assert.notEqual(a.port, b.port, 'two servers get two ports');
    await assertServed(t, a.port, '127.0.0.1');
    await assertServed(t, b.port, '127.0.0.1');
  },
);

defineCase(
  'R5.unknown-name',
  'an unknown service name is a startup condition that names it and says to pass a port',
  async (t) => {
    const name = 'comm-no-such-service-x7';
    assert.ok(!tcpServices().some((e) => e.names.includes(name)), `${name} is not in /etc/services`);
    const condition = await refused(t, { ...hello, address: '127.0.0.1', service: name });
    assert.ok(condition.message.includes(name), `the condition names the service: ${condition.message}`);
    assert.match(condition.message, /port/i, 'the condition says how to pass a port instead');
  },
);

// R6: address null is every address; an integer is IPv4 in network order; an Ipv6Address; a literal or a host name.

defineCase(
  'R6.null-all-addresses',
  'address null listens on every address (0.0.0.0): a client on 127.0.0.1 reaches it',
  async (t) => {
    const { address, port } = await started(t, { ...hello, address: null, service: 0 });
    assert.equal(address, 0, 'getSocketAddress gives 0, the IPv4 any-address');
    await assertServed(t, port, '127.0.0.1');
  },
);

defineCase(
  'R6.integer-address',
  'an integer address is IPv4 in network order: 0x7F000001 is 127.0.0.1',
  async (t) => {
    const { address, port } = await started(t, { ...hello, address: 0x7f000001, service: 0 });
    assert.equal(address, LOOPBACK4);
    await assertServed(t, port, '127.0.0.1');
  },
);

defineCase(
  'R6.ipv6-address-object',
  "an Ipv6Address address is listened on: parseIpv6Address('::1')",
  async (t) => {
    const { parseIpv6Address } = addressApi(t);
    const loopback = parseIpv6Address('::1');
    assert.ok(loopback);
    const { address, port } = await started(t, { ...hello, address: loopback, service: 0 });
    assertIpv6(t, address, LOOPBACK6, 'the listening address');
    await assertServed(t, port, '::1');
  },
);

defineCase('R6.string-literal', "a string IP literal is listened on: '127.0.0.1'", async (t) => {
  const { address, port } = await started(t, { ...hello, address: '127.0.0.1', service: 0 });
  assert.equal(address, LOOPBACK4);
  await assertServed(t, port, '127.0.0.1');
});

defineCase(
  'R6.host-name',
  "a host name is resolved: 'localhost' listens on one of its addresses",
  async (t) => {
    const known = await resolveName('localhost');
    assert.ok(known.length > 0, 'the system resolves localhost');
    const { address, port } = await started(t, { ...hello, address: 'localhost', service: 0 });
    const at = text(t, address);
    assert.ok(
      known.includes(at),
      `the server listens on ${at}, one of localhost's addresses (${known.join(', ')})`,
    );
    await assertServed(t, port, at);
  },
);

// R7: which family the socket has.

defineCase(
  'R7.ipv6-literal',
  'an IPv6 literal makes an IPv6 socket: getSocketAddress gives an Ipv6Address',
  async (t) => {
    let peer: unknown = null;
    const { address, port } = await started(t, {
      address: '::1',
      service: 0,
      function: (handle: Connection) => {
        [peer] = t.api.getSocketPeerAddress(handle);
        handle.destroy();
      },
    });
    assertIpv6(t, address, LOOPBACK6, 'the listening address');
    await (await t.connect(port, '::1')).closedByPeer();
    assertIpv6(t, peer, LOOPBACK6, "the client's address, as the server sees it");
  },
);

defineCase('R7.ipv6-true-no-address', "ipv6 true with no address listens on '::'", async (t) => {
  const { address, port } = await started(t, { ...hello, address: null, ipv6: true, service: 0 });
  assertIpv6(t, address, ANY6, 'the listening address');
  await assertServed(t, port, '::1');
});

defineCase('R7.any-no-address', "ipv6 'any' (the default) with no address listens on 0.0.0.0", async (t) => {
  for (const options of [{}, { ipv6: 'any' as const }]) {
    const { address, port } = await started(t, { ...hello, address: null, service: 0, ...options });
    assert.equal(address, 0, `with ${JSON.stringify(options)}, the address is the integer 0`);
    await assertServed(t, port, '127.0.0.1');
  }
});

defineCase('R7.false-no-address', 'ipv6 false with no address listens on 0.0.0.0', async (t) => {
  const { address, port } = await started(t, { ...hello, address: null, ipv6: false, service: 0 });
  assert.equal(address, 0, 'the address is the integer 0');
  await assertServed(t, port, '127.0.0.1');
});

defineCase(
  'R7.name-ipv6-true',
  'under ipv6 true a name is resolved to IPv6: an IPv6 socket, or no start at all',
  async (t) => {
    const v6 = await resolveName('localhost', 6);
    const options = { ...hello, address: 'localhost', ipv6: true, service: 0 } as const;
    if (v6.length === 0) {
      // This system has no IPv6 address for localhost: falling back to IPv4 would break "IPv6 only".
      const condition = await refused(t, options);
      assert.ok(
        condition.message.includes('localhost'),
        `the condition names the host: ${condition.message}`,
      );
      return;
    }
    const { address, port } = await started(t, options);
    assert.ok(
      address instanceof addressApi(t).Ipv6Address,
      `the listening address is an Ipv6Address, not ${String(address)}`,
    );
    const at = text(t, address);
    assert.ok(
      v6.includes(at),
      `the server listens on ${at}, one of localhost's IPv6 addresses (${v6.join(', ')})`,
    );
    await assertServed(t, port, at);
  },
);

defineCase('R7.name-both', "under ipv6 'both' a name gives an IPv6 socket", async (t) => {
  const { address, port } = await started(t, { ...hello, address: 'localhost', ipv6: 'both', service: 0 });
  const { Ipv6Address } = addressApi(t);
  assert.ok(
    address instanceof Ipv6Address,
    `the listening address is an Ipv6Address, not ${String(address)}`,
  );
  const mapped = [...address.bytes].join() === MAPPED_LOOPBACK4.join();
  // A mapped 127.0.0.1 is reached over IPv4; ::1 over IPv6.
  await assertServed(t, port, mapped ? '127.0.0.1' : text(t, address));
});

// R8: what each ipv6 mode lets in.

defineCase(
  'R8.false-refuses-ipv6-address',
  'ipv6 false with an IPv6 address is a startup condition',
  async (t) => {
    const { parseIpv6Address } = addressApi(t);
    for (const address of ['::1', parseIpv6Address('::1')]) {
      const condition = await refused(t, { ...hello, address, ipv6: false, service: 0 });
      assert.match(condition.message, /ipv6/i, `the condition says why: ${condition.message}`);
    }
  },
);

defineCase('R8.true-ipv6-only', 'ipv6 true: IPv4 clients cannot connect, IPv6 clients can', async (t) => {
  const { address, port } = await started(t, { ...hello, address: null, ipv6: true, service: 0 });
  assertIpv6(t, address, ANY6, 'the listening address');
  await assertServed(t, port, '::1');
  await assertRefused(t, port, '127.0.0.1');
});

defineCase(
  'R8.both-accepts-ipv4-mapped',
  "ipv6 'both': IPv4 clients connect and are seen as ::ffff:127.0.0.1",
  async (t) => {
    const peers: unknown[][] = [];
    const { address, port } = await started(t, {
      address: null,
      ipv6: 'both',
      service: 0,
      function: (handle: Connection) => {
        peers.push(t.api.getSocketPeerAddress(handle));
        handle.destroy();
      },
    });
    assertIpv6(t, address, ANY6, 'the listening address');
    // Ports are read while connected: a closed node:net socket no longer knows its own.
    const v4 = await t.connect(port, '127.0.0.1');
    const v4Port = v4.localPort;
    await v4.closedByPeer();
    const v6 = await t.connect(port, '::1');
    const v6Port = v6.localPort;
    await v6.closedByPeer();
    assert.equal(peers.length, 2);
    assertIpv6(t, peers[0]?.[0], MAPPED_LOOPBACK4, 'the IPv4 client, as an IPv6 socket sees it');
    assert.equal(peers[0]?.[1], v4Port);
    assertIpv6(t, peers[1]?.[0], LOOPBACK6, 'the IPv6 client');
    assert.equal(peers[1]?.[1], v6Port);
  },
);

defineCase(
  'R8.any-keeps-one',
  "ipv6 'any' with a name listens on one of its addresses, and only that one",
  async (t) => {
    const known = await resolveName('localhost');
    assert.ok(known.length > 0, 'the system resolves localhost');
    const { address, port } = await started(t, { ...hello, address: 'localhost', ipv6: 'any', service: 0 });
    const at = text(t, address);
    assert.ok(known.includes(at), `the server listens on ${at}, one of ${known.join(', ')}`);
    await assertServed(t, port, at);
    // Addresses of the other family are not listened on too (only loopback ones are tried).
    const family = net.isIPv6(at) ? 6 : 4;
    for (const other of known.filter((a) => net.isIP(a) !== family && /^(127\.|::1$)/.test(a)))
      await assertRefused(t, port, other);
  },
);

defineCase(
  'R8.any-falls-back',
  "ipv6 'any': when an address does not bind, the next one is tried",
  async (t) => {
    const v6 = (await resolveName('localhost', 6)).filter((a) => a === '::1');
    // 127.0.0.1 is taken on this port; only localhost's IPv6 address can still bind it.
    const port = await occupy(t, '127.0.0.1');
    const options = { ...hello, address: 'localhost', ipv6: 'any', service: port } as const;
    if (v6.length === 0) {
      // localhost is IPv4 only here: nothing else may be bound instead (no other address, no other port).
      const condition = await refused(t, options);
      assert.match(`${code(condition)} ${condition.message}`, /EADDRINUSE|in use/i, condition.message);
      return;
    }
    const { address, port: bound } = await started(t, options);
    assertIpv6(t, address, LOOPBACK6, 'the address that bound');
    assert.equal(bound, port);
    await assertServed(t, port, '::1');
  },
);

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
    const { server, port } = await t.startServer({ ...hello, announce });
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

// R3: the built-in listener.

defineCase(
  'R3.listener-loopback',
  'with no function and no address, the built-in listener binds loopback',
  async (t) => {
    const v4 = await started(t, { service: 0 });
    assert.equal(v4.address, LOOPBACK4, 'ipv6 any: 127.0.0.1, not 0.0.0.0');
    const v6 = await started(t, { service: 0, ipv6: true });
    assertIpv6(t, v6.address, LOOPBACK6, 'ipv6 true: ::1, not ::');
  },
);

defineCase(
  'R3.listener-session',
  'the first line names the session; later lines are evaluated and their values printed',
  async (t) => {
    const { port } = await started(t, { service: 0 });
    const client = await t.connect(port, '127.0.0.1');
    await client.writeLine('"my session"');
    await client.writeLine('1 + 2');
    assert.equal(await client.readLine(), '3');
    await client.writeLine("'con' + 'cat'");
    assert.equal(await client.readLine(), '"concat"', 'a string value is printed as JSON');
    await client.writeLine('commNoSuchVariable.x');
    assert.match(
      (await client.readLine()) ?? '',
      /^error:/,
      'an error is printed as a line starting "error:"',
    );
    await client.writeLine('[1, 2, 3].length');
    assert.equal(await client.readLine(), '3', 'the session goes on after an error');
  },
);

defineCase('R3.listener-two-sessions', 'the built-in listener serves two sessions at once', async (t) => {
  const { port } = await started(t, { service: 0 });
  const a = await t.connect(port, '127.0.0.1');
  await a.writeLine('"a"');
  await a.writeLine('10 * 10');
  assert.equal(await a.readLine(), '100');
  // a stays open while b is served.
  const b = await t.connect(port, '127.0.0.1');
  await b.writeLine('"b"');
  await b.writeLine('2 ** 10');
  assert.equal(await b.readLine(), '1024');
  await a.writeLine('"still " + "a"');
  assert.equal(await a.readLine(), '"still a"');
  await b.writeLine('"still " + "b"');
  assert.equal(await b.readLine(), '"still b"');
});

defineCase(
  'R3.listener-bad-name',
  'a first line that is not a JSON string gets an error line and is closed; the server goes on',
  async (t) => {
    const { port } = await started(t, { service: 0 });
    for (const first of ['1 + 2', '42', 'not json']) {
      const client = await t.connect(port, '127.0.0.1');
      await client.writeLine(first);
      assert.match((await client.readLine()) ?? '', /^error:/, `first line ${JSON.stringify(first)}`);
      await client.closedByPeer();
    }
    const good = await t.connect(port, '127.0.0.1');
    await good.writeLine('"good"');
    await good.writeLine('1 + 2');
    assert.equal(await good.readLine(), '3');
  },
);

defineCase(
  'R3.listener-refuses-remote',
  'the built-in listener refuses to start on other addresses than loopback',
  async (t) => {
    for (const address of ['0.0.0.0', 0, '::']) {
      const condition = await refused(t, { service: 0, address });
      assert.ok(condition.message.length > 0, `a startup condition for ${address}`);
    }
  },
);

defineCase(
  'R3.listener-remote-opt-in',
  'with allowRemoteListener: true the built-in listener starts on 0.0.0.0',
  async (t) => {
    const { address, port } = await started(t, { service: 0, address: '0.0.0.0', allowRemoteListener: true });
    assert.equal(address, 0);
    const client = await t.connect(port, '127.0.0.1');
    await client.writeLine('"opted in"');
    await client.writeLine('40 + 2');
    assert.equal(await client.readLine(), '42');
  },
);

// ---- R18a: no address function ever throws for a handle the server gave ----

/** The backend under test, whose accepted connections have no address, as after a reset in the queue. */
function addresslessBackend(base: Core.Backend): Core.Backend {
  const none: Core.SocketAddress = { address: '', port: 0, family: 4 };
  return {
    ...base,
    name: `${base.name}+no-addresses`,
    async listen(spec) {
      const listener = await base.listen(spec);
      return {
        local: listener.local,
        close: () => listener.close(),
        async accept() {
          const connection = await listener.accept();
          if (connection === null) return null;
          return new Proxy(connection, {
            get: (target, key) => {
              if (key === 'local' || key === 'remote') return none;
              const value = Reflect.get(target, key, target);
              return typeof value === 'function' ? value.bind(target) : value;
            },
          });
        },
      };
    },
  };
}

defineCase(
  'R18a.no-address-no-throw',
  'a connection the runtime reports without an address (its peer reset in the queue) gives [null, null] from every address function, and the server goes on',
  async (t) => {
    const api = bindBackend(addresslessBackend(t.api.backend));
    const seen: unknown[][] = [];
    const [server, condition] = await api.startUpServer({
      service: 0,
      address: '127.0.0.1',
      wait: true,
      error: false,
      function: async (handle: Connection) => {
        const stream = new t.api.SocketStream({ socket: handle, direction: 'io' });
        seen.push([
          t.api.getSocketAddress(handle),
          t.api.getSocketPeerAddress(handle),
          t.api.socketStreamAddress(stream),
          t.api.socketStreamPeerAddress(stream),
        ]);
        await stream.writeLine('served');
        await stream.close();
      },
    });
    assert.ok(server, `the server started: ${condition?.message}`);
    t.defer(() => api.serverTerminate(server));
    const port = server.socket?.local.port as number;
    for (const n of [1, 2]) {
      const client = await t.connect(port);
      assert.equal(await client.readLine(), 'served', `client ${n} served`);
    }
    assert.equal(server.state, 'listening', 'the server is still listening');
    assert.deepEqual(seen, [
      [
        [null, null],
        [null, null],
        [null, null],
        [null, null],
      ],
      [
        [null, null],
        [null, null],
        [null, null],
        [null, null],
      ],
    ]);
  },
);

defineCase(
  'R18a.reset-storm-server-lives',
  "200 clients that connect and reset at once (a port scanner) while the talk handler asks each stream's peer address: the server lives and serves the next client",
  async (t) => {
    let served = 0;
    const { server, port } = await t.startServer({
      backlog: 512,
      function: (handle: Connection) => {
        const stream = new t.api.SocketStream({ socket: handle, direction: 'io' });
        const [, peerPort] = t.api.socketStreamPeerAddress(stream);
        t.api.processRunFunction(`talk ${peerPort}`, async () => {
          try {
            for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
              await stream.writeLine(`You sent: '${line}'`);
              stream.forceOutput();
              served++;
            }
          } finally {
            await stream.close({ abort: true });
          }
        });
      },
    });
    await connectAndReset(port, 200);
    assert.ok(server.active, `the server is still active (state ${server.state})`);
    await t.waitFor(() => server.state === 'listening', 'the server listening');
    const client = await t.connect(port);
    await client.writeLine('after the storm');
    assert.equal(await client.readLine(), "You sent: 'after the storm'");
    assert.ok(served >= 1);
  },
  30_000,
);
