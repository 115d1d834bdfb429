import { createRequire } from 'node:module';
import { tlsFiles } from './tls-args.js';

// The talk protocol written the obvious way on uWebSockets.js, speaking comm-stream (the byte
// stream in binary WebSocket messages, as @comm/uws): decode each message, split lines, answer
// every line of one message in one binary message; an empty message (FIN) is answered with one,
// then a close. The same WebSocket settings as @comm/uws: no compression, 1 MiB messages, 120 s
// idle timeout with automatic pings. With --tls-cert FILE --tls-key FILE, the same on SSLApp (the
// baseline of the TLS rows: comm-stream over wss).
interface UserData {
  pending: string;
  decoder: InstanceType<typeof TextDecoder>;
}
interface Ws {
  getUserData(): UserData;
  send(message: string | Uint8Array, isBinary: boolean): number;
  end(code?: number): void;
}
interface Uws {
  SSLApp(options: { cert_file_name: string; key_file_name: string }): ReturnType<Uws['App']>;
  App(): {
    ws(
      pattern: string,
      behavior: {
        compression: number;
        maxPayloadLength: number;
        idleTimeout: number;
        upgrade(
          res: {
            upgrade(
              data: UserData,
              key: string,
              protocol: string,
              extensions: string,
              context: unknown,
            ): void;
          },
          req: { getHeader(name: string): string },
          context: unknown,
        ): void;
        message(ws: Ws, message: ArrayBuffer, isBinary: boolean): void;
      },
    ): ReturnType<Uws['App']>;
    listen(host: string, port: number, callback: (token: unknown) => void): void;
  };
  us_socket_local_port(token: unknown): number;
  getParts?: unknown;
}

const require = createRequire(import.meta.url);
function loadUws(): Uws {
  try {
    return require('uWebSockets.js') as Uws;
  } catch {
    return require('@trufflesuite/uws-js-unofficial') as Uws;
  }
}
const uws = loadUws();
if (typeof uws.getParts !== 'function') {
  console.error('bare uws: the native uWebSockets.js build did not load (this runtime is not Node 20?)');
  process.exit(1);
}

const files = tlsFiles('uws', process.argv.slice(2));
(files ? uws.SSLApp({ cert_file_name: files.cert, key_file_name: files.key }) : uws.App())
  .ws('/*', {
    compression: 0,
    maxPayloadLength: 1024 * 1024,
    idleTimeout: 120,
    upgrade(res, req, context) {
      const offered = req
        .getHeader('sec-websocket-protocol')
        .split(',')
        .map((p) => p.trim());
      res.upgrade(
        { pending: '', decoder: new TextDecoder() },
        req.getHeader('sec-websocket-key'),
        offered.includes('comm-stream') ? 'comm-stream' : '',
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    message(ws, message) {
      const state = ws.getUserData();
      if (message.byteLength === 0) {
        ws.send(new Uint8Array(0), true);
        ws.end(1000);
        return;
      }
      const pending = state.pending + state.decoder.decode(new Uint8Array(message), { stream: true });
      let reply = '';
      let start = 0;
      for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n', start)) {
        reply += `You sent: '${pending.slice(start, at)}'\n`;
        start = at + 1;
      }
      state.pending = pending.slice(start);
      if (reply) ws.send(reply, true);
    },
  })
  .listen('127.0.0.1', 0, (token) => {
    if (!token) {
      console.error('bare uws: could not listen');
      process.exit(1);
    }
    console.log(
      `bare uws (node ${process.versions.node})${files ? ' tls' : ''} listening on 127.0.0.1 port ${uws.us_socket_local_port(token)}`,
    );
  });
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
