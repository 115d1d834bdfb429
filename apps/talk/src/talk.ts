import type { SocketHandle } from '@comm/core';
import type { TalkApi } from './backends.js';

/** The seed's `make-stream-and-talk`: wrap the handle, hand the talk to its own light-weight process. */
export function makeStreamAndTalk(api: TalkApi) {
  return (handle: SocketHandle): void => {
    const stream = new api.SocketStream({ socket: handle, direction: 'io' });
    const [, port] = api.socketStreamPeerAddress(stream);
    api.processRunFunction(`talk ${port}`, talkOnStream, stream);
  };
}

/** The seed's `talk-on-stream`: echo each line with a message until the client closes. */
export async function talkOnStream(stream: InstanceType<TalkApi['SocketStream']>): Promise<void> {
  try {
    for (let line = await stream.readLine(); line !== null; line = await stream.readLine()) {
      await stream.writeLine(`You sent: '${line}'`);
      stream.forceOutput();
    }
  } finally {
    await stream.close();
  }
}

export const monologue = [
  'Hello self.',
  "Why don't you say something original?",
  'Talk to you later then.  Bye.',
];

/** The seed's `talking-to-myself`: says each line, prints what was said and what came back. */
export async function talkingToMyself(
  api: TalkApi,
  host: string,
  service: number | string,
  print: (line: string) => void = console.log,
): Promise<void> {
  const talk = await api.openTcpStream(host, service, { errorp: true });
  if (!talk) throw new Error('unreachable: errorp is true');
  try {
    for (const monolog of monologue) {
      await talk.writeLine(monolog);
      talk.forceOutput();
      print(`I said: "${monolog}"`);
      print(`Self replied: "${await talk.readLine()}"`);
    }
  } finally {
    await talk.close();
  }
}
