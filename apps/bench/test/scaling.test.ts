import { describe, expect, it } from 'vitest';
import { listenerFault, servedFault } from '../src/scaling.js';

// The scaling row's verdicts on their own: a row whose sockets or counts are wrong is a fault.
describe('scaling row verdicts', () => {
  it('a pair of workers is sound when each holds one of two listening sockets and each accepted', () => {
    expect(
      listenerFault(
        [
          { inode: 1, pids: [10] },
          { inode: 2, pids: [11] },
        ],
        [10, 11],
      ),
    ).toBeNull();
    expect(
      servedFault(
        {
          shares: [
            [
              { pid: 10, accepted: 120, cpu: 0.5 },
              { pid: 11, accepted: 136, cpu: 0.5 },
            ],
          ],
        },
        256,
      ),
    ).toBeNull();
  });

  it('one worker that accepted everything is a fault, naming both', () => {
    const fault = servedFault(
      {
        shares: [
          [
            { pid: 10, accepted: 128, cpu: 0.5 },
            { pid: 11, accepted: 128, cpu: 0.5 },
          ],
          [
            { pid: 10, accepted: 256, cpu: 0.9 },
            { pid: 11, accepted: 0, cpu: 0 },
          ],
        ],
      },
      256,
    );
    expect(fault).toMatch(/round 2: worker pid 11 accepted no connection \(pid 10 accepted 256 of the 256\)/);
  });

  it('a listening socket missing, extra, or held by another process is a fault', () => {
    expect(listenerFault([{ inode: 1, pids: [10] }], [10, 11])).toMatch(/1 listening socket .*not 2/);
    expect(
      listenerFault(
        [
          { inode: 1, pids: [10] },
          { inode: 2, pids: [10] },
        ],
        [10, 11],
      ),
    ).toMatch(/worker pid 10 does not hold exactly one/);
    expect(
      listenerFault(
        [
          { inode: 1, pids: [10] },
          { inode: 2, pids: [99] },
        ],
        [10, 11],
      ),
    ).toMatch(/worker pid 11 does not hold exactly one/);
  });
});
