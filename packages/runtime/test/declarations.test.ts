import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// What a user compiles and autocompletes: the names each backend package exports are the
// contract's, and its declarations type-check without @types/node (a Bun or Deno project has
// the web's globals, not Node's modules).

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** The contract's names, as every backend package exports them (README, "API"). */
const CONTRACT = [
  'ConnectionError',
  'Ipv6Address',
  'LightweightProcess',
  'ListeningSocket',
  'ServerProcess',
  'SocketHandle',
  'SocketStream',
  'SslClientContext',
  'SslServerContext',
  'StartupCondition',
  'attachSsl',
  'backend',
  'createSslClientContext',
  'createSslServerContext',
  'getServiceEntry',
  'getSocketAddress',
  'getSocketPeerAddress',
  'ipAddressString',
  'ipv6AddressString',
  'openTcpStream',
  'parseIpv6Address',
  'processRunFunction',
  'serverTerminate',
  'socketStreamAddress',
  'socketStreamPeerAddress',
  'startUpServer',
  'stringIpAddress',
].sort();

describe('the public entry points', () => {
  for (const name of ['@comm/node', '@comm/runtime'])
    it(`${name} exports the contract's names and nothing else`, async () => {
      const module = (await import(name)) as Record<string, unknown>;
      expect(Object.keys(module).sort()).toEqual(CONTRACT);
    });

  it('@comm/core exports the contract without the bound functions; @comm/core/backend adds the seam', async () => {
    const core = Object.keys(await import('@comm/core')).sort();
    expect(core).toEqual(
      CONTRACT.filter((n) => !['backend', 'openTcpStream', 'serverTerminate', 'startUpServer'].includes(n)),
    );
    const seam = Object.keys(await import('@comm/core/backend'));
    for (const name of ['bindBackend', 'AcceptQueue', 'PullQueue', 'ReadAhead', 'acceptFailurePolicy'])
      expect(seam).toContain(name);
  });
});

// A consumer compiled with no Node types at all (types: [], the DOM library standing in for
// Bun's and Deno's web globals), strict, checking the libraries' declarations too.
const consumer = `
import * as bun from '@comm/bun';
import * as deno from '@comm/deno';
import * as node from '@comm/node';
import * as runtime from '@comm/runtime';
import { ConnectionError, type ServerProcess, type SocketStream, startUpServer, openTcpStream, serverTerminate, processRunFunction, type LightweightProcess } from '@comm/runtime';
// @ts-expect-error internals are not on the public entry point
import { PullQueue } from '@comm/runtime';
// @ts-expect-error nor is the binding of a backend
import { bindBackend } from '@comm/core';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined { return undefined; }

export async function client(): Promise<string | null> {
  // errorp true: never null, so no check is needed before using it (TS18047 otherwise).
  const talk = await openTcpStream('localhost', 10243, { errorp: true, lineLimit: 4096 });
  assertType<Equal<typeof talk, SocketStream>>();
  const maybe = await openTcpStream('localhost', 10243);
  assertType<Equal<typeof maybe, SocketStream | null>>();
  try {
    await talk.writeLine('hello');
    talk.forceOutput();
    return await talk.readLine();
  } catch (error) {
    if (error instanceof ConnectionError) return error.code;
    throw error;
  } finally {
    await talk.close();
  }
}

export function server(): ServerProcess {
  const process = startUpServer({
    service: 0,
    createStream: { lineLimit: 1024, readTimeout: 30, writeTimeout: 30 },
    function: (stream) => {
      assertType<Equal<typeof stream, SocketStream>>();
      processRunFunction('session', async (s: SocketStream) => {
        try { await s.writeLine('hi'); } finally { await s.close(); }
      }, stream);
    },
  });
  const sessions: ReadonlySet<LightweightProcess> = process.sessions;
  const drained: Promise<void> = process.drained;
  void sessions; void drained;
  serverTerminate(process, { drain: 5 });
  return process;
}

export const all = [bun.startUpServer, deno.startUpServer, node.startUpServer, runtime.startUpServer, PullQueue, bindBackend];
`;

describe('the declarations', () => {
  it('type-check in a strict project with no @types/node, and type errorp: true as never null', async () => {
    const dir = join(here, '..', 'node_modules', '.declarations-test');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'consumer.ts'), consumer);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          lib: ['es2023', 'dom'],
          types: [],
          skipLibCheck: false,
        },
        files: ['consumer.ts'],
      }),
    );
    const output = await new Promise<string>((resolve) => {
      execFile(process.execPath, [tsc, '-p', dir], { timeout: 60_000 }, (error, stdout, stderr) =>
        resolve(error ? `${stdout}${stderr}` || String(error) : ''),
      );
    });
    rmSync(dir, { recursive: true, force: true });
    expect(output).toBe('');
  }, 90_000);
});
