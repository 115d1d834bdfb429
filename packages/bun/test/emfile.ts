import { type ChildProcess, spawn } from 'node:child_process';
import process from 'node:process';
import { within } from '@comm/conformance';

/**
 * Starts `fixtures/emfile-server.mjs` in Bun under `ulimit -n nofile` (with `extra` arguments: a
 * certificate and key for TLS), as its own process group killed by `cleanups`; resolves once it
 * has announced its port.
 */
export async function startEmfileServer(
  nofile: number,
  extra: readonly string[],
  cleanups: Array<() => unknown>,
): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const fixture = new URL('fixtures/emfile-server.mjs', import.meta.url).pathname;
  const entry = new URL('../dist/index.js', import.meta.url).pathname;
  // The shell lowers RLIMIT_NOFILE, then becomes Bun (exec): the child's pid is Bun's.
  const child = spawn(
    'sh',
    ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, fixture, entry, ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  cleanups.push(() => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // Gone already.
    }
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  const port = await within(
    (async () => {
      for (;;) {
        const found = /^ANNOUNCE (\d+)$/m.exec(out);
        if (found) return Number(found[1]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })(),
    10_000,
    'the announce line',
  );
  return { child, port, output: () => out };
}
