import assert from 'node:assert/strict';
import { talkThroughUmbrella } from './roundtrip.ts';

declare const Deno: { test(name: string, fn: () => Promise<void>): void };

Deno.test('under Deno, @comm/runtime is @comm/deno', async () => {
  assert.deepEqual(await talkThroughUmbrella(), { backend: 'deno', reply: "You sent: 'Hello self.'" });
});
