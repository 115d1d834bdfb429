import { describe, expect, it } from 'vitest';
import type { Connection, Listener } from '../src/backend.js';
import { type Prepare, PreparingListener } from '../src/stage.js';

/** A connection that records whether it was destroyed. */
function connection(name: string): Connection & { name: string; destroyed: boolean } {
  return {
    name,
    destroyed: false,
    local: { address: '127.0.0.1', port: 1, family: 4 },
    remote: { address: '127.0.0.1', port: 2, family: 4 },
    read: () => Promise.resolve(null),
    write: () => undefined,
    end: () => Promise.resolve(),
    destroy() {
      this.destroyed = true;
    },
    setNoDelay() {},
    setKeepAlive() {},
  };
}

/** A listener fed by the test: `push` a connection or an error; counts the accept calls. */
function fakeListener() {
  const queue: Array<Connection | Error> = [];
  let waiter: ((item: Connection | Error | null) => void) | null = null;
  const state = { accepts: 0, closed: false };
  const listener: Listener = {
    local: { address: '127.0.0.1', port: 1, family: 4 },
    accept() {
      state.accepts += 1;
      const next = queue.shift();
      const settle = (item: Connection | Error | null) =>
        item instanceof Error ? Promise.reject(item) : Promise.resolve(item);
      if (next !== undefined) return settle(next);
      if (state.closed) return Promise.resolve(null);
      return new Promise<Connection | Error | null>((resolve) => {
        waiter = resolve;
      }).then(settle);
    },
    async close() {
      state.closed = true;
      waiter?.(null);
    },
  };
  const push = (item: Connection | Error) => {
    const w = waiter;
    waiter = null;
    if (w) w(item);
    else queue.push(item);
  };
  return { listener, push, state };
}

/** A preparation the test finishes by hand, per connection name. */
function manualPrepare() {
  const pending = new Map<string, (result: Connection | null) => void>();
  const prepare: Prepare = (c) =>
    new Promise((resolve) => pending.set((c as ReturnType<typeof connection>).name, resolve));
  return {
    prepare,
    finish: (name: string, ok = true) => pending.get(name)?.(ok ? connection(`${name}'`) : null),
  };
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('PreparingListener: work before function, outside the accept loop', () => {
  it('hands connections on in the order their preparation ends, not the order they came', async () => {
    const { listener, push } = fakeListener();
    const { prepare, finish } = manualPrepare();
    const staged = new PreparingListener(listener, prepare);
    push(connection('slow'));
    push(connection('fast'));
    await turn();
    const first = staged.accept();
    finish('fast');
    expect((await first) as unknown).toMatchObject({ name: "fast'" });
    finish('slow');
    expect((await staged.accept()) as unknown).toMatchObject({ name: "slow'" });
    await staged.close();
  });

  it('a refused connection never comes out', async () => {
    const { listener, push } = fakeListener();
    const { prepare, finish } = manualPrepare();
    const staged = new PreparingListener(listener, prepare);
    push(connection('bad'));
    push(connection('good'));
    await turn();
    finish('bad', false);
    finish('good');
    expect((await staged.accept()) as unknown).toMatchObject({ name: "good'" });
    await staged.close();
  });

  it('prepares at most `preparing` connections at once; the rest wait in the kernel', async () => {
    const { listener, push, state } = fakeListener();
    const { prepare } = manualPrepare();
    const staged = new PreparingListener(listener, prepare, { preparing: 3, ready: 2 });
    for (let i = 0; i < 10; i++) push(connection(`c${i}`));
    await turn();
    expect(state.accepts).toBe(3);
    await staged.close();
  });

  it('holds at most `ready` prepared connections while function is busy (R2: the rest wait in the kernel)', async () => {
    const { listener, push, state } = fakeListener();
    const staged = new PreparingListener(listener, async (c) => c, { preparing: 100, ready: 2 });
    for (let i = 0; i < 10; i++) push(connection(`c${i}`));
    for (let i = 0; i < 5; i++) await turn();
    // One more may have been accepted while the last preparation was finishing.
    const held = state.accepts;
    expect(held).toBeLessThanOrEqual(3);
    // As function takes them, the stage accepts again, as far as the limit.
    for (let i = 0; i < held; i++) await staged.accept();
    for (let i = 0; i < 5; i++) await turn();
    expect(state.accepts).toBeGreaterThan(held);
    expect(state.accepts).toBeLessThanOrEqual(2 * held);
    await staged.close();
  });

  it('an accept failure stops accepting ahead until the loop has seen it (R14 back-off paces the runtime)', async () => {
    const { listener, push, state } = fakeListener();
    const { prepare } = manualPrepare();
    const staged = new PreparingListener(listener, prepare);
    push(Object.assign(new Error('out of descriptors'), { code: 'EMFILE' }));
    push(connection('later'));
    await turn();
    expect(state.accepts).toBe(1);
    await expect(staged.accept()).rejects.toMatchObject({ code: 'EMFILE' });
    await turn();
    expect(state.accepts).toBeGreaterThan(1);
    await staged.close();
  });

  it('close() destroys what is being prepared and what waits, and a pending accept gives null', async () => {
    const { listener, push, state } = fakeListener();
    const { prepare, finish } = manualPrepare();
    const staged = new PreparingListener(listener, prepare);
    const waiting = connection('waiting');
    const ready = connection('ready');
    push(waiting);
    push(ready);
    await turn();
    finish('ready');
    await turn();
    const pending = staged.accept(); // takes ready'
    await pending;
    const next = staged.accept();
    await staged.close();
    expect(await next).toBeNull();
    expect(waiting.destroyed).toBe(true);
    expect(state.closed).toBe(true);
    expect(await staged.accept()).toBeNull();
  });
});
