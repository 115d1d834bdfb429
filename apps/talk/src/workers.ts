import { type ChildProcess, spawn } from 'node:child_process';
import { currentRuntime, type Runtime, runtimeBinary, runtimeCommand } from './runtime.js';

/**
 * `talk-server --workers N`: this process serves nothing itself. It starts N worker processes in
 * the backend's runtime, each the same script with the same arguments plus `--reuseport`, so that
 * each is its own server on one port and the kernel spreads the connections among them (R20).
 *
 * - The first worker starts alone; the port it announces (the one the system chose, with
 *   `--service 0`) is given to the others and to every restart.
 * - Every line a worker prints passes through unchanged (its announce line, `--log-sessions`
 *   lines); once all are listening, this process prints one line of its own:
 *   `talk server: N workers listening on ADDRESS port PORT (pids P1 P2 ...)`.
 * - SIGINT or SIGTERM ends every worker (SIGTERM to its process group, SIGKILL after 10 s, or
 *   `drain` seconds and 10 s with --drain, which the workers were given too) and exits 0 once
 *   all have exited.
 * - A worker that exits otherwise is restarted; a worker that has to be restarted more than
 *   `maxRestarts` times within `restartWindowMs` ends all and exits 1, naming its exit code or
 *   signal. A worker that fails while the workers are first starting ends all at once (its own
 *   message on stderr says why: for example that this Node cannot set SO_REUSEPORT), with its
 *   exit code.
 * - A worker's standard input is a pipe from this process: a worker whose supervisor is gone
 *   (even by SIGKILL) sees end of file there and ends its server (see `watchSupervisor`).
 */
export interface WorkerOptions {
  readonly count: number;
  readonly runtime: Runtime;
  /** The server script, a path. */
  readonly script: string;
  /** The command line without `--workers`; `--service` is replaced once the port is known. */
  readonly args: readonly string[];
  /** The workers' `--drain` seconds, if any: how much longer to wait for them to stop. */
  readonly drain?: number | null;
  readonly maxRestarts?: number;
  readonly restartWindowMs?: number;
}

/** The environment variable that tells a server it is a worker, with the supervisor's pid. */
export const WORKER_ENV = 'COMM_TALK_WORKER_OF';

const STOP_GRACE_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
const ANNOUNCE = /^(.*) server listening on (\S+) port (\d+)$/;

interface Worker {
  readonly index: number;
  child: ChildProcess;
  /** Resolves with the announced [address, port], or rejects if the worker exits first. */
  listening: Promise<[string, number]>;
  /** Settles once the worker has exited and its output has been passed on. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote on stderr, up to a few KiB: whether it said why it failed. */
  errors: string;
  restarts: number[];
}

export async function runWorkers(options: WorkerOptions): Promise<never> {
  const maxRestarts = options.maxRestarts ?? 5;
  const graceMs = STOP_GRACE_MS + (options.drain ?? 0) * 1000;
  const windowMs = options.restartWindowMs ?? 60_000;
  const workers: Worker[] = [];
  let stopping = false;
  // Until every worker has listened once, a worker that exits is a failure to start, not a crash.
  let running = false;
  let port: number | null = null;

  const say = (line: string) => process.stdout.write(`talk server: ${line}\n`);
  const complain = (line: string) => process.stderr.write(`talk server: ${line}\n`);
  try {
    runtimeBinary(options.runtime);
  } catch (error) {
    complain(`${(error as Error).message}; run pnpm install, or put ${options.runtime} on PATH`);
    process.exit(1);
  }

  const argsFor = (fixedPort: number | null): string[] => {
    const args =
      fixedPort === null
        ? [...options.args]
        : [...withoutValue(options.args, 'service'), '--service', String(fixedPort)];
    // The supervisor reads the port from the announce line, so workers always announce.
    return [...args, '--reuseport', '--announce'];
  };

  const start = (index: number, restarts: number[] = []): Worker => {
    const [command, ...args] = runtimeCommand(options.runtime, options.script, argsFor(port));
    const child = spawn(command as string, args, {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, [WORKER_ENV]: String(process.pid) },
    });
    const worker = { index, child, restarts, errors: '' } as Worker;
    let announced: (where: [string, number]) => void = () => {};
    let failed: (error: Error) => void = () => {};
    worker.listening = new Promise((resolve, reject) => {
      announced = resolve;
      failed = reject;
    });
    // Nobody may wait for it (a restart that fails again is handled by its exit).
    worker.listening.catch(() => {});
    passLines(child.stdout, process.stdout, (line) => {
      const match = ANNOUNCE.exec(line);
      if (match) announced([match[2] as string, Number(match[3])]);
    });
    passLines(child.stderr, process.stderr, (line) => {
      if (worker.errors.length < 4096) worker.errors += `${line}\n`;
    });
    // Its stdin is only watched for end of file; a worker that has gone makes writes fail, never us.
    child.stdin?.on('error', () => {});
    worker.closed = new Promise((resolve) => {
      child.once('error', (error) => {
        complain(`cannot start worker ${index} (${command}): ${error.message}`);
        resolve({ code: 127, signal: null });
      });
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    void worker.closed.then((how) => {
      // Anything it left in its process group goes with it.
      killGroup(child, 'SIGKILL');
      failed(new Error(`worker ${index} exited (${describeExit(how)}) before listening`));
      if (stopping) return;
      if (running) {
        void restart(worker, how);
        return;
      }
      // Its own message (for example the startup condition) already says why, in one line.
      if (worker.errors.trim() === '')
        complain(`worker ${index} exited (${describeExit(how)}) while the workers were starting`);
      void stopAll(how.code !== null && how.code !== 0 ? how.code : 1);
    });
    return worker;
  };

  const restart = async (old: Worker, how: { code: number | null; signal: NodeJS.Signals | null }) => {
    const now = Date.now();
    const recent = old.restarts.filter((t) => now - t < windowMs);
    if (recent.length >= maxRestarts) {
      complain(
        `worker ${old.index} (pid ${old.child.pid}) exited (${describeExit(how)}) after ${recent.length} restarts within ${windowMs / 1000} s; stopping all workers`,
      );
      await stopAll(1);
      return;
    }
    complain(`worker ${old.index} (pid ${old.child.pid}) exited (${describeExit(how)}); restarting it`);
    const worker = start(old.index, [...recent, now]);
    workers[old.index - 1] = worker;
    try {
      await worker.listening;
      say(`worker ${worker.index} restarted, pid ${worker.child.pid}`);
    } catch {
      // Its exit restarts it again, within the limit.
    }
  };

  let stopped: Promise<never> | null = null;
  const stopAll = (code: number): Promise<never> => {
    stopping = true;
    stopped ??= (async () => {
      if (code === 0 && options.drain != null)
        say(
          `stopping ${workers.length} worker${workers.length === 1 ? '' : 's'}, each draining its sessions for up to ${options.drain} s`,
        );
      await Promise.all(
        workers.map(async (worker) => {
          killGroup(worker.child, 'SIGTERM');
          const timer = setTimeout(() => {
            complain(
              `worker ${worker.index} (pid ${worker.child.pid}) did not stop within ${graceMs / 1000} s; killing it`,
            );
            killGroup(worker.child, 'SIGKILL');
          }, graceMs);
          await worker.closed;
          clearTimeout(timer);
        }),
      );
      if (code === 0) say(`${workers.length} worker${workers.length === 1 ? '' : 's'} stopped`);
      process.exit(code);
    })();
    return stopped;
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAll(0));

  say(
    `starting ${options.count} worker${options.count === 1 ? '' : 's'} in ${options.runtime} (this supervisor: ${currentRuntime()}, pid ${process.pid})`,
  );
  let where: [string, number] | null = null;
  for (let index = 1; index <= options.count && !stopping; index++) {
    const worker = start(index);
    workers.push(worker);
    const timer = setTimeout(() => {
      complain(`worker ${index} did not announce within ${START_TIMEOUT_MS / 1000} s`);
      void stopAll(1);
    }, START_TIMEOUT_MS);
    try {
      where = await worker.listening;
      port ??= where[1];
    } catch {
      // Its exit has begun stopping all.
    } finally {
      clearTimeout(timer);
    }
  }
  if (stopping) return stopped ?? stopAll(0);
  running = true;
  const [address] = where as [string, number];
  say(
    `${options.count} worker${options.count === 1 ? '' : 's'} listening on ${address} port ${port} (pids ${workers.map((w) => w.child.pid).join(' ')})`,
  );
  // Runs until a signal or too many restarts call process.exit.
  return new Promise<never>(() => {});
}

/**
 * In a worker (see `WORKER_ENV`): calls `stop` when the supervisor has gone, which a worker sees
 * as end of file on its standard input, however the supervisor ended.
 */
export function watchSupervisor(stop: () => void): void {
  if (process.env[WORKER_ENV] === undefined) return;
  process.stdin.on('data', () => {});
  process.stdin.once('end', stop);
  process.stdin.once('close', stop);
  process.stdin.once('error', stop);
}

/** The arguments without `--NAME VALUE` / `--NAME=VALUE`. */
export function withoutValue(args: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === `--${name}`) i++;
    else if (!arg.startsWith(`--${name}=`)) out.push(arg);
  }
  return out;
}

function describeExit({ code, signal }: { code: number | null; signal: NodeJS.Signals | null }): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Passes a child's output on line by line (lines of several workers never interleave) and shows each line to `see`. */
function passLines(
  from: NodeJS.ReadableStream | null,
  to: NodeJS.WritableStream,
  see: (line: string) => void,
): void {
  if (!from) return;
  let rest = '';
  from.setEncoding('utf8');
  from.on('data', (text: string) => {
    const lines = (rest + text).split('\n');
    rest = lines.pop() as string;
    if (lines.length === 0) return;
    to.write(`${lines.join('\n')}\n`);
    for (const line of lines) see(line);
  });
  from.on('end', () => {
    if (rest === '') return;
    to.write(`${rest}\n`);
    see(rest);
  });
}
