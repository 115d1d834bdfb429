import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cleanup, connectFrom, groupAlive, sleep, startTalkServer, until } from './helpers.js';

// talk-server --drain S: on SIGTERM the port is free at once, the live sessions have S seconds to
// end by themselves, and then the server exits 0.

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Binds `port` on 127.0.0.1 (and lets it go), retrying for up to `ms`: whether the port is free. */
async function bindable(port: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; ; ) {
    const probe = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      return true;
    }
    if (Date.now() > end) return false;
    await sleep(25);
  }
}

/** Says `text` on the session and returns the reply. */
async function exchange(
  client: Awaited<ReturnType<typeof connectFrom>>,
  text: string,
): Promise<string | null> {
  client.socket.write(`${text}\n`);
  return client.line();
}

describe('the talk server with --drain', () => {
  for (const backend of ['node', 'bun', 'deno']) {
    it(`--backend ${backend} --drain 5: SIGTERM frees the port at once, the live session goes on, and the server exits 0 as soon as it ends`, async () => {
      const { server, port } = await startTalkServer(cleanup, ['--backend', backend, '--drain', '5']);
      const client = await connectFrom(cleanup, port, '127.0.0.1');
      expect(await exchange(client, 'before')).toBe("You sent: 'before'");

      const signalled = Date.now();
      // The whole group, as a terminal's Ctrl-C would (bun and deno: the node that started them too).
      process.kill(-(server.process.pid as number), 'SIGTERM');
      await server.waitFor(/^talk server: draining 1 session for 5 s$/m, 3_000);
      expect(await bindable(port, 1_000)).toBe(true);
      // Nothing listens any more: a new connection is refused.
      await expect(connectFrom(cleanup, port, '127.0.0.1')).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      expect(await exchange(client, 'during the drain')).toBe("You sent: 'during the drain'");
      expect(server.process.exitCode).toBeNull();
      client.socket.end();
      await client.closed;
      expect(await server.exited, server.errors()).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(3_000);
      expect(server.output()).toMatch(/^talk server: drained in \d+\.\d s$/m);
      expect(server.output()).toMatch(/^\S+ server terminated$/m);
      expect(groupAlive(server.process.pid as number)).toBe(false);
    }, 30_000);

    it(`--backend ${backend} --drain 1: a session that does not end is closed after about 1 s, and the server exits 0`, async () => {
      const { server, port } = await startTalkServer(cleanup, ['--backend', backend, '--drain', '1']);
      const client = await connectFrom(cleanup, port, '127.0.0.1');
      expect(await exchange(client, 'hello')).toBe("You sent: 'hello'");
      const signalled = Date.now();
      process.kill(-(server.process.pid as number), 'SIGTERM');
      await server.waitFor(/^talk server: draining 1 session for 1 s$/m, 3_000);
      // The client never quits: the server closes the connection once the drain is over.
      expect(await client.line()).toBeNull();
      const closedAfter = Date.now() - signalled;
      expect(closedAfter).toBeGreaterThanOrEqual(800);
      expect(closedAfter).toBeLessThan(4_000);
      expect(await server.exited, server.errors()).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5_000);
      expect(groupAlive(server.process.pid as number)).toBe(false);
    }, 30_000);
  }

  it('without --drain, SIGTERM ends the live sessions at once, as before', async () => {
    const { server, port } = await startTalkServer(cleanup, []);
    const client = await connectFrom(cleanup, port, '127.0.0.1');
    expect(await exchange(client, 'hello')).toBe("You sent: 'hello'");
    const signalled = Date.now();
    process.kill(-(server.process.pid as number), 'SIGTERM');
    expect(await server.exited).toBe(0);
    expect(await client.line()).toBeNull();
    expect(Date.now() - signalled).toBeLessThan(2_000);
    expect(server.output()).not.toContain('draining');
  }, 30_000);

  it('--workers 2 --drain 5 (bun): the supervisor passes --drain on and waits for the worker whose session is still live', async () => {
    const parent = cleanup.script('server.js', [
      ...['--backend', 'bun', '--workers', '2', '--drain', '5'],
      ...['--service', '0', '--address', '127.0.0.1'],
    ]);
    const [, portText] = await parent.waitFor(
      /^talk server: 2 workers listening on 127\.0\.0\.1 port (\d+)/m,
      20_000,
    );
    const client = await connectFrom(cleanup, Number(portText), '127.0.0.1');
    expect(await exchange(client, 'hello')).toBe("You sent: 'hello'");
    const signalled = Date.now();
    // The supervisor only: it passes SIGTERM on to each worker.
    process.kill(parent.process.pid as number, 'SIGTERM');
    await parent.waitFor(/^talk server: draining 1 session for 5 s$/m, 5_000);
    await until('both workers to drain or stop', () =>
      parent.output().includes('draining 0 sessions for 5 s'),
    );
    expect(await exchange(client, 'still here')).toBe("You sent: 'still here'");
    expect(parent.process.exitCode).toBeNull();
    client.socket.end();
    await client.closed;
    expect(await parent.exited, parent.errors()).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(4_000);
    expect(parent.output()).toMatch(/^talk server: 2 workers stopped$/m);
  }, 40_000);
});
