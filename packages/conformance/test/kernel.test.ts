import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  acceptQueueLength,
  kernelTaken,
  kernelToolsAvailable,
  listenBacklog,
  socketOptions,
  tcpCounters,
  tcpCountersSync,
} from '../src/kernel.js';

const missing = await kernelToolsAvailable();
if (missing !== null) console.warn(`kernel tests skipped: ${missing}`);

const TIMEOUT = 15_000;

/** A server on an ephemeral port with the given backlog, closed when the test finishes. */
async function listen(backlog: number, host = '127.0.0.1'): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer();
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { server, port: address.port };
}

/** One connection to `server`: both of its ends, destroyed when the test finishes. */
async function connect(server: net.Server, port: number, host = '127.0.0.1') {
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect({ port, host });
  onTestFinished(() => {
    client.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', () => {
      client.off('error', reject);
      resolve();
    });
  });
  const serverSide = await accepted;
  onTestFinished(() => {
    serverSide.destroy();
  });
  return { client, serverSide };
}

function ends(socket: net.Socket, pid = process.pid) {
  const { localPort, remotePort } = socket;
  if (localPort === undefined || remotePort === undefined) throw new Error('socket is not connected');
  return { pid, localPort, remotePort };
}

/** A child process, killed when the test finishes; resolves with its first line of output. */
async function spawnChild(command: string, args: string[]): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  const line = await new Promise<string>((resolve, reject) => {
    if (child.stdout === null) return reject(new Error('no stdout'));
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (first) => {
      lines.close();
      resolve(first);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`child exited early (${code ?? signal})`)));
  });
  return { child, line };
}

async function eventually<T>(read: () => Promise<T>, expected: T, ms = 3_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value === expected || Date.now() > until) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(missing !== null)('kernel: listen backlog and accept queue (ss)', () => {
  it('reads backlog 7 and backlog 3 from two listening sockets', { timeout: TIMEOUT }, async () => {
    const seven = await listen(7);
    const three = await listen(3);
    expect(await listenBacklog(seven.port)).toBe(7);
    expect(await listenBacklog(three.port)).toBe(3);
  });

  it('reads the backlog of a dual-stack (::) listener', { timeout: TIMEOUT }, async () => {
    const server = await listen(5, '::');
    expect(await listenBacklog(server.port)).toBe(5);
    expect(await acceptQueueLength(server.port)).toBe(0);
  });

  it('counts connections the server has not accepted yet', { timeout: TIMEOUT }, async () => {
    // Node accepts at once, so the listener that never accepts is a python child.
    const { line } = await spawnChild('python3', [
      '-c',
      [
        'import socket, sys',
        's = socket.socket()',
        's.bind(("127.0.0.1", 0))',
        's.listen(4)',
        'print(s.getsockname()[1], flush=True)',
        'sys.stdin.read()',
      ].join('\n'),
    ]);
    const port = Number(line);
    expect(await listenBacklog(port)).toBe(4);
    expect(await acceptQueueLength(port)).toBe(0);
    const clients: net.Socket[] = [];
    onTestFinished(() => {
      for (const client of clients) client.destroy();
    });
    for (let i = 0; i < 2; i++) {
      const client = net.connect({ port, host: '127.0.0.1' });
      clients.push(client);
      await new Promise<void>((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
    }
    expect(await eventually(() => acceptQueueLength(port), 2)).toBe(2);
  });

  it('throws when nothing listens on the port', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(1);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(listenBacklog(port)).rejects.toThrow(/no socket is listening on TCP port/);
    await expect(acceptQueueLength(port)).rejects.toThrow(/no socket is listening on TCP port/);
  });
});

describe.skipIf(missing !== null)('kernel: socket options (pidfd_getfd + getsockopt)', () => {
  it('reads TCP_NODELAY and SO_KEEPALIVE on, then off', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(7);
    const { serverSide } = await connect(server, port);

    serverSide.setNoDelay(true);
    serverSide.setKeepAlive(true);
    expect(await socketOptions(ends(serverSide))).toMatchObject({ nodelay: true, keepalive: true });

    serverSide.setNoDelay(false);
    serverSide.setKeepAlive(false);
    expect(await socketOptions(ends(serverSide))).toMatchObject({ nodelay: false, keepalive: false });

    // the two options are read independently
    serverSide.setNoDelay(true);
    const mixed = await socketOptions(ends(serverSide));
    expect(mixed).toMatchObject({ nodelay: true, keepalive: false });
    expect(mixed.rcvbuf).toBeGreaterThan(0);
    expect(mixed.sndbuf).toBeGreaterThan(0);
  });

  it('tells the two ends of one loopback connection apart', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(7);
    const { client, serverSide } = await connect(server, port);
    serverSide.setNoDelay(true);
    serverSide.setKeepAlive(false);
    client.setNoDelay(false);
    client.setKeepAlive(true);

    // Same process, same two ports, swapped: only the exact (local, remote) pair tells them apart.
    expect(ends(serverSide).localPort).toBe(ends(client).remotePort);
    expect(await socketOptions(ends(serverSide))).toMatchObject({ nodelay: true, keepalive: false });
    expect(await socketOptions(ends(client))).toMatchObject({ nodelay: false, keepalive: true });
  });

  it('reads the accepted socket of a dual-stack (::) server', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(7, '::');
    const { client, serverSide } = await connect(server, port, '127.0.0.1');
    serverSide.setKeepAlive(true);
    client.setKeepAlive(false);
    expect(await socketOptions(ends(serverSide))).toMatchObject({ keepalive: true });
    expect(await socketOptions(ends(client))).toMatchObject({ keepalive: false });
  });

  it('reads the sockets of another process', { timeout: TIMEOUT }, async () => {
    const script = `
      const net = require('node:net');
      const server = net.createServer({ noDelay: false });
      let accepted, client, connected = false, reported = false;
      const report = () => {
        if (!accepted || !connected || reported) return;
        reported = true;
        accepted.setNoDelay(true);
        accepted.setKeepAlive(false);
        client.setNoDelay(false);
        client.setKeepAlive(true);
        console.log(JSON.stringify({ pid: process.pid, listen: server.address().port,
          serverLocal: accepted.localPort, serverRemote: accepted.remotePort,
          clientLocal: client.localPort, clientRemote: client.remotePort }));
      };
      server.on('connection', (socket) => { accepted = socket; report(); });
      server.listen({ port: 0, host: '127.0.0.1', backlog: 6 }, () => {
        client = net.connect(server.address().port, '127.0.0.1', () => { connected = true; report(); });
      });
      process.stdin.on('end', () => process.exit(0)).resume();
      setTimeout(() => process.exit(0), 60000).unref();
    `;
    const { child, line } = await spawnChild(process.execPath, ['-e', script]);
    const info = JSON.parse(line) as Record<string, number>;
    const pid = child.pid;
    if (pid === undefined) throw new Error('child has no pid');
    expect(info.pid).toBe(pid);
    const num = (key: string) => {
      const value = info[key];
      if (typeof value !== 'number') throw new Error(`child did not report ${key}: ${line}`);
      return value;
    };

    expect(await listenBacklog(num('listen'))).toBe(6);
    const serverSide = { pid, localPort: num('serverLocal'), remotePort: num('serverRemote') };
    const clientSide = { pid, localPort: num('clientLocal'), remotePort: num('clientRemote') };
    expect(await socketOptions(serverSide)).toMatchObject({ nodelay: true, keepalive: false });
    expect(await socketOptions(clientSide)).toMatchObject({ nodelay: false, keepalive: true });
    // this process does not hold them
    await expect(socketOptions({ ...serverSide, pid: process.pid })).rejects.toThrow(
      /holds no TCP connection/,
    );
  });

  it('throws a clear error when the connection does not exist', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(1);
    const { serverSide } = await connect(server, port);
    const { localPort, remotePort } = ends(serverSide);
    // the listening port with a peer port that is not connected to it
    const otherPort = remotePort === 65535 ? 65534 : remotePort + 1;
    await expect(socketOptions({ pid: process.pid, localPort, remotePort: otherPort })).rejects.toThrow(
      /no TCP connection with local port|holds no TCP connection/,
    );
    await expect(socketOptions({ pid: 2 ** 22 + 1, localPort, remotePort })).rejects.toThrow(
      /does not exist/,
    );
  });
});

describe.skipIf(missing !== null)('kernel: TCP counters (ss -tin)', () => {
  /** Writes `pieces` on `socket`, each its own write(2) unless corked, and waits until the peer has them all. */
  async function send(socket: net.Socket, peer: net.Socket, pieces: string[], cork: boolean): Promise<void> {
    const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
    let got = 0;
    const received = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        got += chunk.length;
        if (got < total) return;
        peer.off('data', onData);
        resolve();
      };
      peer.on('data', onData);
    });
    if (cork) socket.cork();
    for (const piece of pieces) socket.write(piece);
    if (cork) socket.uncork();
    await received;
  }

  it('counts the bytes handed to a socket and the data segments that carried them', {
    timeout: TIMEOUT,
  }, async () => {
    const { server, port } = await listen(7);
    const { client, serverSide } = await connect(server, port);
    serverSide.setNoDelay(true);
    const pieces = Array.from({ length: 16 }, (_, i) => `line ${i}\n`);
    const bytes = pieces.join('').length;

    const before = await tcpCounters(ends(serverSide));
    expect(before.state).toBe('ESTAB');
    // Written one by one, with TCP_NODELAY, on loopback: one segment each.
    for (const piece of pieces) await send(serverSide, client, [piece], false);
    const apart = await tcpCounters(ends(serverSide));
    expect(apart.dataSegsOut - before.dataSegsOut).toBe(16);
    expect(kernelTaken(apart) - kernelTaken(before)).toBe(bytes);
    // Corked into one write: one segment.
    await send(serverSide, client, pieces, true);
    const together = tcpCountersSync(ends(serverSide));
    expect(together.dataSegsOut - apart.dataSegsOut).toBe(1);
    expect(kernelTaken(together) - kernelTaken(apart)).toBe(bytes);
    // The other end counts what it received; what it has not read stays in its Recv-Q.
    const clientSide = await tcpCounters(ends(client));
    expect(clientSide.bytesReceived).toBe(2 * bytes);
    expect(clientSide.recvQ).toBe(0);
  });

  it('counts what a peer that reads nothing leaves in the kernel', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(7);
    const { client, serverSide } = await connect(server, port);
    client.pause();
    // More than loopback's buffers hold: the kernel takes what it can, Node keeps the rest.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const written = 256 * chunk.length;
    for (let i = 0; i < 256; i++) serverSide.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const counters = await tcpCounters(ends(serverSide));
    // Every byte is in the kernel (acknowledged or queued) or in Node's buffer, which counts a
    // chunk the kernel took part of as a whole.
    const accounted = kernelTaken(counters) + serverSide.writableLength;
    expect(accounted).toBeGreaterThanOrEqual(written);
    expect(accounted).toBeLessThan(written + chunk.length);
    expect(kernelTaken(counters)).toBeLessThan(written);
    expect(counters.sendQ).toBeGreaterThan(0);
    const peer = await tcpCounters(ends(client));
    expect(peer.recvQ).toBeGreaterThan(0);
  });

  it('throws when no such socket exists', { timeout: TIMEOUT }, async () => {
    const { server, port } = await listen(1);
    const { serverSide } = await connect(server, port);
    const { localPort, remotePort } = ends(serverSide);
    const otherPort = remotePort === 65535 ? 65534 : remotePort + 1;
    await expect(tcpCounters({ localPort, remotePort: otherPort })).rejects.toThrow(/shows 0 sockets/);
    expect(() => tcpCountersSync({ localPort, remotePort: otherPort })).toThrow(/shows 0 sockets/);
  });
});

describe('kernel: availability', () => {
  it('says what is missing, or nothing', { timeout: TIMEOUT }, async () => {
    const result = await kernelToolsAvailable();
    if (result !== null) expect(result).toMatch(/^the kernel checks|^cannot read socket state/);
    expect(result).toBe(missing);
  });
});
