import { tlsFiles } from './tls-args.js';

// The talk protocol written the obvious way on Deno.listen: a read loop per connection, decode,
// split lines, answer every line of one read in one write. Deno.listen has no backlog option.
// With --tls-cert FILE --tls-key FILE, the same on Deno.listenTls (the baseline of the TLS rows).
interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  /** Deno.TcpConn's; a Deno.TlsConn has none (Deno sets TCP_NODELAY on accepted sockets). */
  setNoDelay?(on?: boolean): void;
  close(): void;
}
type DenoListener = AsyncIterable<DenoConn> & { addr: { port: number } };
interface DenoGlobal {
  version: { deno: string };
  listen(options: { hostname: string; port: number }): DenoListener;
  listenTls(options: { hostname: string; port: number; cert: string; key: string }): DenoListener;
  readTextFileSync(path: string): string;
  args: string[];
  addSignalListener(signal: string, handler: () => void): void;
  exit(code: number): never;
}
const Deno = (globalThis as unknown as { Deno: DenoGlobal }).Deno;
const encoder = new TextEncoder();

async function talk(conn: DenoConn): Promise<void> {
  conn.setNoDelay?.(true);
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let pending = '';
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      pending += decoder.decode(buffer.subarray(0, n), { stream: true });
      let reply = '';
      let start = 0;
      for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n', start)) {
        reply += `You sent: '${pending.slice(start, at)}'\n`;
        start = at + 1;
      }
      pending = pending.slice(start);
      if (!reply) continue;
      const bytes = encoder.encode(reply);
      for (let off = 0; off < bytes.length; ) off += await conn.write(bytes.subarray(off));
    }
  } catch {
    // the peer went away
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

const files = tlsFiles('deno', Deno.args);
const listener = files
  ? Deno.listenTls({
      hostname: '127.0.0.1',
      port: 0,
      cert: Deno.readTextFileSync(files.cert),
      key: Deno.readTextFileSync(files.key),
    })
  : Deno.listen({ hostname: '127.0.0.1', port: 0 });
console.log(
  `bare deno ${Deno.version.deno}${files ? ' tls' : ''} listening on 127.0.0.1 port ${listener.addr.port}`,
);
for (const signal of ['SIGINT', 'SIGTERM']) Deno.addSignalListener(signal, () => Deno.exit(0));
for await (const conn of listener) void talk(conn);
