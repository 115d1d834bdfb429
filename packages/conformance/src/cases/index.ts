// Each file adds the cases of its rules; the order here is the order of the matrix.
import './connections.js';
import './addresses.js';
import './lifecycle.js';
import './sockets.js';
import './accept.js';
import './streams.js';
import './in-step.js';
import './flow.js';
import './scale-out.js';
import './tls.js';
import './drain.js';
