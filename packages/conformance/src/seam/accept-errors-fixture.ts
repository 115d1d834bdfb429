// The listening side of `seam.accept-errors-surface`, run in the backend's runtime under a low
// RLIMIT_NOFILE (sh -c 'ulimit -n N && exec RUNTIME ...'):
//
//   accept-errors-fixture.js BACKEND_URL
//
// Listens with the backend itself (no core in between) on 127.0.0.1, a free port, and accepts for
// ever. Each connection is told `accepted <n>` and held (one descriptor) until its peer closes it.
// A failed accept() is printed and the loop goes on after 50 ms. Prints:
//   LISTENING <port>
//   ACCEPTED <n>           each connection accepted
//   FAILED <code> <text>   each accept() that rejected
//   FREED <n>              each connection given up once its peer closed
//   CLOSED                 if accept() gave null
import process from 'node:process';
import type { Backend, Connection } from '@comm/core/backend';
import { LISTEN } from './listen.js';

const { backend } = (await import(process.argv[2] as string)) as { backend: Backend };
const encoder = new TextEncoder();
const say = (line: string) => console.log(line);

function hold(connection: Connection, n: number): void {
  void (async () => {
    try {
      await (connection.write(encoder.encode(`accepted ${n}\n`)) ?? Promise.resolve());
      while ((await connection.read()) !== null);
    } catch {
      // The peer reset: given up all the same.
    } finally {
      connection.destroy();
      say(`FREED ${n}`);
    }
  })();
}

const listener = await backend.listen(LISTEN);
say(`LISTENING ${listener.local.port}`);
let n = 0;
for (;;) {
  let connection: Connection | null;
  try {
    connection = await listener.accept();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const text = error instanceof Error ? error.message : String(error);
    say(`FAILED ${code === undefined ? '-' : String(code)} ${text.replace(/\s+/g, ' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    continue;
  }
  if (connection === null) break;
  n += 1;
  say(`ACCEPTED ${n}`);
  hold(connection, n);
}
say('CLOSED');
