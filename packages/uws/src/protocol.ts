/**
 * comm-stream: the contract's byte stream over one WebSocket connection (see README.md).
 *
 * - Every non-empty message, binary or text, carries the next bytes of its direction (a text
 *   message's bytes are its UTF-8). The server sends binary messages only.
 * - An empty message is the end of its direction (FIN, a half-close): the sender sends no more
 *   bytes but goes on reading.
 * - A close frame, or the TCP connection ending, ends both directions.
 * - Flow control towards the server (uWebSockets.js cannot stop reading a WebSocket): the server
 *   sends ping frames whose payload is `ack N`, N the number of bytes its reader has consumed so
 *   far; a client keeps at most `WINDOW` bytes sent beyond the last N it saw. A server whose
 *   unread input exceeds `WINDOW` closes the connection with code 1008. Clients that send
 *   little (a browser sending typed lines) may ignore the acknowledgements; browsers answer the
 *   pings with pongs by themselves.
 * - A client's messages carry at most `MAX_CLIENT_MESSAGE` bytes each.
 * - Over TLS (wss), a client should keep at most `TLS_WINDOW` bytes in flight: see there.
 */

/** The WebSocket sub-protocol a client may ask for; the server answers with it when asked. */
export const SUBPROTOCOL = 'comm-stream';

/** Bytes a client may send beyond the server's last acknowledgement. */
export const WINDOW = 1024 * 1024;

/**
 * The window this package's clients keep over TLS, below `WINDOW`. uSockets (uWS.js v20.30)
 * decrypts one read of up to 512 KiB into a 512 KiB buffer and hands it to uWS as soon as it is
 * full, with input still to decrypt; a write to a TLS socket at that moment (uWS flushing what it
 * buffered for the connection, as it does after every read) discards that input
 * (us_internal_ssl_socket_write: "triggering a write from a read will essentially delete all input
 * data!"), and the connection closes (1006). With at most 256 KiB in flight a read never fills the
 * buffer. Clients that send more at once over TLS, to a server that is writing, risk that close.
 */
export const TLS_WINDOW = 256 * 1024;

/** The server acknowledges once its reader has consumed this many bytes more than it last acknowledged. */
export const ACK_STEP = WINDOW / 4;

/** The largest message a client sends. */
export const MAX_CLIENT_MESSAGE = 64 * 1024;

/** The prefix of an acknowledgement's ping payload. */
export const ACK_PREFIX = 'ack ';

/** The close code of a connection that broke the protocol (it sent beyond the window). */
export const POLICY_VIOLATION = 1008;

/** Reads an acknowledgement from a ping payload; null if the ping is not one. */
export function parseAck(payload: Uint8Array): number | null {
  if (payload.length <= ACK_PREFIX.length || payload.length > 32) return null;
  const text = new TextDecoder().decode(payload);
  if (!text.startsWith(ACK_PREFIX)) return null;
  const digits = text.slice(ACK_PREFIX.length);
  if (!/^\d+$/.test(digits)) return null;
  const n = Number(digits);
  return Number.isSafeInteger(n) ? n : null;
}
