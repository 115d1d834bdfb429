import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The command that runs one of this app's scripts (`server.js`, `client.js`) with a backend. */
export function scriptCommand(script: string, args: readonly string[]): [string, string[]] {
  return [process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args]];
}

/** A child in its own process group, so that stopping it stops everything it started. */
export interface Child {
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly errors: () => string;
  readonly exited: Promise<number>;
  /** The first match of `pattern` in stdout; rejects if the child exits first or after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export function startChild(
  command: string,
  args: readonly string[],
  options: { echo?: boolean; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Child {
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  let out = '';
  let err = '';
  const wakers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    if (options.echo) process.stdout.write(text);
    for (const wake of wakers) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    err += text;
    if (options.echo) process.stderr.write(text);
  });
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))),
  );
  let alive = true;
  void exited.then(() => {
    alive = false;
    for (const wake of wakers) wake();
  });
  return {
    process: child,
    output: () => out,
    errors: () => err,
    exited,
    async waitFor(pattern, ms = 15_000) {
      const until = Date.now() + ms;
      for (;;) {
        const match = out.match(pattern);
        if (match) return match;
        if (!alive) throw new Error(`${command} exited before printing ${pattern}: ${err.trim()}`);
        if (Date.now() > until) throw new Error(`${command} printed no ${pattern} within ${ms} ms`);
        await new Promise<void>((resolve) => {
          const wake = () => {
            wakers.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, 100);
          wakers.add(wake);
        });
      }
    },
    async stop(signal = 'SIGTERM') {
      if (alive && child.pid !== undefined) {
        try {
          process.kill(-child.pid, signal);
        } catch {
          child.kill(signal);
        }
      }
      return exited;
    },
  };
}
