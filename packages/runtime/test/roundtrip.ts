import * as comm from '@comm/runtime';

/** The seed's talk exchange through whatever `@comm/runtime` resolved to; gives the backend's name and the reply. */
export async function talkThroughUmbrella(): Promise<{ backend: string; reply: string | null }> {
  const [server, condition] = await comm.startUpServer({
    service: 0,
    address: '127.0.0.1',
    createStream: true,
    wait: true,
    function: async (stream) => {
      await stream.writeLine(`You sent: '${await stream.readLine()}'`);
      await stream.close();
    },
  });
  if (!server) throw condition;
  try {
    const [, port] = comm.getSocketAddress(server.socket);
    const talk = await comm.openTcpStream('127.0.0.1', port as number, { errorp: true });
    await talk?.writeLine('Hello self.');
    await talk?.finishOutput();
    const reply = (await talk?.readLine()) ?? null;
    await talk?.close();
    return { backend: comm.backend.name, reply };
  } finally {
    comm.serverTerminate(server);
    await server.terminated;
  }
}
