import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { currentRuntime, type Runtime, runtimeCommand } from '@comm/conformance/runtimes';

/** The runtime each backend runs in. */
export const runtimeOf: Record<string, Runtime> = { node: 'node', bun: 'bun', deno: 'deno', uws: 'node' };

/**
 * Makes sure this script runs in the backend's runtime: when it does not, runs it again there,
 * with the same arguments, passes SIGINT and SIGTERM on, and exits with the child's code.
 */
export async function inRuntimeOf(backend: string, script: string): Promise<void> {
  const wanted = runtimeOf[backend];
  if (wanted === undefined || wanted === currentRuntime()) return;
  const [command, ...args] = runtimeCommand(wanted, fileURLToPath(script), process.argv.slice(2));
  const child = spawn(command as string, args, { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => {
    child.on('error', (error) => {
      console.error(`cannot start ${wanted}: ${error.message}`);
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
