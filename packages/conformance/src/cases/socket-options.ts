/**
 * Socket options (contract section 3), each checked on the real socket, not on a flag in
 * JavaScript: R9 `backlog` is the listen queue the kernel reports, R10 `nodelay` and `keepalive`
 * on the accepted socket and on `openTcpStream`'s.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import type { Connection, StartUpServerOptions } from '@comm/core/backend';
import { type KernelSocketOptions, kernelToolsAvailable, listenBacklog, socketOptions } from '../kernel.js';
import type { CaseContext } from '../suite.js';
import { defineCase, within } from '../suite.js';
import { gate, openStream } from './helpers.js';

// ---- helpers ----

let kernelTools: Promise<string | null> | null = null;

/** Fails the case, with the reason, when this machine cannot show the kernel's view of a socket. */
async function requireKernel(): Promise<void> {
  kernelTools ??= kernelToolsAvailable();
  const problem = await kernelTools;
  if (problem !== null) throw new Error(`this kernel check cannot run: ${problem}`);
}

/**
 * A server whose `function` holds each connection until the case is done with it, so that the
 * accepted socket can be inspected while it is still the server's.
 */
async function holdingServer(
  t: CaseContext,
  options: StartUpServerOptions = {},
): Promise<{ port: number; accepted: Promise<Connection> }> {
  const release = gate(t);
  let took!: (handle: Connection) => void;
  const accepted = new Promise<Connection>((resolve) => {
    took = resolve;
  });
  const { port } = await t.startServer({
    ...options,
    function: async (handle: Connection) => {
      took(handle);
      await release.promise;
      handle.destroy();
    },
  });
  return { port, accepted };
}

/** The kernel's options of the socket the server accepted for a raw client. */
async function acceptedSocketOptions(
  t: CaseContext,
  options: StartUpServerOptions,
): Promise<KernelSocketOptions> {
  await requireKernel();
  const { port, accepted } = await holdingServer(t, options);
  const client = await t.connect(port);
  await within(accepted, 5000, 'the call of function');
  return socketOptions({ pid: process.pid, localPort: port, remotePort: client.localPort });
}

/** The kernel's options of the client socket that openTcpStream made with `options`. */
async function clientSocketOptions(
  t: CaseContext,
  options: { nodelay?: boolean; keepalive?: boolean },
): Promise<KernelSocketOptions> {
  await requireKernel();
  const { port, accepted } = await holdingServer(t);
  const stream = await openStream(t, port, options);
  await within(accepted, 5000, 'the call of function');
  const [, clientPort] = t.api.socketStreamAddress(stream);
  assert.equal(typeof clientPort, 'number', "the client stream's local port");
  return socketOptions({ pid: process.pid, localPort: clientPort as number, remotePort: port });
}

// ---- R9: backlog is the queue length the kernel reports for the listening socket ----

async function kernelBacklog(t: CaseContext, options: StartUpServerOptions): Promise<number> {
  await requireKernel();
  const { port } = await t.startServer({ ...options, function: (handle: Connection) => handle.destroy() });
  return listenBacklog(port);
}

defineCase('R9.backlog-default', 'without backlog, the kernel reports a listen queue of 5', async (t) => {
  assert.equal(await kernelBacklog(t, {}), 5);
});

defineCase('R9.backlog-17', 'backlog 17 is the listen queue the kernel reports', async (t) => {
  assert.equal(await kernelBacklog(t, { backlog: 17 }), 17);
});

defineCase('R9.backlog-1', 'backlog 1 is the listen queue the kernel reports', async (t) => {
  assert.equal(await kernelBacklog(t, { backlog: 1 }), 1);
});

defineCase('R9.backlog-null', 'backlog null leaves the system default (net.core.somaxconn)', async (t) => {
  await requireKernel();
  const somaxconn = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8')).trim());
  assert.ok(Number.isInteger(somaxconn) && somaxconn > 0, `cannot read net.core.somaxconn: ${somaxconn}`);
  assert.equal(await kernelBacklog(t, { backlog: null }), somaxconn);
});

// ---- R10: nodelay and keepalive on the accepted socket (and on openTcpStream's socket) ----

defineCase('R10.nodelay-default', 'by default TCP_NODELAY is set on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, {});
  assert.equal(options.nodelay, true, 'TCP_NODELAY as the kernel has it');
});

defineCase('R10.nodelay-false', 'nodelay false clears TCP_NODELAY on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, { nodelay: false });
  assert.equal(options.nodelay, false, 'TCP_NODELAY as the kernel has it');
});

defineCase('R10.keepalive-true', 'keepalive true sets SO_KEEPALIVE on the accepted socket', async (t) => {
  const options = await acceptedSocketOptions(t, { keepalive: true });
  assert.equal(options.keepalive, true, 'SO_KEEPALIVE as the kernel has it');
});

defineCase(
  'R10.keepalive-default',
  'by default SO_KEEPALIVE is not set on the accepted socket',
  async (t) => {
    const options = await acceptedSocketOptions(t, {});
    assert.equal(options.keepalive, false, 'SO_KEEPALIVE as the kernel has it');
  },
);

defineCase(
  'R10.client-nodelay-default',
  "openTcpStream sets TCP_NODELAY on the client's socket by default",
  async (t) => {
    const options = await clientSocketOptions(t, {});
    assert.equal(options.nodelay, true, 'TCP_NODELAY as the kernel has it');
  },
);

defineCase(
  'R10.client-nodelay-false',
  "openTcpStream's nodelay false clears TCP_NODELAY on the client's socket",
  async (t) => {
    const options = await clientSocketOptions(t, { nodelay: false });
    assert.equal(options.nodelay, false, 'TCP_NODELAY as the kernel has it');
  },
);

defineCase(
  'R10.client-keepalive-true',
  "openTcpStream's keepalive true sets SO_KEEPALIVE on the client's socket",
  async (t) => {
    const options = await clientSocketOptions(t, { keepalive: true });
    assert.equal(options.keepalive, true, 'SO_KEEPALIVE as the kernel has it');
  },
);

defineCase(
  'R10.client-keepalive-default',
  "openTcpStream leaves SO_KEEPALIVE off on the client's socket by default",
  async (t) => {
    const options = await clientSocketOptions(t, {});
    assert.equal(options.keepalive, false, 'SO_KEEPALIVE as the kernel has it');
  },
);
