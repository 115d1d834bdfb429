/**
 * Addresses and services (contract section 3): R5 what `service` names, R6 what `address` names,
 * R7 which family the socket has, R8 what each `ipv6` mode lets in. Every connection goes to a
 * loopback address: a server may listen on 0.0.0.0 or ::, but its clients reach it through
 * 127.0.0.1 or ::1 only.
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import type { Connection, ServerProcess } from '@comm/core/backend';
import { type CaseContext, defineCase, freePort } from '../suite.js';
import {
  ANY6,
  addressApi,
  assertIpv6,
  helloServer,
  LOOPBACK4,
  LOOPBACK6,
  MAPPED_LOOPBACK4,
} from './helpers/addresses.js';
import { mustNotStart, mustStart, occupyPort, startWaiting } from './helpers.js';

/** A client on `host` (loopback) reaches the server: it is greeted by `hello`. */
async function assertGreeted(t: CaseContext, port: number, host: string): Promise<void> {
  const client = await t.connect(port, host);
  assert.equal(await client.readLine(), 'hello', `a client on ${host} port ${port} is served`);
}

/** Connecting to `host` port `port` is refused by the kernel. */
async function assertConnectionRefused(t: CaseContext, port: number, host: string): Promise<void> {
  await assert.rejects(
    t.connect(port, host),
    (error) => code(error) === 'ECONNREFUSED',
    `a client on ${host} port ${port} must be refused`,
  );
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
    const [server, condition] = await startWaiting(t, {
      ...helloServer,
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
  await assertGreeted(t, expected, '127.0.0.1');
});

defineCase('R5.digit-string-port', 'a string of decimal digits is the port', async (t) => {
  const { expected, address, port } = await startOnFreePort(t, (p) => String(p));
  assert.deepEqual([address, port], [LOOPBACK4, expected]);
  await assertGreeted(t, expected, '127.0.0.1');
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
    const [server, condition] = await startWaiting(t, {
      ...helloServer,
      address: '127.0.0.1',
      service: name,
    });
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
    await assertGreeted(t, entry.port, '127.0.0.1');
    return;
  }
  assert.fail(`every service tried was busy:\n${tried.join('\n')}`);
});

defineCase(
  'R5.null-free-port',
  'service null asks the system for a free port, which getSocketAddress reports',
  async (t) => {
    const a = await mustStart(t, { ...helloServer, address: '127.0.0.1', service: null });
    const b = await mustStart(t, { ...helloServer, address: '127.0.0.1', service: null });
    for (const { port } of [a, b])
      assert.ok(Number.isInteger(port) && port > 0 && port <= 65535, `port ${port}`);
    assert.notEqual(a.port, b.port, 'two servers get two ports');
    await assertGreeted(t, a.port, '127.0.0.1');
    await assertGreeted(t, b.port, '127.0.0.1');
  },
);

defineCase(
  'R5.unknown-name',
  'an unknown service name is a startup condition that names it and says to pass a port',
  async (t) => {
    const name = 'comm-no-such-service-x7';
    assert.ok(!tcpServices().some((e) => e.names.includes(name)), `${name} is not in /etc/services`);
    const condition = await mustNotStart(t, { ...helloServer, address: '127.0.0.1', service: name });
    assert.ok(condition.message.includes(name), `the condition names the service: ${condition.message}`);
    assert.match(condition.message, /port/i, 'the condition says how to pass a port instead');
  },
);

// R6: address null is every address; an integer is IPv4 in network order; an Ipv6Address; a literal or a host name.

defineCase(
  'R6.null-all-addresses',
  'address null listens on every address (0.0.0.0): a client on 127.0.0.1 reaches it',
  async (t) => {
    const { address, port } = await mustStart(t, { ...helloServer, address: null, service: 0 });
    assert.equal(address, 0, 'getSocketAddress gives 0, the IPv4 any-address');
    await assertGreeted(t, port, '127.0.0.1');
  },
);

defineCase(
  'R6.integer-address',
  'an integer address is IPv4 in network order: 0x7F000001 is 127.0.0.1',
  async (t) => {
    const { address, port } = await mustStart(t, { ...helloServer, address: 0x7f000001, service: 0 });
    assert.equal(address, LOOPBACK4);
    await assertGreeted(t, port, '127.0.0.1');
  },
);

defineCase(
  'R6.ipv6-address-object',
  "an Ipv6Address address is listened on: parseIpv6Address('::1')",
  async (t) => {
    const { parseIpv6Address } = addressApi(t);
    const loopback = parseIpv6Address('::1');
    assert.ok(loopback);
    const { address, port } = await mustStart(t, { ...helloServer, address: loopback, service: 0 });
    assertIpv6(t, address, LOOPBACK6, 'the listening address');
    await assertGreeted(t, port, '::1');
  },
);

defineCase('R6.string-literal', "a string IP literal is listened on: '127.0.0.1'", async (t) => {
  const { address, port } = await mustStart(t, { ...helloServer, address: '127.0.0.1', service: 0 });
  assert.equal(address, LOOPBACK4);
  await assertGreeted(t, port, '127.0.0.1');
});

defineCase(
  'R6.host-name',
  "a host name is resolved: 'localhost' listens on one of its addresses",
  async (t) => {
    const known = await resolveName('localhost');
    assert.ok(known.length > 0, 'the system resolves localhost');
    const { address, port } = await mustStart(t, { ...helloServer, address: 'localhost', service: 0 });
    const at = text(t, address);
    assert.ok(
      known.includes(at),
      `the server listens on ${at}, one of localhost's addresses (${known.join(', ')})`,
    );
    await assertGreeted(t, port, at);
  },
);

// R7: which family the socket has.

defineCase(
  'R7.ipv6-literal',
  'an IPv6 literal makes an IPv6 socket: getSocketAddress gives an Ipv6Address',
  async (t) => {
    let peer: unknown = null;
    const { address, port } = await mustStart(t, {
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
  const { address, port } = await mustStart(t, { ...helloServer, address: null, ipv6: true, service: 0 });
  assertIpv6(t, address, ANY6, 'the listening address');
  await assertGreeted(t, port, '::1');
});

defineCase('R7.any-no-address', "ipv6 'any' (the default) with no address listens on 0.0.0.0", async (t) => {
  for (const options of [{}, { ipv6: 'any' as const }]) {
    const { address, port } = await mustStart(t, { ...helloServer, address: null, service: 0, ...options });
    assert.equal(address, 0, `with ${JSON.stringify(options)}, the address is the integer 0`);
    await assertGreeted(t, port, '127.0.0.1');
  }
});

defineCase('R7.false-no-address', 'ipv6 false with no address listens on 0.0.0.0', async (t) => {
  const { address, port } = await mustStart(t, { ...helloServer, address: null, ipv6: false, service: 0 });
  assert.equal(address, 0, 'the address is the integer 0');
  await assertGreeted(t, port, '127.0.0.1');
});

defineCase(
  'R7.name-ipv6-true',
  'under ipv6 true a name is resolved to IPv6: an IPv6 socket, or no start at all',
  async (t) => {
    const v6 = await resolveName('localhost', 6);
    const options = { ...helloServer, address: 'localhost', ipv6: true, service: 0 } as const;
    if (v6.length === 0) {
      // This system has no IPv6 address for localhost: falling back to IPv4 would break "IPv6 only".
      const condition = await mustNotStart(t, options);
      assert.ok(
        condition.message.includes('localhost'),
        `the condition names the host: ${condition.message}`,
      );
      return;
    }
    const { address, port } = await mustStart(t, options);
    assert.ok(
      address instanceof addressApi(t).Ipv6Address,
      `the listening address is an Ipv6Address, not ${String(address)}`,
    );
    const at = text(t, address);
    assert.ok(
      v6.includes(at),
      `the server listens on ${at}, one of localhost's IPv6 addresses (${v6.join(', ')})`,
    );
    await assertGreeted(t, port, at);
  },
);

defineCase('R7.name-both', "under ipv6 'both' a name gives an IPv6 socket", async (t) => {
  const { address, port } = await mustStart(t, {
    ...helloServer,
    address: 'localhost',
    ipv6: 'both',
    service: 0,
  });
  const { Ipv6Address } = addressApi(t);
  assert.ok(
    address instanceof Ipv6Address,
    `the listening address is an Ipv6Address, not ${String(address)}`,
  );
  const mapped = [...address.bytes].join() === MAPPED_LOOPBACK4.join();
  // A mapped 127.0.0.1 is reached over IPv4; ::1 over IPv6.
  await assertGreeted(t, port, mapped ? '127.0.0.1' : text(t, address));
});

// R8: what each ipv6 mode lets in.

defineCase(
  'R8.false-refuses-ipv6-address',
  'ipv6 false with an IPv6 address is a startup condition',
  async (t) => {
    const { parseIpv6Address } = addressApi(t);
    for (const address of ['::1', parseIpv6Address('::1')]) {
      const condition = await mustNotStart(t, { ...helloServer, address, ipv6: false, service: 0 });
      assert.match(condition.message, /ipv6/i, `the condition says why: ${condition.message}`);
    }
  },
);

defineCase('R8.true-ipv6-only', 'ipv6 true: IPv4 clients cannot connect, IPv6 clients can', async (t) => {
  const { address, port } = await mustStart(t, { ...helloServer, address: null, ipv6: true, service: 0 });
  assertIpv6(t, address, ANY6, 'the listening address');
  await assertGreeted(t, port, '::1');
  await assertConnectionRefused(t, port, '127.0.0.1');
});

defineCase(
  'R8.both-accepts-ipv4-mapped',
  "ipv6 'both': IPv4 clients connect and are seen as ::ffff:127.0.0.1",
  async (t) => {
    const peers: unknown[][] = [];
    const { address, port } = await mustStart(t, {
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
    const { address, port } = await mustStart(t, {
      ...helloServer,
      address: 'localhost',
      ipv6: 'any',
      service: 0,
    });
    const at = text(t, address);
    assert.ok(known.includes(at), `the server listens on ${at}, one of ${known.join(', ')}`);
    await assertGreeted(t, port, at);
    // Addresses of the other family are not listened on too (only loopback ones are tried).
    const family = net.isIPv6(at) ? 6 : 4;
    for (const other of known.filter((a) => net.isIP(a) !== family && /^(127\.|::1$)/.test(a)))
      await assertConnectionRefused(t, port, other);
  },
);

defineCase(
  'R8.any-falls-back',
  "ipv6 'any': when an address does not bind, the next one is tried",
  async (t) => {
    const v6 = (await resolveName('localhost', 6)).filter((a) => a === '::1');
    // 127.0.0.1 is taken on this port; only localhost's IPv6 address can still bind it.
    const port = await occupyPort(t, '127.0.0.1');
    const options = { ...helloServer, address: 'localhost', ipv6: 'any', service: port } as const;
    if (v6.length === 0) {
      // localhost is IPv4 only here: nothing else may be bound instead (no other address, no other port).
      const condition = await mustNotStart(t, options);
      assert.match(`${code(condition)} ${condition.message}`, /EADDRINUSE|in use/i, condition.message);
      return;
    }
    const { address, port: bound } = await mustStart(t, options);
    assertIpv6(t, address, LOOPBACK6, 'the address that bound');
    assert.equal(bound, port);
    await assertGreeted(t, port, '::1');
  },
);
