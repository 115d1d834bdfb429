import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

export type Runtime = 'node' | 'bun' | 'deno';

/**
 * The installed binary of a runtime: the running one; else, for Bun and Deno, the npm package
 * found from this module's own location (the workspace's devDependency, wherever the suite is
 * started from), then from the current directory; else the first on PATH. Throws an Error with a
 * one-line message saying where it looked when there is none.
 */
export function runtimeBinary(runtime: Runtime): string {
  if (runtime === currentRuntime()) return process.execPath;
  const looked: string[] = [];
  if (runtime !== 'node') {
    const from = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
    for (const dir of new Set(from)) {
      try {
        const root = dirname(createRequire(join(dir, 'package.json')).resolve(`${runtime}/package.json`));
        // The npm packages' bin entries are shims; Deno's starts the binary as a child, which a
        // process-group kill would not reach through node. Run the binaries themselves.
        const path = runtime === 'bun' ? join(root, 'bin', 'bun.exe') : join(root, 'deno');
        if (executable(path)) return path;
        if (!looked.includes(path)) looked.push(path);
      } catch {
        looked.push(`the ${runtime} package from ${dir}`);
      }
    }
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = dir === '' ? '' : join(dir, runtime);
    if (path !== '' && executable(path)) return path;
  }
  const places = looked.length === 0 ? 'PATH' : `${looked.join(', ')} and PATH`;
  throw new Error(`cannot find the ${runtime} binary (looked in ${places})`);
}

export function currentRuntime(): Runtime {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return 'bun';
  if (versions.deno) return 'deno';
  return 'node';
}

/** The command that runs a JavaScript file in `runtime` with every permission it may need. */
export function runtimeCommand(runtime: Runtime, script: string, args: readonly string[] = []): string[] {
  const bin = runtimeBinary(runtime);
  return runtime === 'deno' ? [bin, 'run', '-A', script, ...args] : [bin, script, ...args];
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
