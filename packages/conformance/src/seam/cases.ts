// The seam itself (`Backend` in @comm/core/backend), below the contract: what core relies on from
// every backend, checked once here against `t.api.backend` directly, with an independent peer on
// the other end. Each backend's own tests keep only what is particular to its runtime.
import assert from 'node:assert/strict';
import { defineCase, within } from '../suite.js';
import {
  accepted,
  assertSameBytes,
  bindable,
  bytes,
  connectPeer,
  heldPort,
  LISTEN,
  listen,
  MiB,
  type Peer,
  pattern,
  readLine,
  readToEnd,
  rejectsWith,
  settled,
  settlesWithin,
  watch,
  written,
} from './peer.js';

defineCase(
  'seam.accept-order',
  'accept() gives connections in the order they connected, each with the listening address as its local one',
  async (t) => {
    const listener = await listen(t);
    const { port } = listener.local;
    assert.equal(listener.local.address, '127.0.0.1', 'the listener is on the address asked for');
    assert.equal(listener.local.family, 4);
    assert.ok(port > 0, `port 0 asks the system for one; listener.local.port is ${port}`);
    // All of them connected (and each has said who it is) before the first accept().
    const peers: Peer[] = [];
    for (let i = 0; i < 6; i++) {
      const peer = await connectPeer(t, port);
      await peer.write(`peer ${i}\n`);
      peers.push(peer);
    }
    for (const [i, peer] of peers.entries()) {
      const connection = await accepted(t, listener, `accept() number ${i + 1}`);
      const line = await within(readLine(connection), 5000, `the line of connection ${i + 1}`);
      assert.equal(
        line,
        `peer ${i}`,
        `accept() number ${i + 1} gave the connection of "${line}", not of peer ${i}`,
      );
      assert.deepEqual(connection.local, { address: '127.0.0.1', port, family: 4 });
      assert.equal(connection.remote.address, '127.0.0.1');
      assert.equal(connection.remote.family, 4);
      // A port the runtime cannot tell (uWS, when several clients of one address wait) is 0, never another's.
      if (connection.remote.port !== 0) assert.equal(connection.remote.port, peer.localPort);
    }
  },
);

defineCase(
  'seam.eaddrinuse',
  'listen() on a port in use (by this backend or by another socket) rejects with code EADDRINUSE',
  async (t) => {
    const listener = await listen(t);
    const { backend } = t.api;
    await rejectsWith(
      backend.listen({ ...LISTEN, port: listener.local.port }),
      ['EADDRINUSE'],
      "listen() on its own listener's port",
    );
    const taken = await heldPort(t);
    await rejectsWith(
      backend.listen({ ...LISTEN, port: taken }),
      ['EADDRINUSE'],
      'listen() on a port a node:net server holds',
    );
  },
);

defineCase(
  'seam.half-close',
  "after the peer's end(), read() gives the data then null, and the connection still writes back (several MiB) and ends",
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    const connection = await accepted(t, listener);
    const request = pattern(256 * 1024, 1);
    await peer.write(request);
    peer.end();
    assertSameBytes(
      await within(readToEnd(connection), 5000, 'the request and its end'),
      request,
      'the request',
    );
    assert.equal(await within(connection.read(), 1000, 'a read after the end'), null, 'a read after the end');
    const reply = pattern(3 * MiB, 2);
    await within(written(connection.write(reply.slice())), 10_000, 'the reply after the half-close');
    await within(connection.end(), 5000, 'end() after the reply');
    assertSameBytes(await within(peer.readAll(), 10_000, 'the reply at the peer'), reply, 'the reply');
    // Our output is closed now: a write must not say it was taken.
    const late = connection.write(bytes('late'));
    assert.ok(
      late !== undefined,
      'a write after end() returned undefined: taken, though the output is closed',
    );
    await rejectsWith(within(late, 5000, 'the write after end()'), ['EPIPE'], 'a write after end()');
  },
);

defineCase(
  'seam.end-keeps-reading',
  'after our end(), the peer still sends, and every byte is read, however slowly, until its FIN',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    const connection = await accepted(t, listener);
    await within(written(connection.write(bytes('go ahead\n'))), 5000, 'the go-ahead');
    await within(connection.end(), 5000, 'end()');
    assert.equal(await within(peer.readLine(), 5000, 'the go-ahead at the peer'), 'go ahead');
    await within(peer.closed(), 5000, 'our FIN at the peer');
    const request = pattern(4 * MiB, 3);
    // Read slowly: the peer's FIN arrives while most of the data still waits.
    const reading = readToEnd(connection, true);
    await within(peer.write(request), 20_000, 'the peer sending after our FIN');
    peer.end();
    assertSameBytes(await within(reading, 20_000, 'reading all of it'), request, 'what the peer sent');
  },
  30_000,
);

defineCase(
  'seam.partial-writes',
  'one write of 8 MiB to a slow reader waits for it, then arrives whole and in order, and so do the writes after it',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    peer.pause();
    const connection = await accepted(t, listener);
    const big = pattern(8 * MiB, 4);
    // The backend keeps what the kernel did not take; the caller does not reuse the chunk.
    const writing = watch(written(connection.write(big.slice())));
    await t.sleep(200);
    assert.equal(writing.done(), false, 'the 8 MiB write settled while the peer read nothing');
    peer.slowly(512 * 1024, 20);
    peer.resume();
    const first = await within(writing.outcome, 20_000, 'the 8 MiB write');
    if (first.status === 'rejected') throw first.error;
    const rest = Array.from({ length: 8 }, (_, i) => pattern(256 * 1024, 10 + i));
    for (const [i, chunk] of rest.entries())
      await within(written(connection.write(chunk.slice())), 10_000, `write ${i + 2}`);
    await within(connection.end(), 10_000, 'end()');
    const all = await within(peer.readAll(), 20_000, 'everything at the peer');
    assertSameBytes(all.subarray(0, big.length), big, 'the 8 MiB write');
    for (const [i, chunk] of rest.entries()) {
      const at = big.length + i * chunk.length;
      assertSameBytes(all.subarray(at, at + chunk.length), chunk, `write ${i + 2}`);
    }
    assert.equal(all.length, big.length + rest.length * 256 * 1024, 'the number of bytes at the peer');
  },
  45_000,
);

defineCase(
  'seam.drain',
  'writes to a peer that reads nothing come to one that waits (undefined means taken); it resolves once the peer reads, and every byte arrives',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    peer.pause();
    const connection = await accepted(t, listener);
    const chunk = pattern(64 * 1024, 5);
    const limit = 64 * MiB;
    let total = 0;
    let waiting: Promise<void> | null = null;
    while (total < limit) {
      const write = connection.write(chunk.slice());
      total += chunk.length;
      if (write === undefined) continue;
      // A promise for what the kernel takes at once settles at once; one that waits is what we look for.
      if (!(await settlesWithin(write, 200))) {
        waiting = write;
        break;
      }
      const outcome = await settled(write);
      if (outcome.status === 'rejected') throw outcome.error;
    }
    assert.ok(
      waiting !== null,
      `${total / MiB} MiB written to a peer that reads nothing, every write taken: the backend buffers without bound`,
    );
    const pending = watch(waiting);
    await t.sleep(300);
    assert.equal(pending.done(), false, 'the waiting write settled while the peer still read nothing');
    peer.resume();
    const outcome = await within(pending.outcome, 10_000, 'the waiting write once the peer reads');
    if (outcome.status === 'rejected') throw outcome.error;
    await within(connection.end(), 10_000, 'end()');
    const all = await within(peer.readAll(), 20_000, 'everything at the peer');
    assert.equal(all.length, total, 'every byte written, taken at once or waited for, reaches the peer');
    for (let at = 0; at < total; at += chunk.length)
      assertSameBytes(all.subarray(at, at + chunk.length), chunk, `the 64 KiB write at ${at}`);
  },
  45_000,
);

defineCase(
  'seam.reset-mid-write',
  'a peer that resets while a large write waits: the write settles (never hangs), read() gives null, later writes reject, destroy() works',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    peer.pause();
    const connection = await accepted(t, listener);
    const writing = watch(written(connection.write(pattern(32 * MiB, 6))));
    await t.sleep(200);
    assert.equal(writing.done(), false, 'the 32 MiB write settled before the peer read anything');
    peer.reset();
    const outcome = await within(writing.outcome, 5000, 'the pending write after the reset');
    if (outcome.status === 'rejected') assert.ok(outcome.error instanceof Error, 'it rejects with an Error');
    assert.equal(await within(connection.read(), 5000, 'read() after the reset'), null);
    const late = written(connection.write(bytes('anyone?')));
    const after = await within(settled(late), 5000, 'a write after the reset');
    assert.equal(after.status, 'rejected', 'a write after the reset was read resolved');
    connection.destroy();
    connection.destroy();
    assert.equal(await within(connection.read(), 1000, 'read() after destroy()'), null);
  },
  20_000,
);

defineCase(
  'seam.destroy-settles-read',
  'destroy() with a read() pending settles it (null, or a rejection: never a hang), and the peer sees the connection close',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    const connection = await accepted(t, listener);
    const reading = watch(connection.read());
    await t.sleep(50);
    assert.equal(reading.done(), false, 'read() settled while the peer sent nothing');
    connection.destroy();
    const outcome = await within(reading.outcome, 2000, 'the pending read after destroy()');
    if (outcome.status === 'resolved') assert.equal(outcome.value, null, 'the pending read gave data');
    await within(peer.closed(), 5000, 'the peer to see the connection closed');
    const again = await within(settled(connection.read()), 1000, 'a read after destroy()');
    if (again.status === 'resolved') assert.equal(again.value, null, 'a read after destroy() gave data');
  },
);

defineCase(
  'seam.destroy-rejects-write',
  'destroy() with a write waiting rejects it, and a write after destroy() rejects',
  async (t) => {
    const listener = await listen(t);
    const peer = await connectPeer(t, listener.local.port);
    peer.pause();
    const connection = await accepted(t, listener);
    const writing = watch(written(connection.write(pattern(32 * MiB, 7))));
    await t.sleep(100);
    assert.equal(writing.done(), false, 'the 32 MiB write settled while the peer read nothing');
    connection.destroy();
    const outcome = await within(writing.outcome, 5000, 'the waiting write after destroy()');
    assert.equal(outcome.status, 'rejected', 'the write waiting at destroy() resolved');
    const late = connection.write(bytes('x'));
    assert.ok(late !== undefined, 'a write after destroy() returned undefined: taken by a closed connection');
    assert.equal((await within(settled(late), 1000, 'a write after destroy()')).status, 'rejected');
  },
);

defineCase(
  'seam.close-pending-accept',
  'close() with an accept() pending settles it (null, or a rejection), frees the port at once, later accepts give null, and accepted connections stay open',
  async (t) => {
    const listener = await listen(t);
    const { port } = listener.local;
    const peer = await connectPeer(t, port);
    const kept = await accepted(t, listener);
    const pending = watch(listener.accept());
    await t.sleep(50);
    assert.equal(pending.done(), false, 'accept() settled with no client waiting');
    await within(listener.close(), 5000, 'close()');
    const outcome = await within(pending.outcome, 2000, 'the pending accept() after close()');
    if (outcome.status === 'resolved')
      assert.equal(outcome.value, null, 'the pending accept() gave a connection');
    assert.equal(await within(listener.accept(), 1000, 'accept() after close()'), null);
    assert.ok(await bindable(port), 'the port can be bound again once close() resolved');
    await within(written(kept.write(bytes('still here\n'))), 5000, 'a write on the accepted connection');
    assert.equal(await within(peer.readLine(), 5000, 'the line at the peer'), 'still here');
  },
);
