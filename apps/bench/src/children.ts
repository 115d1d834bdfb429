import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** A child in its own process group: stopping it stops the group. Every child is stopped on exit. */
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
  write(text: string): void;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the whole group is gone. */
  stop(graceMs?: number): Promise<number>;
}

const live = new Set<Child>();

/** Every live process (not a zombie) in a process group, from /proc (Linux). */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // After the command name: state, ppid, pgrp.
    const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(group) === pgid && state !== 'Z') pids.push(Number(name));
  }
  return pids;
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
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
    // A child that floods stderr must not fill this process: its first MiB is enough to tell why.
    if (err.length < 1 << 20) err += text;
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
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
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
      const pid = child.pid;
      if (pid === undefined) return exited;
      if (alive) {
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // The leader's exit is not the group's: whatever it started goes too.
      for (let i = 0; i < 50 && groupMembers(pid).length > 0; i++) {
        killGroup(pid, i < 10 ? 'SIGTERM' : 'SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return handle.exited;
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
