import { backendNames } from './backends.js';

/** The backends whose server and client the demo runs once more over TLS: every one. */
export const tlsDemoBackends: readonly string[] = backendNames;
