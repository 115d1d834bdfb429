import * as net from 'node:net';

// The talk protocol written directly on node:net: the baseline the first cost figure divides by.
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    pending += text;
    let at = pending.indexOf('\n');
    while (at >= 0) {
      socket.write(`You sent: '${pending.slice(0, at)}'\n`);
      pending = pending.slice(at + 1);
      at = pending.indexOf('\n');
    }
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 511 }, () => {
  console.log(`baseline listening on 127.0.0.1 port ${(server.address() as net.AddressInfo).port}`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => server.close(() => process.exit(0)));
