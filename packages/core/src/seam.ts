// `@comm/core/backend`: the contract, and what a backend author needs to implement it (the seam's
// types, `bindBackend`, the queues every backend adapts its runtime's events with) and what the
// conformance suite tunes. Users of a backend package need none of it.
export * from './address.js';
export type * from './backend.js';
export { type BoundApi, bindBackend } from './bind.js';
export { errorCode } from './conditions.js';
export { admitConnection, releaseConnection } from './descriptors.js';
export * from './index.js';
export { formatS } from './options.js';
export { AcceptQueue, connectionClosed, type PausableSource, ReadAhead } from './push.js';
export { PullQueue } from './queue.js';
export { type AcceptFailureKind, acceptFailureKind, acceptFailurePolicy } from './server.js';
export { parseServices } from './services.js';
export { LOOPBACK_SOURCES, type TrustedSources, trustedSources } from './trusted.js';
