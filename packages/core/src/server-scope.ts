// Apart from scope.ts: its AsyncLocalStorage would make every declaration that names this type
// need Node's types.
/**
 * What a server's `function` and `announce` run inside: `serverTerminate()` with no argument
 * finds the server by it, and `processRunFunction` hands it the sessions it starts (R23).
 */
export interface ServerScope {
  requestTerminate(drain: number | null): boolean;
  /** A process started in this scope: the server keeps it as a session until `sessionEnded`. */
  adopt(session: object): void;
  sessionEnded(session: object): void;
}
