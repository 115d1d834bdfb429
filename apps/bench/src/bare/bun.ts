import { readFileSync } from 'node:fs';
import process from 'node:process';
import { tlsFiles } from './tls-args.js';

// The talk protocol written the obvious way on Bun.listen: decode, split lines, answer every line
// of one read in one write (what the socket does not take waits for drain). Bun.listen has no
// backlog option (Bun passes 512 to listen(2)). With --tls-cert FILE --tls-key FILE, the same
// with Bun.listen's `tls` (the baseline of the TLS rows).
interface BareSocket {
  data: { pending: string; decoder: InstanceType<typeof TextDecoder>; unsent: Uint8Array | null };
  write(data: Uint8Array): number;
  end(): void;
}
interface BunGlobal {
  version: string;
  listen(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string };
    socket: {
      open(socket: BareSocket): void;
      data(socket: BareSocket, data: Uint8Array): void;
      drain(socket: BareSocket): void;
      end(socket: BareSocket): void;
      error(socket: BareSocket, error: Error): void;
    };
  }): { port: number; stop(closeActive?: boolean): void };
}
const Bun = (globalThis as unknown as { Bun: BunGlobal }).Bun;
const encoder = new TextEncoder();

function send(socket: BareSocket, bytes: Uint8Array): void {
  const written = socket.write(bytes);
  if (written < bytes.length) {
    const rest = bytes.subarray(Math.max(written, 0));
    const unsent = socket.data.unsent;
    if (unsent === null) socket.data.unsent = rest.slice();
    else {
      const joined = new Uint8Array(unsent.length + rest.length);
      joined.set(unsent);
      joined.set(rest, unsent.length);
      socket.data.unsent = joined;
    }
  }
}

const files = tlsFiles('bun', process.argv.slice(2));
const server = Bun.listen({
  hostname: '127.0.0.1',
  port: 0,
  ...(files ? { tls: { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') } } : {}),
  socket: {
    open(socket) {
      socket.data = { pending: '', decoder: new TextDecoder(), unsent: null };
    },
    data(socket, data) {
      const state = socket.data;
      const pending = state.pending + state.decoder.decode(data, { stream: true });
      let reply = '';
      let start = 0;
      for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n', start)) {
        reply += `You sent: '${pending.slice(start, at)}'\n`;
        start = at + 1;
      }
      state.pending = pending.slice(start);
      if (!reply) return;
      const bytes = encoder.encode(reply);
      if (state.unsent !== null) {
        const joined = new Uint8Array(state.unsent.length + bytes.length);
        joined.set(state.unsent);
        joined.set(bytes, state.unsent.length);
        state.unsent = joined;
      } else send(socket, bytes);
    },
    drain(socket) {
      const unsent = socket.data.unsent;
      if (unsent === null) return;
      socket.data.unsent = null;
      send(socket, unsent);
    },
    end(socket) {
      socket.end();
    },
    error() {},
  },
});
console.log(`bare bun ${Bun.version}${files ? ' tls' : ''} listening on 127.0.0.1 port ${server.port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
