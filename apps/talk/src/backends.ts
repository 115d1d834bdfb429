import type * as NodeApi from '@comm/node';

/** What the talk apps use of a backend package; every backend package exports it. */
export type TalkApi = typeof NodeApi;

export const backendNames = ['node', 'bun', 'deno', 'uws'] as const;
export type BackendName = (typeof backendNames)[number];

/** The backend package by name; each is imported in its own runtime (see runtime.ts). */
export async function loadBackend(name: string): Promise<TalkApi> {
  switch (name) {
    case 'node':
      return import('@comm/node');
    case 'bun':
      return (await import('@comm/bun')) as unknown as TalkApi;
    case 'deno':
      return (await import('@comm/deno')) as unknown as TalkApi;
    case 'uws':
      return (await import('@comm/uws')) as unknown as TalkApi;
    default:
      throw new Error(`unknown backend "${name}": choose one of ${backendNames.join(', ')}`);
  }
}
