import { execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { backend } from '../src/index.js';

// The seam itself, below the contract: what core relies on from this backend.
describe('node backend seam', () => {
  it('listens, accepts in order, reads and writes', async () => {
    const listener = await backend.listen({
      host: '127.0.0.1',
      port: 0,
      family: 4,
      ipv6Only: false,
      backlog: 5,
      reusePort: false,
    });
    try {
      const a = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
      const b = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
      const first = await listener.accept();
      const second = await listener.accept();
      expect(first?.remote.port).toBe(a.local.port);
      expect(second?.remote.port).toBe(b.local.port);
      await a.write(new TextEncoder().encode('hi'));
      await a.end();
      expect(new TextDecoder().decode((await first?.read()) ?? undefined)).toBe('hi');
      expect(await first?.read()).toBeNull();
      for (const c of [a, b, first, second]) c?.destroy();
    } finally {
      await listener.close();
    }
    expect(await listener.accept()).toBeNull();
  });

  it('binding a port in use fails with EADDRINUSE', async () => {
    const spec = {
      host: '127.0.0.1',
      port: 0,
      family: 4 as const,
      ipv6Only: false,
      backlog: 5,
      reusePort: false,
    };
    const listener = await backend.listen(spec);
    try {
      await expect(backend.listen({ ...spec, port: listener.local.port })).rejects.toMatchObject({
        code: 'EADDRINUSE',
      });
    } finally {
      await listener.close();
    }
  });

  it('an aborted connect gives the attempt up: no SYN-SENT socket is left in the kernel', async () => {
    // A listener that never accepts, its one-place queue full: further SYNs are dropped.
    const child = spawn('python3', [
      '-c',
      "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(30)",
    ]);
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    const port = await new Promise<number>((resolve) =>
      child.stdout.once('data', (d) => resolve(Number(String(d)))),
    );
    const fillers = Array.from({ length: 3 }, () =>
      net.connect({ host: '127.0.0.1', port }).on('error', () => {}),
    );
    onTestFinished(() => {
      for (const filler of fillers) filler.destroy();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const synSent = () =>
      execFileSync('ss', ['-Htn', 'state', 'syn-sent', `dport = :${port}`], { encoding: 'utf8' }).trim();
    const abandon = new AbortController();
    const attempt = backend.connect({ host: '127.0.0.1', port, family: 4, signal: abandon.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = synSent().split('\n').filter(Boolean).length;
    abandon.abort();
    await expect(attempt).rejects.toMatchObject({ name: 'AbortError' });
    const after = synSent().split('\n').filter(Boolean).length;
    expect(after).toBe(before - 1);
  }, 15_000);
});
