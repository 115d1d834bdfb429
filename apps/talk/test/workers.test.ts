import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, Cleanup, groupAlive, listeners, talkFrom, transcript, until } from './helpers.js';

// R20 end to end: --workers N starts N servers, each its own process with SO_REUSEPORT, on one port.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const WORKERS_LINE = /^talk server: 2 workers listening on 127\.0\.0\.1 port (\d+) \(pids (\d+) (\d+)\)$/m;

/** Whether Node `version` (as process.versions.node gives it) sets SO_REUSEPORT: 22.12 or later, or 23.1 or later. */
function nodeHasReusePort(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** One short talk exchange; resolves to the reply. */
function oneLine(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`${text}\n`));
    socket.on('data', (text: string) => {
      got += text;
      if (got.includes('\n')) socket.end();
    });
    socket.on('close', () => resolve(got.trim()));
  });
}

describe('the talk server with --workers', () => {
  for (const backend of ['bun', 'deno'])
    it(`--backend ${backend} --workers 2: two listening sockets on one port, 50 connections answered, a killed worker restarted, SIGTERM ends all`, async () => {
      const parent = cleanup.script('server.js', [
        '--backend',
        backend,
        '--workers',
        '2',
        '--service',
        '0',
        '--address',
        '127.0.0.1',
      ]);
      const [, portText, first, second] = await parent.waitFor(WORKERS_LINE, 20_000);
      const port = Number(portText);
      const pids = [Number(first), Number(second)];
      // Each worker's own announce line passes through, both on the port the first one was given.
      expect(parent.output().match(/^\S+ server listening on 127\.0\.0\.1 port (\d+)$/gm)).toHaveLength(2);
      expect(parent.output()).not.toMatch(
        new RegExp(`listening on 127\\.0\\.0\\.1 port (?!${port}$)\\d+$`, 'm'),
      );
      const sockets = listeners(port);
      expect(sockets).toHaveLength(2);
      expect(sockets.flatMap((s) => s.pids).sort()).toEqual([...pids].sort());

      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => oneLine(port, `hello ${i}`)));
      expect(replies).toEqual(Array.from({ length: 50 }, (_, i) => `You sent: 'hello ${i}'`));

      // A worker that dies is restarted: a new pid listens on the port beside the other.
      process.kill(pids[0] as number, 'SIGKILL');
      const [, newPidText] = await parent.waitFor(/^talk server: worker 1 restarted, pid (\d+)$/m, 20_000);
      const newPid = Number(newPidText);
      expect(pids).not.toContain(newPid);
      expect(parent.errors()).toMatch(/worker 1 \(pid \d+\) exited \(killed by SIGKILL\); restarting it/);
      const after = listeners(port);
      expect(after).toHaveLength(2);
      expect(after.flatMap((s) => s.pids).sort()).toEqual([newPid, pids[1] as number].sort());
      const client = await talkFrom(cleanup, port, '127.0.0.2');
      expect(client.lines).toEqual(transcript);

      // SIGTERM to the supervisor only (not its group): it ends every worker, waits, exits 0.
      process.kill(parent.process.pid as number, 'SIGTERM');
      expect(await parent.exited).toBe(0);
      for (const pid of [newPid, pids[1] as number]) {
        expect(alive(pid)).toBe(false);
        expect(groupAlive(pid)).toBe(false);
      }
      expect(listeners(port)).toHaveLength(0);
      // The port is free to bind again, without SO_REUSEPORT.
      const probe = net.createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(port, '127.0.0.1', resolve);
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }, 60_000);

  it('a worker that keeps dying makes the supervisor give up after its restarts, exit 1, and name how it died', async () => {
    const parent = cleanup.script('server.js', [
      '--backend',
      'bun',
      '--workers',
      '1',
      '--service',
      '0',
      '--address',
      '127.0.0.1',
    ]);
    const [, portText] = await parent.waitFor(
      /^talk server: 1 worker listening on 127\.0\.0\.1 port (\d+) \(pids (\d+)\)$/m,
      20_000,
    );
    const port = Number(portText);
    // Kill whatever listens, six times: five restarts, then the sixth death ends it.
    let killed = 0;
    while (parent.process.exitCode === null && killed < 10) {
      const pid = await until(
        'a worker listening',
        () => (parent.process.exitCode !== null ? -1 : listeners(port)[0]?.pids[0]),
        20_000,
      );
      if (pid === -1) break;
      process.kill(pid, 'SIGKILL');
      killed += 1;
      await until('the worker to die', () => !alive(pid) || parent.process.exitCode !== null, 5_000);
    }
    expect(await parent.exited).toBe(1);
    expect(killed).toBe(6);
    expect(parent.errors()).toMatch(
      /worker 1 \(pid \d+\) exited \(killed by SIGKILL\) after 5 restarts within 60 s; stopping all workers/,
    );
    expect(listeners(port)).toHaveLength(0);
  }, 60_000);

  it(`--workers 2 --backend node on this Node (${process.versions.node}): ${nodeHasReusePort(process.versions.node) ? 'two workers' : 'one line naming the version, exit non-zero'}`, async () => {
    const parent = cleanup.script('server.js', [
      '--workers',
      '2',
      '--backend',
      'node',
      '--service',
      '0',
      '--address',
      '127.0.0.1',
    ]);
    if (nodeHasReusePort(process.versions.node)) {
      await parent.waitFor(WORKERS_LINE, 20_000);
      process.kill(parent.process.pid as number, 'SIGTERM');
      expect(await parent.exited).toBe(0);
      return;
    }
    const code = await parent.exited;
    expect(code).not.toBe(0);
    const errors = parent.errors().trim().split('\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('22.12');
    expect(errors[0]).toContain(process.versions.node);
    expect(parent.output()).not.toMatch(/listening/);
  }, 30_000);

  it('--reuseport --backend node on this Node: a startup condition naming the version, or a server', async () => {
    const server = cleanup.script('server.js', [
      '--reuseport',
      '--backend',
      'node',
      '--service',
      '0',
      '--address',
      '127.0.0.1',
    ]);
    if (nodeHasReusePort(process.versions.node)) {
      await server.waitFor(/listening on/);
      expect(await server.stop('SIGTERM')).toBe(0);
      return;
    }
    expect(await server.exited).toBe(1);
    const errors = server.errors().trim().split('\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^talk server: .*22\.12/);
    expect(errors[0]).toContain(process.versions.node);
  }, 30_000);
});
