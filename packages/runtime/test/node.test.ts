import { expect, it } from 'vitest';
import { talkThroughUmbrella } from './roundtrip.ts';

it('under Node, @comm/runtime is @comm/node', async () => {
  expect(await talkThroughUmbrella()).toEqual({ backend: 'node', reply: "You sent: 'Hello self.'" });
});
