import { backendNames } from './backends.js';
import { scriptCommand, startChild } from './children.js';

// The seed's talk example end to end, with real processes: a talk server on a free port, the
// client against it, the transcript, then the server stopped as a user would (SIGTERM).
let failed = false;
for (const backend of backendNames) {
  console.log(`--- talk on the ${backend} backend ---`);
  const server = startChild(...scriptCommand('server.js', ['--backend', backend, '--service', '0']));
  try {
    const [, port] = await server.waitFor(/ port (\d+)\n/);
    const client = startChild(
      ...scriptCommand('client.js', ['--backend', backend, '--service', port as string]),
      {
        echo: true,
      },
    );
    if ((await client.exited) !== 0) failed = true;
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\n${server.errors()}`);
    failed = true;
  } finally {
    const code = await server.stop('SIGTERM');
    if (code !== 0) {
      console.error(`demo: the ${backend} talk server exited with ${code} on SIGTERM`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
