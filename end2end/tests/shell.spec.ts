import { test, expect, type Page } from '@playwright/test';
import { hydrated } from './helpers';
import { execFileSync } from 'node:child_process';

// What the Docker engine itself says, asked with the docker CLI (not through the product).
function engineFacts(): { version: string; api: string } {
  const out = execFileSync('docker', ['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}'], {
    encoding: 'utf8',
    env: process.env,
  }).trim();
  const [version, api] = out.split(/\s+/);
  return { version, api };
}

const PAGES: Array<[string, string]> = [
  ['Topology', 'Topology'],
  ['Services', 'Services'],
  ['Cluster', 'Cluster'],
  ['Logs', 'Logs'],
  ['Streams', 'Streams'],
  ['Database', 'Database'],
  ['Alerts', 'Alerts'],
  ['Gateway', 'Gateway'],
  ['Verify', 'Verify'],
  ['Demo', 'Demo'],
  ['Drills', 'Drills'],
  ['Audit', 'Audit'],
  ['Users', 'Users'],
  ['Overview', 'Overview'],
];


test.describe('server-side rendering without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('overview shows the real engine version', async ({ page }) => {
    const facts = engineFacts();
    await page.goto('/');
    await expect(page.getByRole('heading', { name: 'Docker engine' })).toBeVisible();
    await expect(page.getByTestId('engine-version')).toHaveText(facts.version);
    await expect(page.getByTestId('engine-api')).toHaveText(facts.api);
    await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link')).toHaveCount(PAGES.length);
    await expect(page.locator('[data-hydrated="true"]')).toHaveCount(0);
  });
});

test('hydration: Refresh asks the engine again through a server function', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const calls: string[] = [];
  page.on('request', (r) => r.url().includes('/api/') && calls.push(r.url()));

  await page.goto('/');
  await hydrated(page);
  const before = await page.getByTestId('engine-fetched-at').textContent();
  await page.getByRole('button', { name: 'Refresh' }).click();
  await expect(page.getByTestId('engine-fetched-at')).not.toHaveText(before ?? '');
  await expect(page.getByTestId('engine-version')).toHaveText(engineFacts().version);
  expect(calls.length).toBeGreaterThan(0);
  expect(errors).toEqual([]);
});

test('navigation reaches every page', async ({ page }) => {
  await page.goto('/');
  await hydrated(page);
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const [link, heading] of PAGES) {
    await nav.getByRole('link', { name: link, exact: true }).click();
    await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
  }
});

test('the Cluster page with the engine backend says there is no swarm and how to run on one', async ({ page }) => {
  await page.goto('/cluster');
  await hydrated(page);
  await expect(page.getByTestId('backend')).toHaveText('engine');
  await expect(page.getByRole('alert')).toContainText('runtime.backend = "swarm"');
  await expect(page.getByRole('table', { name: 'Nodes' })).toHaveCount(0);
});

test('screenshot of the overview', async ({ page }, testInfo) => {
  await page.goto('/');
  await hydrated(page);
  await expect(page.getByTestId('engine-version')).toBeVisible();
  const path = testInfo.outputPath('overview.png');
  await page.screenshot({ path, fullPage: true });
  await testInfo.attach('overview', { path, contentType: 'image/png' });
});

test('a dropped download of the bundle is retried: the page still hydrates and navigates', async ({ page }) => {
  // The network drops the first two requests for every part of the bundle's code (the main
  // wasm module, each page's chunks: what the loaders fetch()), as Chromium does to requests
  // in flight when the host's networks change. Without the retry (public/fetch-retry.js)
  // the page never hydrates.
  const seen = new Map<string, number>();
  let dropped = 0;
  await page.route((url) => url.pathname.startsWith('/pkg/') && url.pathname.endsWith('.wasm'), async (route) => {
    const url = route.request().url();
    const n = (seen.get(url) ?? 0) + 1;
    seen.set(url, n);
    if (n <= 2) {
      dropped += 1;
      await route.abort('internetdisconnected');
    } else {
      await route.continue();
    }
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto('/');
  await hydrated(page);
  const onFirstLoad = dropped;
  expect(onFirstLoad).toBeGreaterThanOrEqual(2);
  // A page not shown yet: its chunk is fetched now, on a client-side navigation.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Streams', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Streams' })).toBeVisible();
  expect(dropped).toBeGreaterThan(onFirstLoad);
  expect(errors).toEqual([]);
});
