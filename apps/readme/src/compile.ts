import { realpathSync } from 'node:fs';
import { sep } from 'node:path';
import ts from 'typescript';
import { type Runtime, repoRoot } from './blocks.js';

/**
 * What a block is type-checked against. `node`: @types/node and ES2023. `web`, for Bun and Deno:
 * no @types/node at all, only ES2023 and the web platform's globals (the DOM library: `console`,
 * timers, `TextEncoder`, `fetch`), which both runtimes have; so a declaration of ours that needs
 * `node:` types fails here, as it would for a Bun or Deno user without @types/node.
 */
export type TypeEnvironment = 'node' | 'web';

/** The environments a block is checked in: each of its runtimes' (a block for all three: both). */
export function typeEnvironments(runtimes: readonly Runtime[]): TypeEnvironment[] {
  const environments: TypeEnvironment[] = [];
  if (runtimes.includes('node')) environments.push('node');
  if (runtimes.includes('bun') || runtimes.includes('deno')) environments.push('web');
  return environments;
}

export interface Compiled {
  /** Errors, each `file(line,col): message`, with the line counted in the README where the file is a block. */
  readonly errors: string[];
}

/** Where each block's file sits, to report its errors in README lines. */
export interface Source {
  readonly file: string;
  /** The README and the line of its opening fence. */
  readonly readme: string;
  readonly fence: number;
}

/** Our own declarations: errors in them count; those of third-party packages (vitest, ws) do not. */
function ours(fileName: string): boolean {
  const real = (() => {
    try {
      return realpathSync(fileName);
    } catch {
      return fileName;
    }
  })();
  return real.startsWith(repoRoot) && !real.split(sep).includes('node_modules');
}

/**
 * Type-checks the files with `tsc --strict` (through the compiler API, all at once) and emits each
 * `main.ts` as `main.js` beside it. Each file is a module of its own, so one program checks them all.
 */
export function compile(sources: readonly Source[], environment: TypeEnvironment): Map<string, Compiled> {
  const options: ts.CompilerOptions = {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: environment === 'node' ? ['lib.es2023.d.ts'] : ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: environment === 'node' ? ['node'] : [],
    esModuleInterop: true,
    isolatedModules: true,
    skipLibCheck: false,
    sourceMap: false,
    declaration: false,
  };
  const program = ts.createProgram(
    sources.map((source) => source.file),
    options,
  );
  const emitted = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  const closures = new Map<string, Set<string>>();
  const results = new Map<string, Compiled>(sources.map((source) => [source.file, { errors: [] }]));
  const byFile = new Map(sources.map((source) => [source.file, source]));
  for (const diagnostic of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const file = diagnostic.file;
    if (file && !byFile.has(file.fileName) && !ours(file.fileName)) continue;
    let text: string;
    if (file && diagnostic.start !== undefined) {
      const { line, character } = file.getLineAndCharacterOfPosition(diagnostic.start);
      const source = byFile.get(file.fileName);
      text = source
        ? `${source.readme}:${source.fence + 1 + line}:${character + 1}: TS${diagnostic.code}: ${message}`
        : `${file.fileName.replace(repoRoot, '')}:${line + 1}:${character + 1}: TS${diagnostic.code}: ${message}`;
    } else text = `TS${diagnostic.code}: ${message}`;
    // An error in one of our declarations fails the blocks that import it, directly or not.
    const targets = !file
      ? [...results.keys()]
      : byFile.has(file.fileName)
        ? [file.fileName]
        : [...results.keys()].filter((block) => reached(block).has(file.fileName));
    for (const target of targets) results.get(target)?.errors.push(text);
  }
  return results;

  /** The files a block imports, directly or through others (memoized per program). */
  function reached(start: string): Set<string> {
    const known = closures.get(start);
    if (known) return known;
    const seen = new Set<string>([start]);
    const queue = [start];
    while (queue.length > 0) {
      const file = queue.pop() as string;
      const text = program.getSourceFile(file)?.text;
      if (text === undefined) continue;
      for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
        const resolved = ts.resolveModuleName(
          fileName,
          file,
          options,
          ts.sys,
          undefined,
          undefined,
          ts.ModuleKind.ESNext,
        ).resolvedModule?.resolvedFileName;
        if (resolved !== undefined && !seen.has(resolved)) {
          seen.add(resolved);
          queue.push(resolved);
        }
      }
    }
    closures.set(start, seen);
    return seen;
  }
}
