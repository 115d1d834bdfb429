import './cases/index.js';
// After the rules' cases: the seam's own (`seam.*`), at the end of the matrix.
import './seam/index.js';

export * from './kernel.js';
export { formatMatrix, type Matrix } from './matrix.js';
export {
  type BackendModule,
  type Case,
  type CaseContext,
  cases,
  defineCase,
  deviationFor,
  type Fixture,
  fixturePath,
  freePort,
  type Outcome,
  RawClient,
  type RawTransport,
  rawConnect,
  runCase,
  runSuite,
  type Subject,
  tcpTransport,
  within,
} from './suite.js';
