import { type ChildProcess, spawn } from 'node:child_process';

/** A child in its own process group: stopping it stops the group. Every child is stopped on exit. */
export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly errors: () => string;
  readonly exited: Promise<number>;
  alive(): boolean;
  /** The first match of `pattern` in stdout; rejects if the child exits first or after `ms`. */
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>;
  write(text: string): void;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the child has exited. */
  stop(graceMs?: number): Promise<number>;
}

const live = new Set<Child>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}

/** SIGKILL to every child still running (synchronous: usable from an exit handler). */
export function killAll(): void {
  for (const child of live) killGroup(child.pid, 'SIGKILL');
  live.clear();
}
process.on('exit', killAll);

export function startChild(
  command: string,
  args: readonly string[],
  options: { stdin?: boolean; cwd?: string } = {},
): Child {
  const child = spawn(command, args, {
    detached: true,
    cwd: options.cwd,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let alive = true;
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const w of [...wakers]) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  child.stdin?.on('error', () => {});
  const exited = new Promise<number>((resolve) => {
    child.once('error', (error) => {
      err += `cannot start ${command}: ${error.message}\n`;
      alive = false;
      resolve(127);
    });
    child.once('exit', (code, signal) => {
      alive = false;
      resolve(code ?? (signal ? 128 : 1));
    });
  });
  // stdout may still hold the last lines when 'exit' comes; 'close' is when it is all read.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  void exited.then(() => {
    live.delete(handle);
    wake();
  });
  const handle: Child = {
    pid: child.pid ?? -1,
    process: child,
    output: () => out,
    errors: () => err,
    exited: exited.then(async (code) => {
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
      return code;
    }),
    alive: () => alive,
    async waitFor(pattern, ms) {
      const until = Date.now() + ms;
      for (;;) {
        const match = out.match(pattern);
        if (match) return match;
        if (!alive)
          throw new Error(`${command} exited before printing ${pattern}: ${err.trim().slice(-500)}`);
        if (Date.now() > until) throw new Error(`${command} printed no ${pattern} within ${ms} ms`);
        await new Promise<void>((resolve) => {
          const done = () => {
            wakers.delete(done);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, 100);
          wakers.add(done);
        });
      }
    },
    write(text) {
      child.stdin?.write(text);
    },
    async stop(graceMs = 3000) {
      if (alive && child.pid !== undefined) {
        killGroup(child.pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid as number, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
  if (child.pid !== undefined) live.add(handle);
  return handle;
}

/** Runs a command to its end; kills its group after `ms`. */
export async function run(
  command: string,
  args: readonly string[],
  ms: number,
): Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }> {
  const child = startChild(command, args);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void child.stop(1000);
  }, ms);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, stdout: child.output(), stderr: child.errors(), timedOut };
}
