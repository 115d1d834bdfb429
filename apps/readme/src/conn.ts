import * as net from 'node:net';

/** A client connection that speaks lines: over TCP, or over comm-stream to a @comm/uws server. */
export interface LineConnection {
  send(line: string): Promise<void>;
  /** The next line, or null at end of file (or a reset); rejects after `ms`. */
  next(ms: number): Promise<string | null>;
  close(): void;
}

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A TCP connection to 127.0.0.1:`port`, read line by line. */
export async function connectTcp(port: number, ms: number): Promise<LineConnection> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await deadline(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }),
    ms,
    `connection to port ${port}`,
  );
  let buffered = '';
  let ended = false;
  const wakers: (() => void)[] = [];
  const wake = () => {
    for (const w of wakers.splice(0)) w();
  };
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    buffered += text;
    wake();
  });
  socket.on('close', () => {
    ended = true;
    wake();
  });
  return {
    // A write the server does not take (it closed the connection) shows as end of file to `next`.
    send: (line) => new Promise<void>((resolve) => socket.write(`${line}\n`, () => resolve())),
    next(ms) {
      return deadline(
        (async () => {
          for (;;) {
            const end = buffered.indexOf('\n');
            if (end >= 0) {
              const line = buffered.slice(0, end).replace(/\r$/, '');
              buffered = buffered.slice(end + 1);
              return line;
            }
            if (ended) return null;
            await new Promise<void>((resolve) => wakers.push(resolve));
          }
        })(),
        ms,
        'line or end of file',
      );
    },
    close: () => socket.destroy(),
  };
}

/** A comm-stream connection (the byte stream in WebSocket messages) with @comm/uws's own client. */
export async function connectCommStream(port: number, ms: number): Promise<LineConnection> {
  const { openTcpStream } = await import('@comm/uws');
  const stream = await deadline(
    openTcpStream('127.0.0.1', port, { errorp: true, timeout: ms / 1000 }),
    ms,
    `comm-stream connection to port ${port}`,
  );
  if (stream === null) throw new Error(`no comm-stream connection to port ${port}`);
  return {
    async send(line) {
      await stream.writeLine(line);
      await stream.finishOutput();
    },
    next(ms) {
      return deadline(
        stream.readLine().catch(() => null),
        ms,
        'line or end of file',
      );
    },
    close: () => void stream.close({ abort: true }).catch(() => {}),
  };
}

/** Whether a TCP connection to 127.0.0.1:`port` is refused (nothing listens). */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** A port nothing listens on right now (the kernel's choice, given back at once). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
