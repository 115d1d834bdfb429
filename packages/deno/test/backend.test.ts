// The seam's promises (accept order, EADDRINUSE, half-close, partial writes, drain, a reset
// mid-write, destroy and close with a read or accept pending, accept errors at the descriptor
// limit) are checked by @comm/conformance's seam cases (`seam.*`, packages/conformance/src/seam),
// which test/conformance.test.ts runs on this backend. Here: what is particular to Deno.
import assert from 'node:assert/strict';
import { socketOptions } from '@comm/conformance';
import type { Connection, ListenSpec } from '@comm/core/backend';
import { acceptFailurePolicy } from '@comm/core/backend';
import { backend } from '../dist/index.js';
import { seamTest } from './helpers.ts';

// Deno's own: the FFI listener (IPV6_V6ONLY, SO_REUSEPORT, its backlog), what needs --allow-ffi or
// --unstable-net, connect() from a local port, and EMFILE through core on both listeners.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ENTRY = new URL('../dist/index.js', import.meta.url).href;
const FIXTURES = new URL('./fixtures/', import.meta.url);

const spec4: ListenSpec = {
  host: '127.0.0.1',
  port: 0,
  family: 4,
  ipv6Only: false,
  backlog: 5,
  reusePort: false,
};

function pick(options: { nodelay: boolean; keepalive: boolean }) {
  return { nodelay: options.nodelay, keepalive: options.keepalive };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readAll(connection: Connection): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read())
    chunks.push(chunk);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/** Connects with Deno.connect directly: a client independent of the backend. */
async function rawClient(port: number, hostname = '127.0.0.1'): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname, port });
}

async function refused(port: number, hostname: string): Promise<boolean> {
  try {
    (await rawClient(port, hostname)).close();
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'ECONNREFUSED';
  }
}

/** Lines a child prints, as they come. */
class Lines {
  readonly all: string[] = [];
  #waiters: Array<() => void> = [];
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const textDecoder = new TextDecoder();
    let rest = '';
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) break;
      rest += textDecoder.decode(value, { stream: true });
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      this.all.push(...parts);
      this.#wake();
    }
    if (rest) this.all.push(rest);
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  matching(pattern: RegExp): string[] {
    return this.all.filter((line) => pattern.test(line));
  }

  /** Resolves once `count` lines match `pattern`; rejects when the stream ends first. */
  async wait(pattern: RegExp, count = 1): Promise<string[]> {
    for (;;) {
      const found = this.matching(pattern);
      if (found.length >= count) return found;
      if (this.#done)
        throw new Error(`the child ended before printing ${count} x ${pattern}:\n${this.all.join('\n')}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

interface Child {
  readonly process: Deno.ChildProcess;
  readonly stdout: Lines;
  readonly stderr: Lines;
}

/** Starts a child (never through a shim), killed with SIGKILL at cleanup. */
function spawn(defer: (cleanup: () => unknown) => void, command: string, args: string[]): Child {
  const child = new Deno.Command(command, { args, stdin: 'null', stdout: 'piped', stderr: 'piped' }).spawn();
  defer(async () => {
    try {
      child.kill('SIGKILL');
    } catch {
      // Exited already.
    }
    await child.status;
  });
  return { process: child, stdout: new Lines(child.stdout), stderr: new Lines(child.stderr) };
}

seamTest('where FFI can be used, the one deviation: no server side for STARTTLS', 1000, async () => {
  assert.deepEqual(
    (backend.deviations ?? []).flatMap((d) => d.cases),
    ['R22.starttls-server'],
  );
});

seamTest(
  'backlog: tcpBacklog is what the kernel reports; null is net.core.somaxconn',
  10_000,
  async (defer) => {
    const somaxconn = Number((await Deno.readTextFile('/proc/sys/net/core/somaxconn')).trim());
    for (const [backlog, expected] of [
      [1, 1],
      [17, 17],
      [null, somaxconn],
    ] as const) {
      const listener = await backend.listen({ ...spec4, backlog });
      defer(() => listener.close());
      const ss = await output('ss', ['-Hltn', 'sport', '=', `:${listener.local.port}`]);
      assert.equal(Number(ss.trim().split(/\s+/)[2]), expected, `backlog ${backlog}: ${ss}`);
    }
  },
);

async function output(command: string, args: string[]): Promise<string> {
  const child = new Deno.Command(command, { args, stdin: 'null', stdout: 'piped', stderr: 'null' }).spawn();
  const text = new Response(child.stdout).text();
  await child.status;
  return await text;
}

seamTest(
  'ipv6Only on :: refuses IPv4 clients (IPV6_V6ONLY through FFI); without it they come mapped',
  10_000,
  async (defer) => {
    const only = await backend.listen({ ...spec4, host: '::', family: 6, ipv6Only: true, backlog: 7 });
    defer(() => only.close());
    assert.equal(only.local.address, '::');
    assert.equal(only.local.family, 6);
    const port = only.local.port;
    assert.equal(Number((await output('ss', ['-Hltn', 'sport', '=', `:${port}`])).trim().split(/\s+/)[2]), 7);
    assert.equal(await refused(port, '127.0.0.1'), true, 'an IPv4 client is refused');
    const v6 = await rawClient(port, '::1');
    defer(() => v6.close());
    const accepted = await only.accept();
    assert.ok(accepted);
    defer(() => accepted.destroy());
    const v6Port = (v6.localAddr as Deno.NetAddr).port;
    assert.deepEqual(accepted.remote, { address: '::1', port: v6Port, family: 6 });
    assert.deepEqual(accepted.local, { address: '::1', port, family: 6 });
    // TCP_NODELAY and SO_KEEPALIVE reach the kernel's socket.
    const ref = { pid: Deno.pid, localPort: port, remotePort: v6Port };
    accepted.setNoDelay(true);
    accepted.setKeepAlive(true);
    assert.deepEqual(pick(await socketOptions(ref)), { nodelay: true, keepalive: true });
    accepted.setNoDelay(false);
    accepted.setKeepAlive(false);
    assert.deepEqual(pick(await socketOptions(ref)), { nodelay: false, keepalive: false });
    // Data both ways on the node:net socket made from the accepted descriptor.
    await v6.write(encoder.encode('ping'));
    assert.equal(decoder.decode((await accepted.read()) ?? new Uint8Array()), 'ping');
    await accepted.write(encoder.encode('pong'));
    await accepted.end();
    const buffer = new Uint8Array(16);
    assert.equal(decoder.decode(buffer.subarray(0, (await v6.read(buffer)) ?? 0)), 'pong');
    // close() with an accept pending (a poll on a blocking thread) gives null and frees the port at once.
    const pending = only.accept();
    await sleep(20);
    await only.close();
    assert.equal(await pending, null);
    const again = await backend.listen({ ...spec4, host: '::', family: 6, ipv6Only: true, port });
    await again.close();

    const both = await backend.listen({ ...spec4, host: '::', family: 6, ipv6Only: false });
    defer(() => both.close());
    const v4 = await rawClient(both.local.port, '127.0.0.1');
    defer(() => v4.close());
    const mapped = await both.accept();
    assert.ok(mapped);
    defer(() => mapped.destroy());
    assert.equal(mapped.remote.address, '::ffff:127.0.0.1');
    assert.equal(mapped.remote.family, 6);
  },
);

seamTest(
  'reusePort without --unstable-net: SO_REUSEPORT through FFI, not the end of the process',
  10_000,
  async (defer) => {
    assert.equal(typeof Deno.listenDatagram, 'undefined', 'this test runs without --unstable-net');
    for (const [host, family] of [
      ['127.0.0.1', 4],
      ['::1', 6],
    ] as const) {
      const a = await backend.listen({ ...spec4, host, family, reusePort: true });
      defer(() => a.close());
      const b = await backend.listen({ ...spec4, host, family, reusePort: true, port: a.local.port });
      defer(() => b.close());
      assert.equal(b.local.port, a.local.port, `${host}: two sockets share the port`);
      // Without reusePort the port stays exclusive.
      await assert.rejects(backend.listen({ ...spec4, host, family, port: a.local.port }), {
        code: 'EADDRINUSE',
      });
    }
  },
);

seamTest(
  'connect() from a local port (through node:net: Deno.connect has no such option)',
  10_000,
  async (defer) => {
    const listener = await backend.listen(spec4);
    defer(() => listener.close());
    const probe = await backend.listen(spec4);
    const localPort = probe.local.port;
    await probe.close();
    const client = await backend.connect({
      host: '127.0.0.1',
      port: listener.local.port,
      family: 4,
      localPort,
    });
    defer(() => client.destroy());
    assert.equal(client.local.port, localPort);
    const server = await listener.accept();
    assert.ok(server);
    defer(() => server.destroy());
    assert.equal(server.remote.port, localPort);
    await client.write(encoder.encode('from a chosen port'));
    await client.end();
    assert.equal(decoder.decode(await readAll(server)), 'from a chosen port');
  },
);

seamTest(
  'without the ffi permission, what needs FFI fails to listen with the reason',
  30_000,
  async (defer) => {
    const specs = [{ ...spec4, host: '::', family: 6, ipv6Only: true }, { ...spec4, reusePort: true }, spec4];
    const child = spawn(defer, Deno.execPath(), [
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
    await child.stdout.wait(/^DONE$/);
    const [deviations] = child.stdout.matching(/^DEVIATIONS/);
    assert.equal(
      deviations,
      'DEVIATIONS R7.ipv6-true-no-address R8.true-ipv6-only R15.port-free-at-once R22.client-certificate R22.sni-reaches-server R22.server-handshake-timeout R22.starttls-server',
      'declared where FFI is not',
    );
    const [ipv6Only, reusePort, plain] = child.stdout.matching(/^(LISTENING|FAILED)/);
    assert.match(ipv6Only ?? '', /^FAILED EOPNOTSUPP .*IPV6_V6ONLY.*--allow-ffi/);
    assert.match(reusePort ?? '', /^FAILED EOPNOTSUPP .*SO_REUSEPORT.*--unstable-net.*--allow-ffi/);
    assert.match(plain ?? '', /^LISTENING 127\.0\.0\.1 \d+$/);
    assert.equal((await child.process.status).code, 0);
  },
);

seamTest('with --unstable-net, reusePort goes to Deno.listen itself', 30_000, async (defer) => {
  const specs = [
    { ...spec4, reusePort: true },
    { ...spec4, reusePort: true, port: -1 },
  ];
  const child = spawn(defer, Deno.execPath(), [
    'run',
    '--unstable-net',
    '--no-prompt',
    '--allow-net',
    '--allow-read',
    '--allow-env',
    '--allow-sys',
    new URL('listen.mjs', FIXTURES).pathname,
    ENTRY,
    JSON.stringify(specs),
  ]);
  await child.stdout.wait(/^DONE$/);
  const lines = child.stdout.matching(/^(LISTENING|FAILED)/);
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0] ?? '', /^LISTENING 127\.0\.0\.1 \d+$/);
  assert.equal(lines[1], lines[0], 'the second socket shares the port');
  assert.equal((await child.process.status).code, 0);
});

// R14a on a real failure: accept() fails with EMFILE when the process is out of descriptors, on
// Deno.listen's socket (Deno rejects accept()) and on the FFI one (accept4 fails).
for (const [mode, host, what] of [
  ['v4', '127.0.0.1', 'Deno.listen'],
  ['v6only', '::1', 'the FFI listener (ipv6 true)'],
] as const)
  seamTest(
    `EMFILE on ${what}: accept fails, the server backs off without reopening, and serves again once fds are free`,
    60_000,
    async (defer) => {
      const NOFILE = 64;
      // The shell lowers RLIMIT_NOFILE, then becomes Deno (exec): the child's pid is Deno's.
      const child = spawn(defer, 'sh', [
        '-c',
        `ulimit -n ${NOFILE} && exec "$0" "$@"`,
        Deno.execPath(),
        'run',
        '-A',
        new URL('emfile-server.mjs', FIXTURES).pathname,
        ENTRY,
        mode,
      ]);
      const [announced] = await child.stdout.wait(/^ANNOUNCE /);
      const port = Number(announced?.split(' ')[1]);
      assert.ok(port > 0, `the first announce: ${announced}`);

      // Open connections, each served and held by the child, until its accept() fails.
      const clients: Deno.TcpConn[] = [];
      defer(() => {
        for (const c of clients)
          try {
            c.close();
          } catch {
            // Reset by the reopen, and closed already.
          }
      });
      const failed = /^ACCEPT-FAILED /;
      while (child.stdout.matching(failed).length === 0) {
        assert.ok(clients.length < NOFILE, 'more connections than the child has descriptors, and no failure');
        const client = await rawClient(port, host);
        clients.push(client);
        const buffer = new Uint8Array(64);
        const reply = client.read(buffer).then((n) => decoder.decode(buffer.subarray(0, n ?? 0)));
        const outcome = await Promise.race([reply, child.stdout.wait(failed).then(() => 'failed')]);
        if (outcome !== 'failed') assert.equal(outcome, 'served\n');
      }
      const served = child.stdout.matching(/^SERVED /).length;
      assert.ok(served > 0 && served < NOFILE, `served ${served} before running out`);

      // The failures back off, longer each time (never a busy loop), and never reopen (R14a).
      const { reopenAfter, firstBackoffMs, maxBackoffMs } = acceptFailurePolicy;
      await child.stdout.wait(failed, reopenAfter + 2);
      const failures = child.stdout.matching(failed);
      assert.ok(
        failures.every((line) => line.split(' ')[1] === 'EMFILE'),
        failures.join('\n'),
      );
      const times = failures.map((line) => Number(line.split(' ')[2]));
      for (let k = 1; k < times.length; k++) {
        const gap = (times[k] as number) - (times[k - 1] as number);
        const backoff = Math.min(firstBackoffMs * 2 ** (k - 1), maxBackoffMs);
        assert.ok(gap >= backoff - 2, `wait after failure ${k}: ${gap.toFixed(1)} ms`);
      }
      assert.equal(
        child.stdout.matching(/^ANNOUNCE /).length,
        1,
        'no reopen: exhausted descriptors are no fault of the socket',
      );

      // While descriptors stay exhausted and clients keep coming, the server keeps backing off: few
      // accept calls, little CPU, and the queued clients wait in the kernel's queue.
      const stat = async () => {
        let text: string;
        try {
          text = await Deno.readTextFile(`/proc/${child.process.pid}/stat`);
        } catch (error) {
          throw new Error(
            `the child is gone (${error}):\n${child.stdout.all.join('\n')}\n${child.stderr.all.join('\n')}`,
          );
        }
        const fields = text.split(') ')[1]?.split(' ') ?? [];
        return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks
      };
      const cpuBefore = await stat();
      const failuresBefore = child.stdout.matching(failed).length;
      const announcesBefore = child.stdout.matching(/^ANNOUNCE /).length;
      const started = performance.now();
      while (performance.now() - started < 1000) {
        // Once the kernel's queue is full a connect waits for a SYN retransmit: do not wait for it.
        void rawClient(port, host).then(
          (client) => clients.push(client),
          () => {},
        );
        await sleep(100);
      }
      const elapsed = performance.now() - started;
      const cpuTicks = (await stat()) - cpuBefore;
      const failuresDuring = child.stdout.matching(failed).length - failuresBefore;
      const reopensDuring = child.stdout.matching(/^ANNOUNCE /).length - announcesBefore;
      assert.ok(failuresDuring >= 1, 'accept kept failing while descriptors were exhausted');
      assert.ok(
        failuresDuring <= 60,
        `${failuresDuring} failed accepts in ${elapsed.toFixed(0)} ms: a busy loop`,
      );
      assert.equal(reopensDuring, 0, `${reopensDuring} reopens in ${elapsed.toFixed(0)} ms`);
      // 100 ticks a second: a busy loop would burn about 100 in this second.
      assert.ok(cpuTicks < 50, `the child used ${cpuTicks} clock ticks of CPU in ${elapsed.toFixed(0)} ms`);
      assert.equal(child.stdout.matching(/^END /).length, 0, 'the server is still running');

      // Free descriptors: the child's processes see their clients close and close their sockets.
      // More than are queued, so that a fresh client finds a descriptor after the queued ones took theirs.
      for (const client of clients.splice(0, 30)) client.close();
      const client = await rawClient(port, host);
      clients.push(client);
      const buffer = new Uint8Array(64);
      let reply = '';
      for (const until = performance.now() + 10_000; !reply.includes('\n') && performance.now() < until; ) {
        const n = await client.read(buffer);
        if (n === null) break;
        reply += decoder.decode(buffer.subarray(0, n));
      }
      assert.equal(reply, 'served\n', 'a client is served again once descriptors are free');
      assert.equal(child.stdout.matching(/^END /).length, 0, 'the server is still running');
    },
  );
