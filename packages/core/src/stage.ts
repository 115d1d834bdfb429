import type { Connection, Listener } from './backend.js';

/**
 * Work on an accepted connection before `function` sees it: reading a PROXY protocol header (R21),
 * a TLS handshake (R22). Resolves to the connection `function` should get, or null when the
 * connection was refused (the preparation has closed it then). Never rejects.
 */
export type Prepare = (connection: Connection) => Promise<Connection | null>;

/**
 * How far the stage runs ahead of `function`. Many connections may be in preparation at once (each
 * bounded by its own timeout), so that silent ones crowd out no others; few prepared ones wait for
 * `function`, so that a slow `function` leaves clients in the kernel's queue, as R2 has it.
 */
export interface StageLimits {
  readonly preparing: number;
  readonly ready: number;
}
const DEFAULT_LIMITS: StageLimits = { preparing: 1024, ready: 16 };

type Ready = { readonly connection: Connection } | { readonly error: unknown };

/**
 * A listener whose connections go through `prepare` concurrently, outside the sequential accept
 * loop, so that a peer that sends nothing holds up no other (R21, R22). The loop still calls
 * `function` one connection at a time (R2), in the order preparations finish.
 *
 * Past `limits`, clients wait in the kernel's queue as they do without a stage. An accept failure stops accepting ahead until
 * the loop has seen it, so that R14's and R14a's back-off still paces the runtime's accept calls.
 */
export class PreparingListener implements Listener {
  readonly #inner: Listener;
  readonly #prepare: Prepare;
  readonly #limits: StageLimits;
  readonly #ready: Ready[] = [];
  /** Connections being prepared: closed with the listener. */
  readonly #preparing = new Set<Connection>();
  #waiter: ((item: Ready | null) => void) | null = null;
  #accepting = false;
  #failed = false;
  #ended = false;
  #closed = false;

  constructor(inner: Listener, prepare: Prepare, limits: StageLimits = DEFAULT_LIMITS) {
    this.#inner = inner;
    this.#prepare = prepare;
    this.#limits = limits;
    void this.#acceptAhead();
  }

  get local() {
    return this.#inner.local;
  }

  accept(): Promise<Connection | null> {
    const item = this.#ready.shift();
    if (item !== undefined) return this.#deliver(item);
    if (this.#closed || (this.#ended && this.#preparing.size === 0)) return Promise.resolve(null);
    return new Promise<Ready | null>((resolve) => {
      this.#waiter = resolve;
    }).then((next) => (next === null ? null : this.#deliver(next)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const connection of this.#preparing) connection.destroy();
    this.#preparing.clear();
    for (const item of this.#ready.splice(0)) if ('connection' in item) item.connection.destroy();
    this.#wake(null);
    await this.#inner.close();
  }

  #deliver(item: Ready): Promise<Connection | null> {
    if ('connection' in item) {
      void this.#acceptAhead();
      return Promise.resolve(item.connection);
    }
    this.#failed = false;
    void this.#acceptAhead();
    return Promise.reject(item.error);
  }

  #wake(item: Ready | null): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) waiter(item);
    else if (item) this.#ready.push(item);
  }

  async #acceptAhead(): Promise<void> {
    if (this.#accepting) return;
    this.#accepting = true;
    try {
      while (
        !this.#closed &&
        !this.#failed &&
        !this.#ended &&
        this.#preparing.size < this.#limits.preparing &&
        this.#ready.length < this.#limits.ready
      ) {
        let connection: Connection | null;
        try {
          connection = await this.#inner.accept();
        } catch (error) {
          this.#failed = true;
          this.#wake({ error });
          return;
        }
        if (connection === null) {
          this.#ended = true;
          if (this.#preparing.size === 0) this.#wake(null);
          return;
        }
        if (this.#closed) {
          connection.destroy();
          return;
        }
        void this.#prepareOne(connection);
      }
    } finally {
      this.#accepting = false;
    }
  }

  async #prepareOne(connection: Connection): Promise<void> {
    this.#preparing.add(connection);
    let prepared: Connection | null = null;
    try {
      prepared = await this.#prepare(connection);
    } catch {
      connection.destroy();
    }
    const wasPreparing = this.#preparing.delete(connection);
    if (this.#closed || !wasPreparing) {
      prepared?.destroy();
      return;
    }
    if (prepared !== null) this.#wake({ connection: prepared });
    else if (this.#ended && this.#preparing.size === 0 && this.#ready.length === 0) this.#wake(null);
    void this.#acceptAhead();
  }
}
