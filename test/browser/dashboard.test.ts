import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { QUEUE_NAME } from '../../src/core/job.js';
import { DashboardStack, DEAD_LETTER_REASON } from '../support/dashboard-stack.js';
import { unlessInstalled } from '../support/requires-tool.js';

/** Debian's Chromium; `.ci/run` installs it. */
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const skip = unlessInstalled(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium)`);

describe('queue dashboard in a real browser', { skip }, () => {
  let stack: DashboardStack;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  let failed: { webhookId: string; predictionId: string };

  before(async () => {
    stack = await DashboardStack.start();
    failed = await stack.deadLetterOne();
    profile = mkdtempSync(join(tmpdir(), 'inlet-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
    });
    // Hermetic: the page may only talk to the ingest (bull-board links a web font).
    const origin = stack.ingest.url;
    await browser.route('**/*', (route) =>
      route.request().url().startsWith(origin) ? route.continue() : route.abort(),
    );
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(10_000);
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await stack?.close();
  });

  it('logs in, opens a dead-lettered delivery, retries it, and sees it leave the failed list', async () => {
    const origin = stack.ingest.url;

    // Not logged in: the dashboard sends the browser to the login form.
    await page.goto(`${origin}/admin/queues`);
    assert.match(page.url(), /\/admin\/login\?next=/);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not the admin token' }).waitFor();

    await page.getByLabel('Admin token').fill(stack.token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${origin}/admin/queues`);

    // Find the queue, then its failed (dead-lettered) deliveries.
    await page.getByRole('link', { name: QUEUE_NAME, exact: true }).first().click();
    await page.waitForURL(/\/admin\/queues\/queue\/deliveries/);
    const failedTab = page.getByRole('link', { name: /^failed/i });
    await failedTab.click();
    const jobLink = page.getByRole('link', { name: failed.webhookId });
    await jobLink.waitFor();

    // Open the delivery: its error is on the page.
    await jobLink.click();
    await page.waitForURL(new RegExp(`/queue/${QUEUE_NAME}/${failed.webhookId}`));
    await page.getByText(DEAD_LETTER_REASON).first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-dead-letter.png'), fullPage: true });

    // Retry it from the page (the circular-arrows action, whose tooltip says Retry).
    const retry = page.locator('button:has(svg.lucide-refresh-cw)').first();
    await retry.hover();
    await page.getByText('Retry', { exact: true }).first().waitFor();
    await retry.click();
    await page.getByText('Are you sure that you want to retry this job?').waitFor();
    await page.getByRole('button', { name: 'Confirm' }).click();

    // The worker runs it again (its processor succeeds on the second try): it leaves the failed list.
    await stack.waitForState(failed.webhookId, 'completed');
    assert.ok(stack.succeeded.has(failed.predictionId), 'the processor ran again and succeeded');
    await page.goto(`${origin}/admin/queues/queue/${QUEUE_NAME}?status=failed`);
    await failedTab.waitFor();
    await page.getByRole('link', { name: failed.webhookId }).waitFor({ state: 'detached' });
    assert.equal(await page.getByRole('link', { name: failed.webhookId }).count(), 0);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-after-retry.png'), fullPage: true });

    // …and shows up among the completed ones.
    await page.goto(`${origin}/admin/queues/queue/${QUEUE_NAME}?status=completed`);
    await page.getByRole('link', { name: failed.webhookId }).waitFor();

    // Logging out (the user menu) ends the session: the dashboard asks for the token again.
    await page.locator('button:has(svg[class*="user"])').first().click();
    await page.getByText('Log out', { exact: true }).click();
    await page.waitForURL(`${origin}/admin/login`);
    await page.goto(`${origin}/admin/queues`);
    assert.match(page.url(), /\/admin\/login\?next=/);
  });
});
