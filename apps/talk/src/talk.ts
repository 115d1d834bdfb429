import type { SocketHandle } from '@comm/core';
import type { TalkApi } from './backends.js';

/** How a server reports a session that failed: who the peer was, and why. */
export type SessionFailed = (peer: string, error: unknown) => void;

/**
 * One line on stderr per failed session (a client's fault must never look like the server's):
 * the peer and the cause; the stack only when `verbose`.
 */
export function reportSessionFailure(verbose: boolean): SessionFailed {
  return (peer, error) => {
    if (verbose) console.error(`talk: session from ${peer} failed:`, error);
    else console.error(`talk: session from ${peer} failed: ${describeError(error)}`);
  };
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const message = error.message.split('\n')[0] as string;
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

/**
 * The seed's `make-stream-and-talk`: wrap the handle, hand the talk to its own light-weight
 * process, with the stream as its argument (as the seed's `process-run-function` has it: the
 * library then knows the session's stream, and closes it when a server's drain time is over).
 * A session that fails is reported with `failed` and its connection closed; the server goes on.
 */
export function makeStreamAndTalk(api: TalkApi, failed: SessionFailed = reportSessionFailure(false)) {
  type Stream = InstanceType<TalkApi['SocketStream']>;
  return (handle: SocketHandle): void => {
    const stream = new api.SocketStream({ socket: handle, direction: 'io' });
    const [address, port] = api.socketStreamPeerAddress(stream);
    api.processRunFunction(
      `talk ${port}`,
      (stream: Stream) =>
        talkOnStream(stream).catch((error: unknown) => {
          // A peer that reset before it was accepted has no address (R18a).
          failed(
            address === null ? 'an unknown peer' : `${api.ipAddressString(address)} port ${port}`,
            error,
          );
          // talkOnStream closed it, unless closing was what failed: then drop what is left.
          return stream.close({ abort: true }).catch(() => {});
        }),
      stream,
    );
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

/**
 * The seed's `talking-to-myself`: says each line, prints what was said and what came back.
 * `options` go to openTcpStream (`sslCtx` for TLS).
 */
export async function talkingToMyself(
  api: TalkApi,
  host: string,
  service: number | string,
  print: (line: string) => void = console.log,
  options: Omit<Parameters<TalkApi['openTcpStream']>[2] & object, 'errorp'> = {},
): Promise<void> {
  const talk = await api.openTcpStream(host, service, { ...options, errorp: true });
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
