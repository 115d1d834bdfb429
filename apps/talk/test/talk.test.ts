import { readdirSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
// The built scripts, run as a user runs them: real processes, real ports.
import { type Child, scriptCommand, startChild } from '../dist/children.js';
import { tlsDemoBackends } from '../dist/demo-backends.js';
import { transcript } from './helpers.js';

/** The demo's temp dirs (its certificates) in the system's temp dir. */
const demoDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith('comm-talk-demo-'));

const children: Child[] = [];
function run(script: string, args: string[]): Child {
  const child = startChild(...scriptCommand(script, args));
  children.push(child);
  return child;
}
/** The first match of `pattern` in what the child has written to stderr, waiting up to 10 s for it. */
async function stderrLine(child: Child, pattern: RegExp): Promise<RegExpMatchArray> {
  for (const until = Date.now() + 10_000; Date.now() < until; ) {
    const match = child.errors().match(pattern);
    if (match) return match;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ${pattern} on stderr within 10 s: ${child.errors()}`);
}

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.stop('SIGKILL')));
});

describe('the talk apps', () => {
  it('the demo prints the seed transcript exactly on each backend, then again over TLS, leaves no certificate behind and exits 0', async () => {
    const before = demoDirs();
    const demo = run('demo.js', []);
    expect(await demo.exited, demo.errors()).toBe(0);
    const lines = demo.output().trim().split('\n');
    expect(lines).toEqual([
      ...['node', 'bun', 'deno', 'uws'].flatMap((backend) => [
        `--- talk on the ${backend} backend ---`,
        ...transcript,
      ]),
      ...tlsDemoBackends.flatMap((backend) => [
        `--- talk over TLS on the ${backend} backend ---`,
        ...transcript,
      ]),
    ]);
    // Its CA and certificate were made in a temp dir, and removed.
    expect(demoDirs()).toEqual(before);
  }, 60_000);

  it('the server announces its port, serves the client, and exits 0 on SIGTERM', async () => {
    const server = run('server.js', ['--service', '0', '--address', '127.0.0.1']);
    const [line, port] = await server.waitFor(/^.* port (\d+)\n/m);
    expect(line).toMatch(/^0 server listening on 127\.0\.0\.1 port \d+\n$/);
    const client = run('client.js', ['--service', port as string, '--host', '127.0.0.1']);
    expect(await client.exited).toBe(0);
    expect(client.output().trim().split('\n')).toEqual(transcript);
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(server.output()).toContain('0 server terminated');
  }, 30_000);

  for (const backend of ['bun', 'deno'])
    it(`--backend ${backend} runs the server and the client in ${backend}`, async () => {
      const server = run('server.js', ['--backend', backend, '--service', '0', '--address', '127.0.0.1']);
      await server.waitFor(new RegExp(`^talk server: backend ${backend}, runtime ${backend} \\d`, 'm'));
      const [, port] = await server.waitFor(/^.* port (\d+)\n/m);
      const client = run('client.js', [
        '--backend',
        backend,
        '--service',
        port as string,
        '--host',
        '127.0.0.1',
      ]);
      expect(await client.exited).toBe(0);
      expect(client.output().trim().split('\n')).toEqual(transcript);
      expect(await server.stop('SIGTERM')).toBe(0);
    }, 30_000);

  it('the server passes its options to the socket: --ipv6 true listens on ::', async () => {
    const server = run('server.js', ['--service', '0', '--ipv6', 'true', '--backlog', '9', '--keepalive']);
    await server.waitFor(/listening on \[::\] port \d+/);
    expect(await server.stop('SIGINT')).toBe(0);
  }, 30_000);

  it('a port in use makes the server exit non-zero, naming the cause', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const server = run('server.js', ['--service', String(port), '--address', '127.0.0.1']);
      expect(await server.exited).toBe(1);
      expect(server.errors()).toMatch(
        /cannot listen on 127\.0\.0\.1 port \d+: the address is already in use \(EADDRINUSE\)/,
      );
    } finally {
      blocker.close();
    }
  }, 30_000);

  it('bad arguments are refused with a message that names them', async () => {
    const badIpv6 = run('server.js', ['--ipv6', 'maybe']);
    expect(await badIpv6.exited).toBe(2);
    expect(badIpv6.errors()).toContain('--ipv6 must be any, both, true or false, not "maybe"');
    const unknown = run('server.js', ['--colour', 'blue']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.errors()).toContain('unknown argument "--colour"');
    const badAddress = run('server.js', ['--service', '0', '--address', 'no-such-host.invalid']);
    expect(await badAddress.exited).toBe(1);
    expect(badAddress.errors()).toContain('cannot resolve host name "no-such-host.invalid"');
  }, 30_000);

  it('bad values of the scale-out and PROXY protocol flags are refused at the call (exit 2), naming flag and value', async () => {
    const cases: [string[], string][] = [
      [['--workers', '0'], '--workers must be an integer from 1 to 1024, not "0"'],
      [['--workers', 'two'], '--workers must be an integer from 1 to 1024, not "two"'],
      [['--proxy-protocol', 'v3'], '--proxy-protocol must be v1, v2 or any, not "v3"'],
      [
        ['--proxy-protocol', 'v1', '--trusted-proxy', '127.0.0.1', '--trusted-proxy', '10.0.0.0/33'],
        '--trusted-proxy must be an IP address or a CIDR block (ADDRESS/PREFIX), not "10.0.0.0/33"',
      ],
      [
        ['--proxy-protocol', 'any', '--trusted-proxy', 'proxy.example'],
        '--trusted-proxy must be an IP address or a CIDR block (ADDRESS/PREFIX), not "proxy.example"',
      ],
      [
        ['--proxy-protocol', 'v2', '--proxy-timeout', '-1'],
        '--proxy-timeout must be a positive number of seconds, not "-1"',
      ],
      [['--trusted-proxy', '127.0.0.1'], '--trusted-proxy needs --proxy-protocol'],
      [['--backend', 'java'], '--backend must be one of node, bun, deno, uws, not "java"'],
      [['--trusted-proxy'], '--trusted-proxy needs a value'],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const server = run('server.js', args);
        expect(await server.exited).toBe(2);
        expect(server.errors()).toContain(message);
        expect(server.output()).toBe('');
      }),
    );
  }, 30_000);

  it('the client exits 1 with a message when nothing listens', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = run('client.js', ['--service', String(port), '--host', '127.0.0.1']);
    expect(await client.exited).toBe(1);
    expect(client.errors()).toMatch(/talk client: .*ECONNREFUSED/);
  }, 30_000);

  it('the third seed example records the socket and tells the port', async () => {
    const example = run('third-example.js', []);
    expect(await example.exited).toBe(0);
    expect(example.output()).toMatch(/^address 0\.0\.0\.0 port [1-9]\d*$/m);
  }, 30_000);

  for (const verbose of [false, true])
    it(`a client that sends an over-long line costs one ${verbose ? 'report with its stack (--verbose)' : 'line on stderr'}, and the server serves the next`, async () => {
      const server = run('server.js', [
        '--service',
        '0',
        '--address',
        '127.0.0.1',
        ...(verbose ? ['--verbose'] : []),
      ]);
      const [, port] = await server.waitFor(/^.* port (\d+)\n/m);
      const bad = net.connect(Number(port), '127.0.0.1');
      bad.on('error', () => {});
      const badPort = await new Promise<number | undefined>((resolve) =>
        bad.once('connect', () => resolve(bad.localPort)),
      );
      bad.write(`${'X'.repeat(2 * 1024 * 1024)}\n`);
      await new Promise((resolve) => bad.once('close', resolve));
      const report = await stderrLine(server, /^talk: session from 127\.0\.0\.1 port (\d+) failed: (.*)$/m);
      expect(Number(report[1])).toBe(badPort);
      expect(report[2]).toContain('line limit');
      const client = run('client.js', ['--service', port as string, '--host', '127.0.0.1']);
      expect(await client.exited).toBe(0);
      expect(client.output().trim().split('\n')).toEqual(transcript);
      expect(await server.stop('SIGTERM')).toBe(0);
      if (verbose) expect(server.errors()).toMatch(/^\s+at /m);
      else expect(server.errors().trim().split('\n')).toEqual([report[0]]);
    }, 30_000);
});
