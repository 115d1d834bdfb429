/**
 * The names a listing of signatures calls at its top level: `startUpServer(options?)`,
 * `new SocketStream({ ... })`, `getSocketAddress(socket) / getSocketPeerAddress(socket)`. What is
 * inside parentheses (parameters, options) and after `//` is not a name of the API.
 */
export function calledNames(listing: string): string[] {
  const names = new Set<string>();
  for (const raw of listing.split('\n')) {
    const line = raw.replace(/\/\/.*$/, '');
    let depth = 0;
    for (let i = 0; i < line.length; i++) {
      const c = line[i] as string;
      if (c === '(') {
        if (depth === 0) {
          const name = line.slice(0, i).match(/([A-Za-z_$][\w$]*)\s*$/);
          if (name) names.add(name[1] as string);
        }
        depth++;
      } else if (c === ')') depth = Math.max(0, depth - 1);
    }
  }
  return [...names];
}
