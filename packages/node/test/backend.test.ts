// The seam's promises (accept order, EADDRINUSE, half-close, partial writes, drain, a reset
// mid-write, destroy and close with a read or accept pending, accept errors at the descriptor
// limit) are checked by @comm/conformance's seam cases (`seam.*`, packages/conformance/src/seam),
// which test/conformance.test.ts runs on this backend. Here: what is particular to node:net.
import { execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { backend } from '../src/index.js';

describe('node backend seam', () => {
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
