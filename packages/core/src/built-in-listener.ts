import type { Connection } from './backend.js';
import { processRunFunction } from './process.js';
import { SocketStream } from './stream.js';

/** A client that connects and names no session within this many seconds is dropped, so it cannot stall the server. */
const NAME_TIMEOUT_S = 10;

function print(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return `[function ${value.name || 'anonymous'}]`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined || typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * R3, the built-in listener: the first line names the session (a JSON string); the session then
 * runs as its own light-weight process, and the server goes back to accepting.
 */
export async function builtInListener(handle: Connection): Promise<void> {
  const stream = new SocketStream({ socket: handle, direction: 'io' });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const first = await Promise.race([
    stream.readLine().catch(() => null),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), NAME_TIMEOUT_S * 1000);
    }),
  ]).finally(() => clearTimeout(timer));
  let name: unknown = null;
  try {
    name = first === null ? null : JSON.parse(first);
  } catch {
    // falls through to the message below
  }
  if (typeof name !== 'string') {
    if (first !== null)
      await stream
        .writeLine('error: the first line must be a JSON string naming the session')
        .catch(() => {});
    await stream.close().catch(() => {});
    return;
  }
  processRunFunction(name, listenerSession, stream);
}

async function listenerSession(stream: SocketStream): Promise<void> {
  try {
    for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
      let reply: string;
      try {
        // biome-ignore lint/security/noGlobalEval: evaluating what the client sends is the listener's job (R3); loopback only unless opted in. Indirect, so it runs in global scope.
        const value: unknown = await globalThis.eval(line);
        reply = print(value);
      } catch (error) {
        reply = `error: ${error instanceof Error ? error.message : String(error)}`;
      }
      await stream.writeLine(reply);
      await stream.finishOutput();
    }
  } finally {
    await stream.close().catch(() => {});
  }
}
