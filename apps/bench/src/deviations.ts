import process from 'node:process';

// Prints the declared deviations of one backend package as JSON, read from the package itself in
// the runtime it runs in (Bun's and Deno's depend on what that runtime can do).
const name = process.argv[2] ?? '';
if (!['node', 'bun', 'deno', 'uws'].includes(name)) {
  console.error('usage: deviations.js node|bun|deno|uws');
  process.exit(2);
}
const backendModule = (await import(`@comm/${name}`)) as {
  backend: { deviations?: readonly { cases: readonly string[]; reason: string; upstream: string }[] };
};
console.log(JSON.stringify(backendModule.backend.deviations ?? []));
process.exit(0);
