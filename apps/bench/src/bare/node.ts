import * as net from 'node:net';

// The talk protocol written the obvious way on node:net: decode, split lines, answer every line of
// one read in one write. The baseline the talk server on @comm/node is divided by.
const server = net.createServer({ noDelay: true }, (socket) => {
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
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const { port } = server.address() as net.AddressInfo;
  console.log(`bare node ${process.versions.node} listening on 127.0.0.1 port ${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(0));
