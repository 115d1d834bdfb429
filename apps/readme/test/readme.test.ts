// Every code block in every README is a test (issue 12). Each fenced block must say how it is
// tested in an HTML comment right before it (apps/readme/README.md lists the kinds); a block
// without one fails here, so no example can silently escape.
import { mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { calledNames } from '../src/api.js';
import {
  ANNOTATION_HELP,
  type Annotation,
  allBlocks,
  type Block,
  parseAnnotation,
  type Runtime,
  repoRoot,
  SHELL_LANGS,
  slug,
  TS_LANGS,
  where,
} from '../src/blocks.js';
import { killAll } from '../src/children.js';
import {
  type Compiled,
  compile,
  type Source,
  type TypeEnvironment,
  typeEnvironments,
} from '../src/compile.js';
import { type Runnable, testScript, testServer } from '../src/run.js';
import { checkCommand, commandLines } from '../src/shell.js';

const blocks = allBlocks();
const workDir = join(repoRoot, 'apps/readme/.work', `run-${process.pid}`);

/** The annotation of each block, or why it has none that parses. */
const annotations = new Map<Block, Annotation | Error>(
  blocks.map((block) => {
    if (block.annotationText === null)
      return [
        block,
        new Error(
          `${where(block)}: a \`\`\`${block.lang || '(no language)'} block without an \`<!-- example: ... -->\` annotation: ${ANNOTATION_HELP}`,
        ),
      ];
    try {
      return [block, parseAnnotation(block.annotationText, block.readme)];
    } catch (error) {
      return [
        block,
        new Error(`${where(block)}: its annotation "${block.annotationText}": ${(error as Error).message}`),
      ];
    }
  }),
);

function compiledKind(
  annotation: Annotation | Error,
): annotation is Extract<Annotation, { runtimes: readonly Runtime[] }> {
  return !(annotation instanceof Error) && 'runtimes' in annotation;
}

/** What each block came to, for the summary printed at the end. */
const tally = new Map<string, string[]>();
function count(kind: string, line: string): void {
  tally.set(kind, [...(tally.get(kind) ?? []), line]);
}

const compiled = new Map<Block, Compiled>();
const environmentName: Record<TypeEnvironment, string> = {
  node: 'Node (@types/node)',
  web: 'Bun and Deno (no @types/node)',
};
const runnable = new Map<Block, Runnable>();

beforeAll(() => {
  rmSync(workDir, { recursive: true, force: true });
  const groups = new Map<'node' | 'web', Source[]>();
  const sourceOf = new Map<string, Block>();
  for (const block of blocks) {
    const annotation = annotations.get(block) as Annotation | Error;
    if (!compiledKind(annotation) || !TS_LANGS.has(block.lang)) continue;
    // Each block in a directory of its own inside this package, so that `@comm/*` resolve as they
    // would for a user who installed them; `main.ts` is compiled to `main.js` beside it.
    const dir = join(workDir, slug(block));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'main.ts');
    writeFileSync(file, block.code);
    sourceOf.set(file, block);
    runnable.set(block, {
      where: where(block),
      script: join(dir, 'main.js'),
      dir,
      code: block.code,
      denoFlags: annotation.kind === 'compile-only' ? [] : annotation.denoFlags,
    });
    for (const environment of typeEnvironments(annotation.runtimes))
      groups.set(environment, [
        ...(groups.get(environment) ?? []),
        { file, readme: block.readme, fence: block.line },
      ]);
  }
  for (const [environment, sources] of groups)
    for (const [file, result] of compile(sources, environment)) {
      const block = sourceOf.get(file) as Block;
      const errors = result.errors.map((error) => `${environmentName[environment]}: ${error}`);
      compiled.set(block, { errors: [...(compiled.get(block)?.errors ?? []), ...errors] });
    }
}, 120_000);

afterAll(() => {
  killAll();
  if (!process.env.KEEP_README_WORK) {
    rmSync(workDir, { recursive: true, force: true });
    try {
      rmdirSync(dirname(workDir)); // .work itself, unless another run is using it
    } catch {}
  }
  const total = [...tally.values()].reduce((sum, lines) => sum + lines.length, 0);
  const lines = [`README examples: ${total} blocks checked of ${blocks.length}`];
  for (const [kind, entries] of tally) {
    lines.push(`  ${kind}: ${entries.length}`);
    if (kind.startsWith('not run') || kind.startsWith('compile-only'))
      for (const entry of entries) lines.push(`    ${entry}`);
  }
  console.log(lines.join('\n'));
});

/**
 * A session example must close its stream in `finally` (issue 12): a block that reads lines closes
 * its stream inside a `finally`, so that an exception (a RangeError, a reset) leaks no socket.
 */
function closesInFinally(block: Block): void {
  if (/\.readLine\(/.test(block.code) && !/finally\s*\{[^}]*\.close\(/.test(block.code))
    throw new Error(
      `${where(block)}: it reads lines but does not close its stream in \`finally\`: an exception would leak the socket`,
    );
}

function typeChecked(block: Block): void {
  closesInFinally(block);
  const result = compiled.get(block);
  if (!result)
    throw new Error(
      `${where(block)}: only TypeScript or JavaScript blocks can be compiled, not \`\`\`${block.lang}`,
    );
  if (result.errors.length > 0)
    throw new Error(`${where(block)}: tsc --strict fails:\n${result.errors.join('\n')}`);
}

/** The README's server block before `block`, for `client-of previous`. */
function previousServer(block: Block): Block {
  const before = blocks.filter((other) => {
    const annotation = annotations.get(other);
    return (
      other.readme === block.readme &&
      other.line < block.line &&
      !(annotation instanceof Error) &&
      annotation?.kind === 'server'
    );
  });
  const server = before[before.length - 1];
  if (!server) throw new Error(`${where(block)}: client-of previous, but no server block comes before it`);
  return server;
}

async function configOf(fn: string, args: readonly (string | number)[]): Promise<string> {
  // The configurations apps/talk's proxy tests run HAProxy and nginx with (@comm/talk/proxy-configs).
  const configs = (await import('@comm/talk/proxy-configs')) as Record<string, unknown>;
  const make = configs[fn];
  if (typeof make !== 'function') throw new Error(`@comm/talk/proxy-configs has no function ${fn}`);
  return (make as (...a: readonly (string | number)[]) => string)(...args);
}

function title(block: Block): string {
  const text = block.annotationText ?? 'NOT ANNOTATED';
  return `line ${block.line} ${block.lang || 'text'}: ${text.length > 90 ? `${text.slice(0, 87)}...` : text}`;
}

const readmes = [...new Set(blocks.map((block) => block.readme))];

for (const readme of readmes)
  describe(readme, () => {
    for (const block of blocks.filter((b) => b.readme === readme))
      test(title(block), async () => {
        const annotation = annotations.get(block) as Annotation | Error;
        if (annotation instanceof Error) throw annotation;
        switch (annotation.kind) {
          case 'not-run':
            console.log(`not run: ${where(block)} — ${annotation.reason}`);
            count('not run', `${where(block)}: ${annotation.reason}`);
            return;
          case 'compile-only':
            typeChecked(block);
            console.log(`compiled, not run: ${where(block)} — ${annotation.reason}`);
            count('compile-only (type-checked, not run)', `${where(block)}: ${annotation.reason}`);
            return;
          case 'server': {
            typeChecked(block);
            for (const runtime of annotation.runtimes)
              console.log(
                `${where(block)}: ${await testServer(runnable.get(block) as Runnable, runtime, annotation.steps)}`,
              );
            count('servers (type-checked, run, talked to)', where(block));
            return;
          }
          case 'client':
          case 'run': {
            typeChecked(block);
            const server = annotation.kind === 'client' ? previousServer(block) : null;
            if (server && !runnable.has(server))
              throw new Error(`${where(block)}: its server ${where(server)} was not compiled`);
            if (server) typeChecked(server);
            for (const runtime of annotation.runtimes)
              console.log(
                `${where(block)}: ${await testScript(
                  runnable.get(block) as Runnable,
                  runtime,
                  annotation.steps,
                  server ? (runnable.get(server) as Runnable) : null,
                )}`,
              );
            count(
              annotation.kind === 'client'
                ? 'clients (type-checked, run against their server)'
                : 'scripts (type-checked, run)',
              where(block),
            );
            return;
          }
          case 'commands': {
            if (!SHELL_LANGS.has(block.lang) && block.lang !== '')
              throw new Error(
                `${where(block)}: commands are checked in shell blocks, not \`\`\`${block.lang}`,
              );
            const lines = commandLines(block.code);
            expect(lines.length, `${where(block)} has no command`).toBeGreaterThan(0);
            const problems = lines.flatMap((line) =>
              checkCommand(line).map((problem) => `${line}\n    ${problem}`),
            );
            if (problems.length > 0) throw new Error(`${where(block)}:\n  ${problems.join('\n  ')}`);
            count(
              'shell commands (scripts, files, flags checked, not run)',
              `${where(block)}: ${lines.length}`,
            );
            return;
          }
          case 'config': {
            const wanted = await configOf(annotation.fn, annotation.args);
            expect(block.code.trimEnd(), `${where(block)} is not what ${annotation.fn} gives the tests`).toBe(
              wanted.trimEnd(),
            );
            count("configurations (the tests' own, compared)", where(block));
            return;
          }
          case 'api': {
            const module = (await import(annotation.module)) as Record<string, unknown>;
            const names = calledNames(block.code);
            const missing = names.filter((name) => !(name in module));
            expect(missing, `${where(block)} lists what ${annotation.module} does not export`).toEqual([]);
            count('API listings (every name exported)', `${where(block)}: ${names.length} names`);
            return;
          }
        }
      });
  });
