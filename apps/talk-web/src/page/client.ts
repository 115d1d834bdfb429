// The talk page's client: the seed's talk protocol (lines out, `You sent: '...'` back) over
// comm-stream, @comm/uws's byte stream in WebSocket messages. Lines go out as binary messages; an
// empty message from the server is its end of output; a dropped connection is reconnected with a
// growing delay. The server's flow-control pings are answered by the browser itself, and a person
// typing lines never comes near the window, so the page needs no more of the protocol.

type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

const FIRST_RETRY_MS = 250;
const LAST_RETRY_MS = 5000;

function element<T extends HTMLElement>(selector: string): T {
  const found = document.querySelector<T>(selector);
  if (!found) throw new Error(`the page has no ${selector}`);
  return found;
}

const stateView = element<HTMLSpanElement>('#state');
const form = element<HTMLFormElement>('#talk');
const input = element<HTMLInputElement>('#line');
const send = element<HTMLButtonElement>('#send');
const toggle = element<HTMLButtonElement>('#toggle');
const log = element<HTMLUListElement>('#log');

const encoder = new TextEncoder();
let decoder = new TextDecoder();
let socket: WebSocket | null = null;
let wanted = true;
let retryMs = FIRST_RETRY_MS;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let partial = '';

/** Every state the page has been in, in order: what a test (or a curious person) can read back. */
const history: State[] = [];
(globalThis as { talkStates?: State[] }).talkStates = history;

function show(state: State, detail = ''): void {
  history.push(state);
  stateView.dataset.state = state;
  stateView.textContent = detail ? `${state} (${detail})` : state;
  send.disabled = state !== 'open';
  toggle.textContent = state === 'closed' ? 'Connect' : 'Disconnect';
}

function note(kind: 'said' | 'reply' | 'note', text: string): void {
  const item = document.createElement('li');
  item.className = kind;
  item.textContent = text;
  log.append(item);
}

function endpoint(): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/comm`;
}

function received(bytes: Uint8Array): void {
  partial += decoder.decode(bytes, { stream: true });
  for (let at = partial.indexOf('\n'); at >= 0; at = partial.indexOf('\n')) {
    note('reply', partial.slice(0, at).replace(/\r$/, ''));
    partial = partial.slice(at + 1);
  }
}

function connect(): void {
  clearTimeout(retryTimer);
  show('connecting');
  decoder = new TextDecoder();
  partial = '';
  const ws = new WebSocket(endpoint(), 'comm-stream');
  ws.binaryType = 'arraybuffer';
  socket = ws;
  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    retryMs = FIRST_RETRY_MS;
    show('open');
  });
  ws.addEventListener('message', (event: MessageEvent) => {
    const bytes =
      event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : encoder.encode(String(event.data));
    // An empty message is the server's end of output: nothing more will come on this connection.
    if (bytes.length === 0) ws.close(1000);
    else received(bytes);
  });
  ws.addEventListener('close', () => {
    if (socket !== ws) return;
    socket = null;
    if (!wanted) {
      show('closed');
      return;
    }
    note('note', 'the connection dropped; reconnecting');
    show('reconnecting', `in ${retryMs} ms`);
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
  });
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const line = input.value;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(encoder.encode(`${line}\n`));
  note('said', `I said: "${line}"`);
  input.value = '';
  input.focus();
});

toggle.addEventListener('click', () => {
  if (wanted) {
    wanted = false;
    clearTimeout(retryTimer);
    if (socket) socket.close(1000);
    else show('closed');
  } else {
    wanted = true;
    connect();
  }
});

connect();
