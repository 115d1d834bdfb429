// `@comm/uws/conformance`: the backend as `comm-conformance` runs it. Its servers speak WebSocket,
// so the suite's independent client reaches them with this module's `conformanceTransport`.
export * from './index.js';
export { conformanceTransport } from './transport.js';
