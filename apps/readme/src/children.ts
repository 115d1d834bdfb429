import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Runtime } from './blocks.js';

const packageDir = fileURLToPath(new URL('../', import.meta.url));

/**
 * The runtime's own binary, never a shim that starts it as a child (Deno's npm bin does): the
 * process started is the one that runs the example, and its process group holds nothing else.
 */
export function runtimeCommand(
  runtime: Runtime,
  script: string,
  denoFlags: readonly string[],
): [string, string[]] {
  switch (runtime) {
    case 'node':
      return [process.execPath, [script]];
    case 'bun':
      return [`${packageDir}node_modules/bun/bin/bun.exe`, [script]];
    case 'deno':
      return [`${packageDir}node_modules/deno/deno`, ['run', ...denoFlags, script]];
  }
}

/** A child in its own process group; `stop()` kills the whole group. */
export interface Child {
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly errors: () => string;
  /** Resolves to the exit code (128 + n for a signal). */
  readonly exited: Promise<number>;
  readonly alive: () => boolean;
  /** The first match of `pattern` in stdout; rejects if the child exits first, or after `ms`. */
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>;
  stop(): Promise<number>;
}

const running = new Set<Child>();

/** Kills every child still running (their whole process groups). For `afterAll` and process exit. */
export function killAll(): void {
  for (const child of running) killGroup(child.process, 'SIGKILL');
  running.clear();
}
process.once('exit', killAll);

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function startChild(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: Record<string, string> },
): Child {
  const child = spawn(command, args, {
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...options.env },
  });
  let out = '';
  let err = '';
  let alive = true;
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const w of wakers) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  const exited = new Promise<number>((resolve) => {
    child.once('error', (error) => {
      err += `${error.message}\n`;
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (SIGNALS[signal ?? ''] ?? 0)));
  });
  const handle: Child = {
    process: child,
    output: () => out,
    errors: () => err,
    exited,
    alive: () => alive,
    async waitFor(pattern, ms) {
      const until = Date.now() + ms;
      for (;;) {
        const match = out.match(pattern);
        if (match) return match;
        if (!alive) throw new Error(`it exited before printing ${pattern}:\n${err.trim()}`);
        if (Date.now() > until) throw new Error(`it printed no ${pattern} within ${ms} ms`);
        await new Promise<void>((resolve) => {
          const done = () => {
            wakers.delete(done);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, 50);
          wakers.add(done);
        });
      }
    },
    async stop() {
      if (alive) killGroup(child, 'SIGTERM');
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([
        exited,
        new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), 3000);
        }),
      ]);
      clearTimeout(timer);
      killGroup(child, 'SIGKILL');
      running.delete(handle);
      return code ?? exited;
    },
  };
  void exited.then(() => {
    alive = false;
    wake();
  });
  running.add(handle);
  return handle;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether something listens on TCP `port` (asked of the kernel with `ss`: no connection is made). */
export function listensOn(port: number): boolean {
  const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  return out.trim() !== '';
}

/** Whether a process of the group `pgid` is left. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
