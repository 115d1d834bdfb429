import { type ChildProcess, spawn } from 'node:child_process';
import { groupMembers } from './proc.js';

/** A child in its own process group: stopping it stops the group. Every group is killed on exit. */
export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly errors: () => string;
  /** The exit code (128 + n after signal n), once stdout is read to its end. */
  readonly exited: Promise<number>;
  alive(): boolean;
  /** The first match of `pattern` in stdout; rejects if the child exits first or after `ms`. */
  waitFor(pattern: RegExp, ms: number): Promise<RegExpMatchArray>;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the group is gone. */
  stop(graceMs?: number): Promise<number>;
}

const live = new Set<Child>();

export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

/** SIGKILL to every group still running (synchronous: usable from an exit handler). */
export function killAll(): void {
  for (const child of live) killGroup(child.pid, 'SIGKILL');
  live.clear();
}
process.on('exit', killAll);

const signals: Record<string, number> = { SIGTERM: 15, SIGKILL: 9, SIGINT: 2, SIGSEGV: 11, SIGABRT: 6 };

export function startChild(command: string, args: readonly string[], cwd?: string): Child {
  const child = spawn(command, args, { detached: true, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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
    if (err.length < 1 << 20) err += text;
  });
  const exitCode = new Promise<number>((resolve) => {
    child.once('error', (error) => {
      err += `cannot start ${command}: ${error.message}\n`;
      alive = false;
      resolve(127);
    });
    child.once('exit', (code, signal) => {
      alive = false;
      resolve(code ?? 128 + (signals[signal ?? ''] ?? 0));
    });
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  void exitCode.then(() => {
    live.delete(handle);
    wake();
  });
  const pid = child.pid ?? -1;
  const handle: Child = {
    pid,
    process: child,
    output: () => out,
    errors: () => err,
    exited: exitCode.then(async (code) => {
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
    async stop(graceMs = 3000) {
      if (pid > 0) {
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exitCode;
        clearTimeout(timer);
        // The leader's exit is not the group's: whatever it started goes too.
        for (let i = 0; i < 50 && groupMembers(pid).length > 0; i++) {
          killGroup(pid, i < 10 ? 'SIGTERM' : 'SIGKILL');
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      return handle.exited;
    },
  };
  if (pid > 0) live.add(handle);
  return handle;
}
