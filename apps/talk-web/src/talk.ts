import { talkOnStream } from '@comm/talk/talk';
import type { SocketHandle, SocketStream } from '@comm/uws';
import { processRunFunction, SocketStream as Stream, socketStreamPeerAddress } from '@comm/uws';

/**
 * The seed's `make-stream-and-talk` and `talk-on-stream`, as apps/talk has them: each connection
 * gets its own light-weight process that answers every line with `You sent: '...'`. `live` holds
 * the streams of the sessions still talking, so that a test can drop them.
 */
export function makeStreamAndTalk(live: Set<SocketStream>) {
  return (handle: SocketHandle): void => {
    const stream = new Stream({ socket: handle, direction: 'io' });
    const [, port] = socketStreamPeerAddress(stream);
    live.add(stream);
    // The stream as the process's argument, as the seed has it: the library knows the session's stream.
    processRunFunction(
      `talk ${port}`,
      async (stream: SocketStream) => {
        try {
          await talkOnStream(stream);
        } finally {
          live.delete(stream);
        }
      },
      stream,
    );
  };
}
