import process from 'node:process';

/** `--tls-cert FILE --tls-key FILE` of a bare server's command line: both, or neither (null). */
export function tlsFiles(server: string, argv: readonly string[]): { cert: string; key: string } | null {
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : argv[i + 1];
  };
  const cert = at('--tls-cert');
  const key = at('--tls-key');
  if (cert === undefined && key === undefined) return null;
  if (cert === undefined || key === undefined) {
    console.error(`bare ${server}: --tls-cert and --tls-key go together`);
    process.exit(2);
  }
  return { cert, key };
}
