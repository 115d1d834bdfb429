import type * as NodeApi from '@comm/node';

/** What the talk apps use of a backend package; every backend package exports it. */
export type TalkApi = typeof NodeApi;

export const backendNames = ['node'] as const;
export type BackendName = (typeof backendNames)[number];

export async function loadBackend(name: string): Promise<TalkApi> {
  switch (name) {
    case 'node':
      return import('@comm/node');
    default:
      throw new Error(`unknown backend "${name}": choose one of ${backendNames.join(', ')}`);
  }
}
