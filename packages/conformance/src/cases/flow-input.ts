/**
 * R16a, the input side: a handler that stops reading slows its sender down to what the kernels'
 * buffers hold plus the little a connection reads ahead.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { tcpCounters } from '../kernel.js';
import { clientTransport, defineCase } from '../suite.js';
import { gate, KiB, MiB, serve, stream } from './helpers.js';

/** Bytes the sender of the R16a case writes at a time. */
const SEND_CHUNK = 64 * KiB;
/** How long the sender makes no progress before the case calls it stalled. */
const STALL_MS = 500;
/** A few hundred KiB (R16a): what a server may read ahead of a handler that stopped reading. */
const INPUT_BOUND = 512 * KiB;

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** The largest buffer Linux's autotuning gives a TCP socket (the third field of tcp_rmem or tcp_wmem). */
function autotuneMax(name: 'tcp_rmem' | 'tcp_wmem', fallback: number): number {
  try {
    const fields = readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);
    const max = fields[2];
    return max !== undefined && Number.isFinite(max) ? max : fallback;
  } catch {
    return fallback;
  }
}

defineCase(
  'R16a.never-reading-handler-bounds-sender',
  "a handler that reads one line and then nothing slows its sender down: the sender stalls once the kernel's buffers are full, and the server's process has read no more than a few hundred KiB of what it sent",
  async (t) => {
    const hold = gate(t);
    let first: string | null | undefined;
    const { port, result } = await serve(t, async (h) => {
      const s = stream(t, h);
      first = await s.readLine();
      // Then nothing, until the case has measured.
      await hold.promise;
      h.destroy();
      return first;
    });
    const client = await t.connect(port);
    // One line, which the handler reads; then as much as the client is let send.
    await client.writeLine('one line');
    await t.waitFor(() => first !== undefined, 'the handler to read its line');
    // The kernel's share, at most: the client's send buffer and the server's receive buffer (with
    // room for a transport's own window: uWS's comm-stream lets 1 MiB go unacknowledged).
    const kernel = autotuneMax('tcp_wmem', 4 * MiB) + autotuneMax('tcp_rmem', 6 * MiB);
    const bound = kernel + INPUT_BOUND + SEND_CHUNK;
    const chunk = Buffer.alloc(SEND_CHUNK, 0x78);
    /** Bytes whose writes the client's transport has taken; one chunk more may be on its way. */
    let sent = 0;
    let lastProgress = Date.now();
    let stop = false;
    t.defer(() => {
      stop = true;
    });
    // It stops once past what any server that pauses lets through: a server that never pauses takes it all.
    const sending = (async () => {
      while (!stop && sent <= bound) {
        await client.write(chunk);
        sent += chunk.length;
        lastProgress = Date.now();
      }
    })();
    sending.catch(() => {});
    const deadline = Date.now() + 20_000;
    while (sent <= bound && Date.now() - lastProgress < STALL_MS) {
      assert.ok(Date.now() < deadline, `the sender was still sending after 20 s (${mib(sent)})`);
      await t.sleep(50);
    }
    stop = true;
    assert.ok(
      sent <= bound,
      `a handler that stopped reading let its client send ${mib(sent)}, and the client was still sending: more than the kernel's buffers hold (tcp_wmem and tcp_rmem at most ${mib(kernel)}) plus ${INPUT_BOUND / KiB} KiB`,
    );
    if (!clientTransport(t.subject)) {
      // Over TCP, exactly: what the server's process read is what the client sent, less what
      // waits in the client's kernel (Send-Q) and in the server's (Recv-Q). The write in flight
      // may have put part of its chunk in the client's kernel already: counted as sent.
      const [client2server, server2client] = await Promise.all([
        tcpCounters({ localPort: client.localPort, remotePort: port }),
        tcpCounters({ localPort: port, remotePort: client.localPort }),
      ]);
      const read = sent + SEND_CHUNK - client2server.sendQ - server2client.recvQ;
      assert.ok(
        read <= INPUT_BOUND + SEND_CHUNK,
        `the server's process read ${mib(read)} of the ${mib(sent)} its client sent to a handler that stopped reading (Send-Q ${mib(client2server.sendQ)} in the client's kernel, Recv-Q ${mib(server2client.recvQ)} in the server's): more than a few hundred KiB (${INPUT_BOUND / KiB} KiB)`,
      );
    }
    hold.open();
    assert.equal(await result(), 'one line');
  },
  40_000,
);
