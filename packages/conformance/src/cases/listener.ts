/**
 * Connections (contract section 3), R3: without `function`, the built-in listener runs, on the
 * loopback address unless the caller opts in. Its cases follow R18 in the matrix, as they always
 * have; R1 and R2 are in connections.ts.
 */
import assert from 'node:assert/strict';
import { defineCase } from '../suite.js';
import { assertIpv6, LOOPBACK4, LOOPBACK6 } from './helpers/addresses.js';
import { mustNotStart, mustStart } from './helpers.js';

// R3: the built-in listener.

defineCase(
  'R3.listener-loopback',
  'with no function and no address, the built-in listener binds loopback',
  async (t) => {
    const v4 = await mustStart(t, { service: 0 });
    assert.equal(v4.address, LOOPBACK4, 'ipv6 any: 127.0.0.1, not 0.0.0.0');
    const v6 = await mustStart(t, { service: 0, ipv6: true });
    assertIpv6(t, v6.address, LOOPBACK6, 'ipv6 true: ::1, not ::');
  },
);

defineCase(
  'R3.listener-session',
  'the first line names the session; later lines are evaluated and their values printed',
  async (t) => {
    const { port } = await mustStart(t, { service: 0 });
    const client = await t.connect(port, '127.0.0.1');
    await client.writeLine('"my session"');
    await client.writeLine('1 + 2');
    assert.equal(await client.readLine(), '3');
    await client.writeLine("'con' + 'cat'");
    assert.equal(await client.readLine(), '"concat"', 'a string value is printed as JSON');
    await client.writeLine('commNoSuchVariable.x');
    assert.match(
      (await client.readLine()) ?? '',
      /^error:/,
      'an error is printed as a line starting "error:"',
    );
    await client.writeLine('[1, 2, 3].length');
    assert.equal(await client.readLine(), '3', 'the session goes on after an error');
  },
);

defineCase('R3.listener-two-sessions', 'the built-in listener serves two sessions at once', async (t) => {
  const { port } = await mustStart(t, { service: 0 });
  const a = await t.connect(port, '127.0.0.1');
  await a.writeLine('"a"');
  await a.writeLine('10 * 10');
  assert.equal(await a.readLine(), '100');
  // a stays open while b is served.
  const b = await t.connect(port, '127.0.0.1');
  await b.writeLine('"b"');
  await b.writeLine('2 ** 10');
  assert.equal(await b.readLine(), '1024');
  await a.writeLine('"still " + "a"');
  assert.equal(await a.readLine(), '"still a"');
  await b.writeLine('"still " + "b"');
  assert.equal(await b.readLine(), '"still b"');
});

defineCase(
  'R3.listener-bad-name',
  'a first line that is not a JSON string gets an error line and is closed; the server goes on',
  async (t) => {
    const { port } = await mustStart(t, { service: 0 });
    for (const first of ['1 + 2', '42', 'not json']) {
      const client = await t.connect(port, '127.0.0.1');
      await client.writeLine(first);
      assert.match((await client.readLine()) ?? '', /^error:/, `first line ${JSON.stringify(first)}`);
      await client.closedByPeer();
    }
    const good = await t.connect(port, '127.0.0.1');
    await good.writeLine('"good"');
    await good.writeLine('1 + 2');
    assert.equal(await good.readLine(), '3');
  },
);

defineCase(
  'R3.listener-refuses-remote',
  'the built-in listener refuses to start on other addresses than loopback',
  async (t) => {
    for (const address of ['0.0.0.0', 0, '::']) {
      const condition = await mustNotStart(t, { service: 0, address });
      assert.ok(condition.message.length > 0, `a startup condition for ${address}`);
    }
  },
);

defineCase(
  'R3.listener-remote-opt-in',
  'with allowRemoteListener: true the built-in listener starts on 0.0.0.0',
  async (t) => {
    const { address, port } = await mustStart(t, {
      service: 0,
      address: '0.0.0.0',
      allowRemoteListener: true,
    });
    assert.equal(address, 0);
    const client = await t.connect(port, '127.0.0.1');
    await client.writeLine('"opted in"');
    await client.writeLine('40 + 2');
    assert.equal(await client.readLine(), '42');
  },
);
