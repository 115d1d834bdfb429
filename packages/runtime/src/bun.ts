// Under Bun, chosen by the `bun` exports condition.
export * from '@comm/bun';
