import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getServiceEntry, parseServices } from '../src/services.js';

const SAMPLE = [
  '# Network services, Internet style',
  '',
  'tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer',
  'echo\t\t7/tcp',
  'echo\t\t7/udp',
  'discard\t\t9/tcp\t\tsink null',
  'ssh   22/tcp    # SSH Remote Login Protocol',
  '   smtp 25/tcp mail   ',
  'http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP',
  'Talk\t\t517/udp',
  'lisp-demo 8000/tcp lispdemo Demo# no space before the hash',
  'dual 4000/udp dual-udp',
  'dual 4001/tcp dual-tcp',
  'first 5000/tcp',
  'second 5000/tcp',
  '# lines below are malformed and skipped',
  'noport',
  'badport abc/tcp',
  'noproto 123',
  'emptyproto 123/',
  'toobig 70000/tcp',
  'negative -1/tcp',
  '   # indented comment',
  'crlf 6000/tcp crlf-alias\r',
  'last 7000/sctp',
].join('\n');

describe('parseServices', () => {
  const entries = parseServices(SAMPLE);
  const byName = (name: string, protocol = 'tcp') =>
    entries.find((e) => e.name === name && e.protocol === protocol);

  it('keeps exactly the well-formed lines, in file order', () => {
    expect(entries.map((e) => `${e.name} ${e.port}/${e.protocol}`)).toEqual([
      'tcpmux 1/tcp',
      'echo 7/tcp',
      'echo 7/udp',
      'discard 9/tcp',
      'ssh 22/tcp',
      'smtp 25/tcp',
      'http 80/tcp',
      'Talk 517/udp',
      'lisp-demo 8000/tcp',
      'dual 4000/udp',
      'dual 4001/tcp',
      'first 5000/tcp',
      'second 5000/tcp',
      'crlf 6000/tcp',
      'last 7000/sctp',
    ]);
  });

  it('reads aliases and drops trailing comments', () => {
    expect(byName('discard')?.aliases).toEqual(['sink', 'null']);
    expect(byName('http')?.aliases).toEqual(['www']);
    expect(byName('ssh')?.aliases).toEqual([]);
    expect(byName('tcpmux')?.aliases).toEqual([]);
  });

  it('cuts a comment that touches the last field', () => {
    expect(byName('lisp-demo')?.aliases).toEqual(['lispdemo', 'Demo']);
  });

  it('copes with leading and trailing blanks and CRLF line ends', () => {
    expect(byName('smtp')).toEqual({ name: 'smtp', port: 25, protocol: 'tcp', aliases: ['mail'] });
    expect(byName('crlf')).toEqual({ name: 'crlf', port: 6000, protocol: 'tcp', aliases: ['crlf-alias'] });
  });

  it('gives ports as numbers', () => {
    expect(byName('http')?.port).toBe(80);
    expect(typeof byName('echo', 'udp')?.port).toBe('number');
  });

  it('gives nothing for empty or comment-only text', () => {
    expect(parseServices('')).toEqual([]);
    expect(parseServices('# only\n\n   \n\t# comments\n')).toEqual([]);
  });
});

describe('getServiceEntry', () => {
  let dir = '';
  let file = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'comm-services-'));
    file = join(dir, 'services');
    writeFileSync(file, SAMPLE);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds a service by name', () => {
    expect(getServiceEntry('http', 'tcp', file)).toEqual({
      name: 'http',
      port: 80,
      protocol: 'tcp',
      aliases: ['www'],
    });
  });

  it('finds a service by alias', () => {
    expect(getServiceEntry('www', 'tcp', file)?.name).toBe('http');
    expect(getServiceEntry('null', 'tcp', file)?.port).toBe(9);
  });

  it('finds a service by port number', () => {
    expect(getServiceEntry(22, 'tcp', file)?.name).toBe('ssh');
    expect(getServiceEntry(7, 'udp', file)?.protocol).toBe('udp');
  });

  it('defaults the protocol to tcp', () => {
    expect(getServiceEntry('dual', undefined, file)?.port).toBe(4001);
    expect(getServiceEntry(4000, undefined, file)).toBeNull();
  });

  it('requires the protocol to match', () => {
    expect(getServiceEntry('http', 'udp', file)).toBeNull();
    expect(getServiceEntry('Talk', 'tcp', file)).toBeNull();
    expect(getServiceEntry('Talk', 'udp', file)?.port).toBe(517);
    expect(getServiceEntry('dual', 'udp', file)?.port).toBe(4000);
    expect(getServiceEntry('dual-tcp', 'udp', file)).toBeNull();
    expect(getServiceEntry(7000, 'tcp', file)).toBeNull();
    expect(getServiceEntry(7000, 'sctp', file)?.name).toBe('last');
  });

  it('matches names case-sensitively, like getservbyname', () => {
    expect(getServiceEntry('HTTP', 'tcp', file)).toBeNull();
    expect(getServiceEntry('talk', 'udp', file)).toBeNull();
    expect(getServiceEntry('http', 'TCP', file)).toBeNull();
  });

  it('gives the first entry when several match', () => {
    expect(getServiceEntry(5000, 'tcp', file)?.name).toBe('first');
  });

  it('does not read a numeric string as a port', () => {
    expect(getServiceEntry('80', 'tcp', file)).toBeNull();
  });

  it('gives null for unknown names and ports', () => {
    expect(getServiceEntry('gopher-nope', 'tcp', file)).toBeNull();
    expect(getServiceEntry('', 'tcp', file)).toBeNull();
    expect(getServiceEntry(1234, 'tcp', file)).toBeNull();
    expect(getServiceEntry(70000, 'tcp', file)).toBeNull();
    expect(getServiceEntry(-1, 'tcp', file)).toBeNull();
  });

  it('does not match malformed lines', () => {
    expect(getServiceEntry('badport', 'tcp', file)).toBeNull();
    expect(getServiceEntry('toobig', 'tcp', file)).toBeNull();
  });

  it('gives null when the file cannot be read', () => {
    expect(getServiceEntry('http', 'tcp', join(dir, 'missing'))).toBeNull();
    expect(getServiceEntry('http', 'tcp', dir)).toBeNull();
  });

  it.each([
    ['2.5', 2.5],
    ['NaN', Number.NaN],
    ['null', null],
    ['undefined', undefined],
    ['80n', 80n],
    ['true', true],
  ])('throws a TypeError naming a bad service %s', (shown, service) => {
    const call = () => getServiceEntry(service as unknown as string, 'tcp', file);
    expect(call).toThrow(TypeError);
    expect(call).toThrow(shown);
  });

  it('names the service argument in the TypeError', () => {
    expect(() => getServiceEntry({} as unknown as string, 'tcp', file)).toThrow(/service/);
  });

  it.runIf(existsSync('/etc/services'))('finds http on port 80 in the real /etc/services', () => {
    expect(getServiceEntry('http')?.port).toBe(80);
    expect(getServiceEntry(80)?.protocol).toBe('tcp');
  });
});
