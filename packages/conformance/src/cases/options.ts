/**
 * Options (contract section 2): a wrong option of `startUpServer` or `openTcpStream` (one that does
 * not exist, of the wrong type, or a synonym pair that disagrees) is a TypeError at the call that
 * names it; both members of a synonym pair with the same value are accepted.
 */
import assert from 'node:assert/strict';
import type { CaseContext } from '../suite.js';
import { defineCase } from '../suite.js';
import { closeAtOnce, serverClass } from './helpers.js';

/**
 * Expects `call` to throw a TypeError whose message names every one of `options`, at the call:
 * not a rejected promise, not a server that fails later. Whatever it started instead is ended.
 */
function throwsAtCall(t: CaseContext, call: () => unknown, options: readonly string[], what: string): void {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    assert.ok(error instanceof TypeError, `${what}: expected a TypeError, got ${String(error)}`);
    for (const option of options)
      assert.ok(
        error.message.includes(option),
        `${what}: the message should name "${option}": ${error.message}`,
      );
    return;
  }
  if (result instanceof serverClass(t)) t.api.serverTerminate(result);
  else if (result instanceof Promise)
    result.then(
      (value: unknown) => {
        if (Array.isArray(value) && value[0] instanceof serverClass(t)) t.api.serverTerminate(value[0]);
        else if (value instanceof t.api.SocketStream) void value.close({ abort: true });
      },
      () => {},
    );
  assert.fail(`${what}: expected a TypeError at the call, but the call returned`);
}

// ---- §2: options are validated at the call ----

const looseStart = (t: CaseContext) => t.api.startUpServer as unknown as (options?: unknown) => unknown;

/** Each bad option set must throw at the call, with `wait: true` as with `wait: false`. */
function rejectsOptions(t: CaseContext, bad: Record<string, unknown>, options: readonly string[]): void {
  const start = looseStart(t);
  const base = { service: 0, address: '127.0.0.1', error: false, function: closeAtOnce };
  const what = `startUpServer(${JSON.stringify(bad, (_, v) => (v === undefined ? 'undefined' : v))})`;
  throwsAtCall(t, () => start({ ...base, ...bad, wait: true }), options, `${what} with wait: true`);
  throwsAtCall(t, () => start({ ...base, ...bad, wait: false }), options, `${what} with wait: false`);
  throwsAtCall(t, () => start({ ...base, ...bad }), options, `${what} without wait`);
}

defineCase(
  'options.unknown-option',
  'an option that does not exist is a TypeError at the call naming it',
  async (t) => {
    rejectsOptions(t, { port: 8080 }, ['port']);
    rejectsOptions(t, { procesName: 'typo' }, ['procesName']);
  },
);

defineCase(
  'options.function-type',
  'a function option that is not a function (or null) is a TypeError naming it',
  async (t) => {
    for (const value of ['echo', 42, {}, true]) rejectsOptions(t, { function: value }, ['function']);
  },
);

defineCase(
  'options.announce-type',
  'an announce that is not true, a writable, a function or null is a TypeError naming it',
  async (t) => {
    for (const value of ['stdout', 1, {}, { write: 'not a function' }, []])
      rejectsOptions(t, { announce: value }, ['announce']);
  },
);

defineCase(
  'options.service-type',
  'a service that is not a port (0-65535), a name or null is a TypeError naming it',
  async (t) => {
    for (const value of [-1, 65536, 1.5, true, {}, Number.NaN]) {
      rejectsOptions(t, { service: value }, ['service']);
      rejectsOptions(t, { service: undefined, localPort: value }, ['localPort']);
    }
  },
);

defineCase(
  'options.address-type',
  'an address that is no string, IPv4 integer, Ipv6Address or null is a TypeError naming it',
  async (t) => {
    for (const value of [true, -1, 2 ** 32, 1.5, {}, []]) {
      rejectsOptions(t, { address: value }, ['address']);
      rejectsOptions(t, { address: undefined, localAddress: value }, ['localAddress']);
    }
  },
);

defineCase('options.backlog-range', 'a backlog of 0, -1, 1.5 or "5" is a TypeError naming it', async (t) => {
  for (const value of [0, -1, 1.5, '5', Number.NaN, Number.POSITIVE_INFINITY])
    rejectsOptions(t, { backlog: value }, ['backlog']);
});

defineCase(
  'options.boolean-types',
  'a boolean option given a non-boolean is a TypeError naming it',
  async (t) => {
    for (const name of ['nodelay', 'keepalive', 'createStream', 'error', 'reuseport'])
      for (const value of ['yes', 1]) rejectsOptions(t, { [name]: value }, [name]);
    const start = looseStart(t);
    throwsAtCall(
      t,
      () => start({ service: 0, address: '127.0.0.1', error: false, wait: 'yes' }),
      ['wait'],
      'startUpServer({wait: "yes"})',
    );
  },
);

defineCase(
  'options.ipv6-value',
  "ipv6 'maybe' (or any value but 'any', 'both', true, false) is a TypeError naming it",
  async (t) => {
    for (const value of ['maybe', 'v6', 6, 'ANY']) rejectsOptions(t, { ipv6: value }, ['ipv6']);
  },
);

defineCase(
  'options.process-name-type',
  'a processName that is not a string is a TypeError naming it',
  async (t) => {
    for (const value of [5, {}, true]) rejectsOptions(t, { processName: value }, ['processName']);
  },
);

defineCase(
  'options.service-synonyms-conflict',
  'service and localPort with different values are a TypeError naming both',
  async (t) => {
    rejectsOptions(t, { service: 0, localPort: 1 }, ['service', 'localPort']);
    rejectsOptions(t, { service: '10243', localPort: 10243 }, ['service', 'localPort']);
  },
);

defineCase(
  'options.address-synonyms-conflict',
  'address and localAddress with different values are a TypeError naming both',
  async (t) => {
    rejectsOptions(t, { address: '127.0.0.1', localAddress: '127.0.0.2' }, ['address', 'localAddress']);
    rejectsOptions(t, { address: '127.0.0.1', localAddress: 0x7f000001 + 1 }, ['address', 'localAddress']);
  },
);

defineCase(
  'options.synonyms-same-value',
  'both members of a synonym pair with the same value are accepted',
  async (t) => {
    const { server, port } = await t.startServer({
      service: 0,
      localPort: 0,
      address: '127.0.0.1',
      localAddress: '127.0.0.1',
      function: closeAtOnce,
    });
    assert.equal(server.state, 'listening');
    const client = await t.connect(port);
    await client.closedByPeer();
  },
);

defineCase(
  'options.open-tcp-stream',
  'openTcpStream with a wrong option throws a TypeError naming it at the call',
  async (t) => {
    const { port } = await t.startServer({ function: closeAtOnce });
    const open = t.api.openTcpStream as unknown as (
      host: unknown,
      service: unknown,
      options?: unknown,
    ) => unknown;
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ colour: 'red' }, 'colour'],
      [{ errorp: 'yes' }, 'errorp'],
      [{ timeout: -1 }, 'timeout'],
      [{ timeout: 'soon' }, 'timeout'],
      [{ direction: 'sideways' }, 'direction'],
      [{ elementType: 'utf-9' }, 'elementType'],
      [{ readTimeout: 'long' }, 'readTimeout'],
      [{ writeTimeout: -5 }, 'writeTimeout'],
      [{ nodelay: 'yes' }, 'nodelay'],
      [{ keepalive: 1 }, 'keepalive'],
      [{ ipv6: 'maybe' }, 'ipv6'],
      [{ localAddress: true }, 'localAddress'],
      [{ localPort: -1 }, 'localPort'],
    ];
    for (const [options, name] of bad)
      throwsAtCall(
        t,
        () => open('127.0.0.1', port, options),
        [name],
        `openTcpStream(..., ${JSON.stringify(options)})`,
      );
  },
);
