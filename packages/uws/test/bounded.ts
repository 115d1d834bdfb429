import type { Connection } from '@comm/core/backend';
import { expect } from 'vitest';
import type { CommStreamTransport } from '../src/internals.js';

const MiB = 1024 * 1024;

/**
 * R16a over uWS: `server` writes to `client`, which has paused; after a second the writes must be
 * waiting (what uWS and the kernel hold stays bounded); then the client reads everything written.
 */
export async function expectWritesBoundedByStoppedReader(
  server: Connection,
  client: CommStreamTransport,
): Promise<void> {
  let written = 0;
  let stop = false;
  const writing = (async () => {
    const chunk = new Uint8Array(64 * 1024);
    while (!stop && written < 64 * MiB) {
      await server.write(chunk);
      written += chunk.length;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  // The kernel's buffers on loopback take a few MiB; without backpressure this would be all 64 MiB.
  expect(written).toBeGreaterThan(0);
  expect(written).toBeLessThan(16 * MiB);
  stop = true;
  let got = 0;
  client.onData((chunk) => {
    got += chunk.length;
  });
  client.resume();
  await writing;
  await server.end();
  await new Promise<void>((resolve) => client.onEnd(resolve));
  expect(got).toBe(written);
}
