/**
 * Turns a runtime that pushes (connections, data) into the pull calls of the `Backend` seam.
 * Items and errors come out in the order they went in; an error is delivered to one `pull()`
 * and does not end the queue. `onLow` tells the producer to resume once the consumer has caught
 * up, so a push backend can pause its source while the queue is full (backpressure).
 */
export class PullQueue<T> {
  readonly #items: Array<{ value: T } | { error: unknown }> = [];
  readonly #waiters: Array<{ resolve: (v: T | null) => void; reject: (e: unknown) => void }> = [];
  #ended = false;
  readonly #highWater: number;
  readonly #onLow: (() => void) | undefined;

  constructor(options: { highWater?: number; onLow?: () => void } = {}) {
    this.#highWater = options.highWater ?? 1;
    this.#onLow = options.onLow;
  }

  /** Queues a value; false when the queue is at its high-water mark and the producer should pause. */
  push(value: T): boolean {
    if (this.#ended) return false;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve(value);
      return true;
    }
    this.#items.push({ value });
    return this.#items.length < this.#highWater;
  }

  /** Queues an error for the next `pull()`; later pulls go on with later items. */
  fail(error: unknown): void {
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.reject(error);
    else this.#items.push({ error });
  }

  /** No more items: once what is queued has been pulled, every pull gives `null`. */
  end(): void {
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(null);
  }

  /** Ends at once, dropping what is queued; returns the dropped values so they can be closed. */
  clear(): T[] {
    const dropped: T[] = [];
    for (const item of this.#items.splice(0)) if ('value' in item) dropped.push(item.value);
    this.end();
    return dropped;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get size(): number {
    return this.#items.length;
  }

  pull(): Promise<T | null> {
    const item = this.#items.shift();
    if (item) {
      if (this.#items.length < this.#highWater) this.#onLow?.();
      return 'error' in item ? Promise.reject(item.error) : Promise.resolve(item.value);
    }
    if (this.#ended) return Promise.resolve(null);
    this.#onLow?.();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }
}
