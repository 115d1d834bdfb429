// The seam cases (ids `seam.*`): the `Backend` interface's own promises, after the contract's
// rules in the matrix. `comm-conformance --only seam` runs them alone.
import './cases.js';
import './accept-errors.js';
