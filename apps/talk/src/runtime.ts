import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Only Node's own modules here: the tests load this file on its own, away from node_modules.

export type Runtime = 'node' | 'bun' | 'deno';

/** The runtime each backend runs in. */
export const runtimeOf: Record<string, Runtime> = { node: 'node', bun: 'bun', deno: 'deno', uws: 'node' };

/** This process's runtime, from the globals Bun and Deno define (an app may ask; core never does). */
export function currentRuntime(): Runtime {
  const runtimes = globalThis as { Bun?: unknown; Deno?: unknown };
  if (runtimes.Bun !== undefined) return 'bun';
  if (runtimes.Deno !== undefined) return 'deno';
  return 'node';
}

/**
 * The binary of `runtime`, wherever this script is started from: the running one; else, for Bun
 * and Deno, the npm package installed beside this app (found from this module's own location, as
 * `import` would find it, not from the current directory); else the first on PATH. Throws an
 * Error with a one-line message that says where it looked when there is none.
 */
export function runtimeBinary(runtime: Runtime): string {
  if (runtime === currentRuntime()) return process.execPath;
  const looked: string[] = [];
  if (runtime !== 'node') {
    const here = dirname(fileURLToPath(import.meta.url));
    try {
      const root = dirname(createRequire(import.meta.url).resolve(`${runtime}/package.json`));
      // The packages' bin entries are shims, and Deno's starts the binary as a child of its own,
      // out of reach of a signal to the shim: run the binaries themselves.
      const path = runtime === 'bun' ? join(root, 'bin', 'bun.exe') : join(root, 'deno');
      if (executable(path)) return path;
      looked.push(path);
    } catch {
      looked.push(`the ${runtime} package from ${here}`);
    }
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = dir === '' ? '' : join(dir, runtime);
    if (path !== '' && executable(path)) return path;
  }
  looked.push('PATH');
  throw new Error(`cannot find the ${runtime} binary (looked in ${looked.join(' and ')})`);
}

/** The command that runs a JavaScript file in `runtime` with every permission it may need. */
export function runtimeCommand(runtime: Runtime, script: string, args: readonly string[] = []): string[] {
  const bin = runtimeBinary(runtime);
  return runtime === 'deno' ? [bin, 'run', '-A', script, ...args] : [bin, script, ...args];
}

/**
 * Makes sure this script runs in the backend's runtime: when it does not, runs it again there,
 * with the same arguments, passes SIGINT and SIGTERM on, and exits with the child's code. A
 * runtime that cannot be found or started is one line on stderr and exit code 1.
 */
export async function inRuntimeOf(backend: string, script: string): Promise<void> {
  const wanted = runtimeOf[backend];
  if (wanted === undefined || wanted === currentRuntime()) return;
  let command: string[];
  try {
    command = runtimeCommand(wanted, fileURLToPath(script), process.argv.slice(2));
  } catch (error) {
    console.error(
      `cannot run --backend ${backend}: ${(error as Error).message}; run pnpm install, or put ${wanted} on PATH`,
    );
    process.exit(1);
  }
  const [bin, ...args] = command;
  const child = spawn(bin as string, args, { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => {
    child.on('error', (error) => {
      console.error(`cannot start ${wanted} (${bin}): ${error.message}`);
      resolve(1);
    });
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
  });
  process.exit(code);
}

/** This process's runtime and version, as a user would name them. */
export function runtimeDescription(): string {
  const runtime = currentRuntime();
  const versions = process.versions as Record<string, string | undefined>;
  return `${runtime} ${versions[runtime] ?? ''}`.trim();
}

function executable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
