/**
 * Flow and speed (contract section 6), R16c: input text is UTF-8. Malformed bytes become U+FFFD, a
 * byte-order mark is a character like any other, and a character split across packets is read
 * whole.
 */
import assert from 'node:assert/strict';
import { defineCase } from '../suite.js';
import { charReader, lineReader } from './helpers.js';

// ---- R16c: input text is UTF-8 ----

const BOM = '\uFEFF';
const REPLACEMENT = '\uFFFD';

/** Text as JSON with every non-ASCII character escaped, so that a BOM or a U+FFFD shows in a message. */
function show(value: unknown): string {
  return JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`,
  );
}

/** The lines (or characters) a reader gave, against those expected, both shown escaped on failure. */
function assertRead(got: unknown, expected: unknown[], what: string): void {
  assert.deepEqual(got, expected, `${what} gave ${show(got)}, not ${show(expected)}`);
}

defineCase(
  'R16c.bom-kept',
  'a byte-order mark is a character: readLine keeps U+FEFF at the start of the stream and of a later line',
  async (t) => {
    const { port, result } = await lineReader(t, 4);
    const client = await t.connect(port);
    await client.write(`${BOM}hello\nsecond\n${BOM}third\n`);
    client.end();
    assertRead(await result(), [`${BOM}hello`, 'second', `${BOM}third`, null], 'readLine');
  },
);

defineCase('R16c.bom-mid-line-kept', 'a byte-order mark inside a line is kept', async (t) => {
  const { port, result } = await lineReader(t, 2);
  const client = await t.connect(port);
  await client.write(`a${BOM}b\n`);
  client.end();
  assertRead(await result(), [`a${BOM}b`, null], 'readLine');
});

defineCase('R16c.read-char-bom', 'readChar reads a byte-order mark as the character U+FEFF', async (t) => {
  const { port, result } = await charReader(t);
  const client = await t.connect(port);
  await client.write(`${BOM}a${BOM}`);
  client.end();
  assertRead(await result(), [BOM, 'a', BOM, null], 'readChar');
});

defineCase(
  'R16c.split-character-read-whole',
  'a character (or a byte-order mark) split across packets is read whole by readLine',
  async (t) => {
    const { port, result } = await lineReader(t, 3);
    const client = await t.connect(port);
    client.setNoDelay(true);
    // 'x😀\n' is 78 f0 9f 98 80 0a, a BOM is ef bb bf: every piece but the last ends inside a character.
    const pieces = [[0x78, 0xf0, 0x9f], [0x98, 0x80, 0x0a, 0xef], [0xbb], [0xbf, 0x79, 0x0a]];
    for (const piece of pieces) {
      await client.write(Uint8Array.from(piece));
      await t.sleep(30);
    }
    client.end();
    assertRead(await result(), ['x😀', `${BOM}y`, null], 'readLine');
  },
);

defineCase(
  'R16c.malformed-bytes-replaced',
  'malformed UTF-8 becomes U+FFFD: a byte 0xFF, a lone continuation byte, a sequence cut short by the newline',
  async (t) => {
    const { port, result } = await lineReader(t, 5);
    const client = await t.connect(port);
    await client.write(
      Uint8Array.from([0x61, 0xff, 0x62, 0x0a, 0x80, 0x0a, 0x63, 0xe2, 0x82, 0x0a, 0x64, 0xf0, 0x9f, 0x98]),
    );
    client.end();
    assertRead(
      await result(),
      [`a${REPLACEMENT}b`, REPLACEMENT, `c${REPLACEMENT}`, `d${REPLACEMENT}`, null],
      'readLine',
    );
  },
);

defineCase(
  'R16c.read-char-malformed',
  'readChar gives one U+FFFD for each malformed sequence, and the characters after it one by one',
  async (t) => {
    const { port, result } = await charReader(t);
    const client = await t.connect(port);
    // e2 82 is a 3-byte sequence cut short by 'a'; ff is never UTF-8; 80 is a lone continuation byte.
    await client.write(Uint8Array.from([0xe2, 0x82, 0x61, 0xff, 0x62, 0x80, 0x63]));
    client.end();
    assertRead(await result(), [REPLACEMENT, 'a', REPLACEMENT, 'b', REPLACEMENT, 'c', null], 'readChar');
  },
);
