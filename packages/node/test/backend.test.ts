import { describe, expect, it } from 'vitest';
import { backend } from '../src/index.js';

// The seam itself, below the contract: what core relies on from this backend.
describe('node backend seam', () => {
  it('listens, accepts in order, reads and writes', async () => {
    const listener = await backend.listen({
      host: '127.0.0.1',
      port: 0,
      family: 4,
      ipv6Only: false,
      backlog: 5,
      reusePort: false,
    });
    try {
      const a = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
      const b = await backend.connect({ host: '127.0.0.1', port: listener.local.port, family: 4 });
      const first = await listener.accept();
      const second = await listener.accept();
      expect(first?.remote.port).toBe(a.local.port);
      expect(second?.remote.port).toBe(b.local.port);
      await a.write(new TextEncoder().encode('hi'));
      await a.end();
      expect(new TextDecoder().decode((await first?.read()) ?? undefined)).toBe('hi');
      expect(await first?.read()).toBeNull();
      for (const c of [a, b, first, second]) c?.destroy();
    } finally {
      await listener.close();
    }
    expect(await listener.accept()).toBeNull();
  });

  it('binding a port in use fails with EADDRINUSE', async () => {
    const spec = {
      host: '127.0.0.1',
      port: 0,
      family: 4 as const,
      ipv6Only: false,
      backlog: 5,
      reusePort: false,
    };
    const listener = await backend.listen(spec);
    try {
      await expect(backend.listen({ ...spec, port: listener.local.port })).rejects.toMatchObject({
        code: 'EADDRINUSE',
      });
    } finally {
      await listener.close();
    }
  });
});
