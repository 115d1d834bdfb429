import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bindUws } from '@comm/uws';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTalkWeb, type TalkWeb } from '../src/server.js';

// End to end in a real browser: Debian's Chromium, headless, driven by playwright-core. The page is
// served by the talk server on @comm/uws; a person's typing is what the test does.

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));
const SCREENSHOT = join(OUTPUT, 'talk-web.png');

let talk: TalkWeb;
let profile: string;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  // Never a silent skip: without the browser this test fails, saying how to get it.
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: install Debian's Chromium (apt-get update && apt-get install -y chromium)`,
    );
  talk = await startTalkWeb({ service: 0, address: '127.0.0.1' });
  profile = await mkdtemp(join(tmpdir(), 'talk-web-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
    viewport: { width: 800, height: 600 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

afterAll(async () => {
  await context?.close();
  await talk?.stop();
  if (profile) await rm(profile, { recursive: true, force: true });
});

async function state(): Promise<string | undefined> {
  return page
    .locator('#state')
    .getAttribute('data-state')
    .then((s) => s ?? undefined);
}

async function say(line: string): Promise<void> {
  await page.locator('#line').fill(line);
  await page.locator('#send').click();
  await page
    .locator('#log li.reply', { hasText: `You sent: '${line}'` })
    .waitFor({ state: 'visible', timeout: 10_000 });
}

describe('talk-web in Chromium', () => {
  it('types a line, sends it, and reads the reply', async () => {
    await page.goto(talk.url);
    await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#send').isEnabled()).toBe(true);
    await page.locator('#line').pressSequentially('Hello from the browser.');
    await page.locator('#send').click();
    const reply = page.locator('#log li.reply').first();
    await reply.waitFor({ timeout: 10_000 });
    expect(await reply.textContent()).toBe("You sent: 'Hello from the browser.'");
    await say("Why don't you say something original?");
    await mkdir(OUTPUT, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
  });

  it('shows the drop, reconnects, and talks again', async () => {
    await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 });
    const before = await page.evaluate(
      () => (globalThis as { talkStates?: string[] }).talkStates?.length ?? 0,
    );
    expect(talk.dropConnections()).toBe(1);
    // Reconnecting, then open again: read from the page's own record, so a quick reconnect is not missed.
    await page.waitForFunction(
      (from) => {
        const states = (globalThis as { talkStates?: string[] }).talkStates ?? [];
        const after = states.slice(from);
        return after.includes('reconnecting') && after.at(-1) === 'open';
      },
      before,
      { timeout: 15_000 },
    );
    const states = await page.evaluate(() => (globalThis as { talkStates?: string[] }).talkStates ?? []);
    expect(states.slice(before)).toEqual(['reconnecting', 'connecting', 'open']);
    expect(await state()).toBe('open');
    await say('Talk to you later then.  Bye.');
  });

  it('disconnect shows closed; connect opens again', async () => {
    await page.locator('#toggle').click();
    await page.locator('#state[data-state="closed"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#send').isDisabled()).toBe(true);
    await page.locator('#toggle').click();
    await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 });
    await say('back again');
  });
});

describe('the page on a uws backend', () => {
  it('a WebSocket client on the page path reaches the talk function (the page route lets upgrades through)', async () => {
    const api = bindUws();
    const stream = await api.openTcpStream('127.0.0.1', talk.port, { errorp: true });
    if (!stream) throw new Error('no stream');
    await stream.writeLine('Hello self.');
    stream.forceOutput();
    expect(await stream.readLine()).toBe("You sent: 'Hello self.'");
    await stream.close();
  });
});
