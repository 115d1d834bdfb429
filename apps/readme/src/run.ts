import type { Runtime, Step } from './blocks.js';
import { type Child, listensOn, runtimeCommand, sleep, startChild } from './children.js';
import { connectCommStream, connectTcp, freePort, type LineConnection, refused } from './conn.js';

/** A block compiled to `script` (its `main.js`), ready to run. */
export interface Runnable {
  readonly where: string;
  readonly script: string;
  readonly dir: string;
  readonly code: string;
  readonly denoFlags: readonly string[];
}

/** How long one step may take; a drain (R23) may take its seconds on top. */
const STEP_MS = 10_000;
const START_MS = 20_000;
const EXIT_MS = 20_000;

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describeChild(child: Child): string {
  const out = child.output().trim();
  const err = child.errors().trim();
  return `${out === '' ? '' : `\n--- its stdout:\n${out.slice(-2000)}`}${err === '' ? '' : `\n--- its stderr:\n${err.slice(-2000)}`}`;
}

export interface RunningServer {
  readonly child: Child;
  readonly port: number;
}

/**
 * Starts a server block with `PORT` in its environment and waits until it listens: on the port
 * its announce line names (`... listening on ADDRESS port N`), or on `PORT`.
 */
export async function startServer(block: Runnable, runtime: Runtime): Promise<RunningServer> {
  const port = await freePort();
  const [command, args] = runtimeCommand(runtime, block.script, block.denoFlags);
  const child = startChild(command, args, { cwd: block.dir, env: { PORT: String(port) } });
  for (const until = Date.now() + START_MS; ; ) {
    const announced = child.output().match(/ listening on \S+ port (\d+)/);
    if (announced) return { child, port: Number(announced[1]) };
    if (listensOn(port)) return { child, port };
    if (!child.alive())
      throw new Error(
        `${block.where}: the server (${runtime}) exited before listening${describeChild(child)}`,
      );
    if (Date.now() > until) {
      await child.stop();
      throw new Error(
        `${block.where}: the server (${runtime}) neither listened on PORT (${port}) nor announced a port within ${START_MS} ms${describeChild(child)}`,
      );
    }
    await sleep(50);
  }
}

/** Runs a server block's steps against it, in its runtime; stops it (its process group) after. */
export async function testServer(block: Runnable, runtime: Runtime, steps: readonly Step[]): Promise<string> {
  const server = await startServer(block, runtime);
  const { child, port } = server;
  const commStream = block.code.includes("'@comm/uws'");
  const connections: LineConnection[] = [];
  let current: LineConnection | undefined;
  const connect = async () => {
    current = await (commStream ? connectCommStream : connectTcp)(port, STEP_MS);
    connections.push(current);
    return current;
  };
  const done: string[] = [];
  try {
    for (const step of steps) {
      const what = `${block.where} (${runtime}), after ${done.length === 0 ? 'starting' : done.join('; ')}: ${describeStep(step)}`;
      const fail = (message: string) => new Error(`${what}: ${message}${describeChild(child)}`);
      switch (step.do) {
        case 'connect':
          await connect();
          break;
        case 'use':
          current = connections[step.connection - 1];
          if (!current) throw fail(`there is no connection ${step.connection}`);
          break;
        case 'send':
          await (current ?? (await connect())).send(step.line);
          break;
        case 'send-long':
          await (current ?? (await connect())).send('x'.repeat(step.bytes));
          break;
        case 'expect': {
          if (!current) throw fail('no connection to read from');
          const line = await current.next(STEP_MS).catch((error: Error) => {
            throw fail(error.message);
          });
          if (line !== step.line)
            throw fail(
              `got ${line === null ? 'end of file' : JSON.stringify(line)}, not ${JSON.stringify(step.line)}`,
            );
          break;
        }
        case 'expect-eof': {
          if (!current) throw fail('no connection to read from');
          // A drain (R23) may hold a session for its seconds: wait longer than a step.
          const line = await current.next(3 * STEP_MS).catch((error: Error) => {
            throw fail(error.message);
          });
          if (line !== null) throw fail(`got the line ${JSON.stringify(line)}, not end of file`);
          break;
        }
        case 'expect-refused': {
          const until = Date.now() + STEP_MS;
          while (!(await refused(port))) {
            if (Date.now() > until) throw fail(`port ${port} still takes connections after ${STEP_MS} ms`);
            await sleep(50);
          }
          break;
        }
        case 'expect-exit': {
          const code = await within(child.exited, 3 * STEP_MS, what).catch((error: Error) => {
            throw fail(error.message);
          });
          if (code !== step.code) throw fail(`it exited with ${code}`);
          break;
        }
        case 'sigterm':
          child.process.kill('SIGTERM');
          break;
        case 'http-get': {
          const response = await within(fetch(`http://127.0.0.1:${port}${step.path}`), STEP_MS, what);
          const body = (await response.text()).trim();
          if (response.status !== 200 || body !== step.body)
            throw fail(`got ${response.status} ${JSON.stringify(body)}`);
          break;
        }
        case 'prints':
          throw fail('a server has no prints step');
      }
      done.push(describeStep(step));
    }
  } finally {
    for (const connection of connections) connection.close();
    await child.stop();
  }
  return `${runtime}: ${done.length} steps on port ${port}`;
}

function describeStep(step: Step): string {
  switch (step.do) {
    case 'connect':
    case 'sigterm':
      return step.do;
    case 'use':
      return `use ${step.connection}`;
    case 'send':
      return `send ${JSON.stringify(step.line)}`;
    case 'send-long':
      return `send-long ${step.bytes}`;
    case 'expect':
      return `expect ${JSON.stringify(step.line)}`;
    case 'expect-eof':
      return 'expect eof';
    case 'expect-refused':
      return 'expect refused';
    case 'expect-exit':
      return `expect exit ${step.code}`;
    case 'http-get':
      return `http-get ${JSON.stringify(step.path)}`;
    case 'prints':
      return `prints ${JSON.stringify(step.line)}`;
  }
}

/**
 * Runs a script (a client of `server` when given, with its port as `PORT`) to its exit; checks the
 * exit code (0 unless an `expect exit` step says otherwise) and the lines it must print, in order.
 */
export async function testScript(
  block: Runnable,
  runtime: Runtime,
  steps: readonly Step[],
  server: Runnable | null,
): Promise<string> {
  const running = server ? await startServer(server, runtime) : null;
  try {
    const env: Record<string, string> = running ? { PORT: String(running.port) } : {};
    const [command, args] = runtimeCommand(runtime, block.script, block.denoFlags);
    const child = startChild(command, args, { cwd: block.dir, env });
    try {
      const code = await within(child.exited, EXIT_MS, `${block.where} (${runtime})`).catch(
        (error: Error) => {
          throw new Error(`${error.message}: it did not exit${describeChild(child)}`);
        },
      );
      const wanted = steps.find((step) => step.do === 'expect-exit');
      const expectedCode = wanted?.do === 'expect-exit' ? wanted.code : 0;
      if (code !== expectedCode)
        throw new Error(
          `${block.where} (${runtime}) exited with ${code}, not ${expectedCode}${describeChild(child)}`,
        );
      const lines = child.output().split('\n');
      let at = 0;
      for (const step of steps) {
        if (step.do !== 'prints') continue;
        const line = step.line.replaceAll('$RUNTIME', runtime);
        const found = lines.indexOf(line, at);
        if (found < 0)
          throw new Error(
            `${block.where} (${runtime}) did not print ${JSON.stringify(line)}${at > 0 ? ' after the lines before it' : ''}${describeChild(child)}`,
          );
        at = found + 1;
      }
      return `${runtime}: exit ${code}${running ? `, a client of the server on port ${running.port}` : ''}`;
    } finally {
      await child.stop();
    }
  } finally {
    await running?.child.stop();
  }
}
