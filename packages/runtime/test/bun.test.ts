import { expect, it } from 'bun:test';
import { talkThroughUmbrella } from './roundtrip.ts';

it('under Bun, @comm/runtime is @comm/bun', async () => {
  expect(await talkThroughUmbrella()).toEqual({ backend: 'bun', reply: "You sent: 'Hello self.'" });
}, 20_000);
