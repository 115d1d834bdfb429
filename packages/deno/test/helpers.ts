// What the Deno tests share.

/** Every test gets a deadline and its cleanups, run last first whatever happens. */
export function seamTest(
  name: string,
  ms: number,
  fn: (defer: (cleanup: () => unknown) => void) => Promise<void>,
) {
  Deno.test({
    name,
    // Closing a socket settles its pending operations a moment later, after the test body.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const cleanups: Array<() => unknown> = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          fn((cleanup) => cleanups.push(cleanup)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${name}: not done within ${ms} ms`)), ms);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        for (const cleanup of cleanups.reverse()) {
          try {
            await cleanup();
          } catch (error) {
            console.error(`cleanup of "${name}" failed:`, error);
          }
        }
      }
    },
  });
}
