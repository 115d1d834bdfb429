// Under Deno, chosen by the `deno` exports condition.
export * from '@comm/deno';
