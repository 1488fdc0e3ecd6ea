import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { hydrated } from './helpers';

// Pages everyone can use, against the stack services.spec provisioned (file order: runs
// after verify-demo, before the shared project): axe-core on every page in both colour
// schemes, every page's read-only content with JavaScript off, and the three long actions
// (provision, verification, demo) done with the keyboard alone.

const PAGES = ['/', '/topology', '/services', '/cluster', '/logs', '/audit', '/streams', '/database', '/alerts',
  '/gateway', '/verify', '/demo', '/drills', '/users'];

async function seriousViolations(page: Page) {
  const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

for (const scheme of ['dark', 'light'] as const) {
  test(`axe: no serious or critical violation on any page (${scheme} scheme)`, async ({ page }) => {
    test.setTimeout(180_000);
    await page.emulateMedia({ colorScheme: scheme });
    const found: Record<string, string[]> = {};
    // A panic in the wasm (a hydration mismatch, as a NaN sent as JSON null once caused)
    // leaves the page looking right and dead. The release wasm aborts on a panic (no
    // message: `-Cpanic=immediate-abort`), which the browser reports as a RuntimeError
    // (`unreachable`) thrown from the wasm; a build with messages writes 'panicked'.
    const panics: string[] = [];
    let current = '';
    const wasmFault = (t: string) => /panicked|RuntimeError|unreachable/.test(t);
    page.on('console', (m) => { if (m.type() === 'error' && wasmFault(m.text())) panics.push(`${current}: ${m.text().slice(0, 160)}`); });
    page.on('pageerror', (e) => { if (wasmFault(`${e.name}: ${e.message}`)) panics.push(`${current}: ${e.name}: ${e.message.slice(0, 160)}`); });
    for (const path of PAGES) {
      current = path;
      await page.goto(path);
      await hydrated(page);
      // Live pages fill in after hydration: check what a user sees once it settled.
      await page.waitForTimeout(500);
      found[path] = await seriousViolations(page);
    }
    // One line per page, for the record (counts per page in the closing note).
    for (const [path, v] of Object.entries(found)) console.log(`axe ${scheme} ${path}: ${v.length} serious/critical${v.length ? ' — ' + v.join('; ') : ''}`);
    expect(Object.values(found).flat()).toEqual([]);
    expect(panics).toEqual([]);
  });
}

test('themes follow prefers-color-scheme', async ({ page }) => {
  const bg = async (scheme: 'dark' | 'light') => {
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto('/');
    return page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  };
  const dark = await bg('dark');
  const light = await bg('light');
  expect(dark).toBe('rgb(15, 20, 25)');
  expect(light).toBe('rgb(246, 248, 250)');
});

test('every page shows its read-only content with JavaScript off', async ({ browser }) => {
  test.setTimeout(120_000);
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  for (const path of PAGES) {
    const res = await page.goto(path);
    expect(res?.status(), path).toBe(200);
    const main = page.locator('main');
    // The page's own heading and its data, rendered by the server: not a loading
    // placeholder, not an error.
    await expect(main.locator('h1'), path).toHaveCount(1);
    await expect(main.locator('h1'), path).not.toHaveText(/not found/i);
    await expect(main.locator('[aria-busy="true"]'), `${path} still loading without JavaScript`).toHaveCount(0);
    await expect(main.locator('table, svg, dl, figure, pre, form').first(), `${path} has content`).toBeVisible();
  }
  // Data, not just layout: the Services page lists every service of the stack with its state.
  await page.goto('/services');
  const rows = page.getByRole('table', { name: 'Services' }).locator('tbody tr');
  expect(await rows.count()).toBeGreaterThanOrEqual(10);
  await expect(rows.first()).toContainText(/running|exited/);
  // A chart reads as its values: the text alternative names the current value and range.
  await page.goto('/database');
  const chart = page.locator('figure.chart svg[role="img"]').first();
  await expect(chart).toHaveAttribute('aria-label', /now [0-9.]+ .*\([0-9.]+ to [0-9.]+\)|no data yet/);
  await ctx.close();
});

// The keyboard only: Tab until the element with this accessible name has focus.
async function tabTo(page: Page, name: string) {
  for (let i = 0; i < 250; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const e = document.activeElement as (HTMLElement & { labels?: NodeListOf<HTMLLabelElement> }) | null;
      if (!e) return '';
      return (e.getAttribute('aria-label') || e.labels?.[0]?.innerText || e.innerText || '').trim();
    });
    if (focused === name) return;
  }
  throw new Error(`"${name}" is not reachable with Tab`);
}

test('keyboard alone: provision the stack, run the verification, run the demo', async ({ page }) => {
  test.setTimeout(300_000);
  await page.goto('/services');
  await hydrated(page);
  // The stack may already be up (services.spec provisioned it): this press must finish an
  // `up` of its own, a new "up finished" line on the feed, not an earlier one.
  const finished = page.getByRole('log', { name: 'Stack events' }).locator('li', { hasText: /: up finished/ });
  const before = await finished.count();
  await tabTo(page, 'Provision stack');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('status', { name: 'Last action' })).toContainText('up started');
  await expect.poll(() => finished.count(), { timeout: 240_000 }).toBeGreaterThan(before);
  await expect(page.getByText(/^(\d+) of \1 services up$/)).toBeVisible({ timeout: 60_000 });

  await tabTo(page, 'Verify');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/verify$/);
  await hydrated(page);
  await tabTo(page, 'Run verification');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('run-status')).toHaveText('running', { timeout: 15_000 });
  await expect(page.getByTestId('run-status')).toHaveText(/passed|failed/, { timeout: 180_000 });

  await tabTo(page, 'Demo');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/demo$/);
  await hydrated(page);
  await tabTo(page, 'Demo events');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('400');
  await tabTo(page, 'Run demo');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('demo-status')).toHaveText('passed', { timeout: 90_000 });
});
