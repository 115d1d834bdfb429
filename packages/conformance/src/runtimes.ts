import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import process from 'node:process';

export type Runtime = 'node' | 'bun' | 'deno';

/** The installed binary of a runtime: the running one, the workspace's devDependency, or the PATH's. */
function binary(runtime: Runtime): string {
  if (runtime === 'node') return runtime === currentRuntime() ? process.execPath : 'node';
  if (runtime === currentRuntime()) return process.execPath;
  const require = createRequire(join(process.cwd(), 'package.json'));
  try {
    const root = dirname(require.resolve(`${runtime}/package.json`));
    // The npm packages' bin entries are shims; Deno's starts the binary as a child, which a
    // process-group kill would not reach through node. Run the binaries themselves.
    const path = runtime === 'bun' ? join(root, 'bin', 'bun.exe') : join(root, 'deno');
    if (existsSync(path)) return path;
  } catch {
    // not installed in this workspace: fall back to PATH
  }
  return runtime;
}

export function currentRuntime(): Runtime {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return 'bun';
  if (versions.deno) return 'deno';
  return 'node';
}

/** The command that runs a JavaScript file in `runtime` with every permission it may need. */
export function runtimeCommand(runtime: Runtime, script: string, args: readonly string[] = []): string[] {
  const bin = binary(runtime);
  return runtime === 'deno' ? [bin, 'run', '-A', script, ...args] : [bin, script, ...args];
}
