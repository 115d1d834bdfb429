// The contract's table of contents: each file adds the cases of one section (CONTRACT.md, sections
// 2, 3 and 6), and the order of the imports is the order of the matrix, which stays as it always
// was so that results compare across versions.
import './connections.js'; // R1, R2
import './addresses.js'; // R5, R6, R7, R8
import './address-functions.js'; // R18
import './listener.js'; // R3
import './address-functions-never-throw.js'; // R18a
import './options.js'; // section 2: options checked at the call
import './announce.js'; // R4, R11
import './wait-error.js'; // R12, R13
import './terminate.js'; // R15
import './processes.js'; // R19
import './socket-options.js'; // R9, R10
import './accept-failures.js'; // R14, R14a
import './streams.js'; // R16
import './closing.js'; // R16: end() is a FIN, close() lingers
import './client.js'; // R17
import './in-step.js'; // R16d
import './flow.js'; // R16a, R16b
import './flow-input.js'; // R16a: a handler that stops reading slows its sender
import './utf8.js'; // R16c
import './scale-out.js'; // R20, R21
import './tls.js'; // R22: talk, SNI, verification
import './tls-handshakes.js'; // R22: handshakes
import './tls-streams.js'; // R22: data
import './tls-contexts.js'; // R22: client certificates, STARTTLS, option checks
import './drain.js'; // R23
