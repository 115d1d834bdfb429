import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { tlsFiles } from './tls-args.js';

// The talk protocol written the obvious way on node:net: decode, split lines, answer every line of
// one read in one write. The baseline the talk server on @comm/node is divided by. With
// --tls-cert FILE --tls-key FILE, the same on node:tls (the baseline of the TLS rows).
function talk(socket: net.Socket): void {
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    pending += text;
    let reply = '';
    let start = 0;
    for (let at = pending.indexOf('\n'); at >= 0; at = pending.indexOf('\n', start)) {
      reply += `You sent: '${pending.slice(start, at)}'\n`;
      start = at + 1;
    }
    pending = pending.slice(start);
    if (reply) socket.write(reply);
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
}

const files = tlsFiles('node', process.argv.slice(2));
const server = files
  ? tls.createServer({ noDelay: true, cert: readFileSync(files.cert), key: readFileSync(files.key) }, talk)
  : net.createServer({ noDelay: true }, talk);
// A failed handshake (a client that gave up) costs that connection only.
server.on('tlsClientError', (_error: Error, socket: net.Socket) => socket.destroy());
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const { port } = server.address() as net.AddressInfo;
  console.log(`bare node ${process.versions.node}${files ? ' tls' : ''} listening on 127.0.0.1 port ${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
