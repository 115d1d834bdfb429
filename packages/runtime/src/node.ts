// Under Node (and anything that is neither Bun nor Deno): the node:net backend.
export * from '@comm/node';
