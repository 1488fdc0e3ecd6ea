import { test, expect, type Page } from '@playwright/test';
import { hydrated } from './helpers';

// Verify and Demo from the browser, against the stack services.spec provisioned (file order:
// runs after it). Steps appear live; the summary and the counts must add up.

test('Verify: a run streams its checks live and ends with claim vs measured for each', async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto('/verify');
  await hydrated(page);
  await page.getByRole('button', { name: 'Run verification' }).click();
  await expect(page.getByRole('status')).toContainText(/verification started|in progress/);
  // Live: the status is "running" while checks arrive one by one.
  await expect(page.getByTestId('run-status')).toHaveText('running', { timeout: 15_000 });
  const rows = page.getByRole('table', { name: 'Checks' }).locator('tbody').getByRole('row');
  await expect(rows.first()).toBeVisible({ timeout: 30_000 });
  await expect(page.getByTestId('run-status')).toHaveText(/passed|failed/, { timeout: 150_000 });
  const n = await rows.count();
  expect(n).toBeGreaterThanOrEqual(15);
  await expect(page.getByTestId('run-progress')).toHaveText(`${n} of ${n} checks`);
  // Every row has a measured value; the seed's claims sit beside them.
  for (let i = 0; i < n; i++) {
    await expect(rows.nth(i).getByTestId('measured')).not.toBeEmpty();
  }
  await expect(page.locator('tr[data-check="pg.replication_lag"]')).toContainText('replication lag < 1 s');
  await expect(page.getByTestId('run-status')).toHaveText('passed');
  await expect(page.getByRole('table', { name: 'History' }).locator('tbody').getByRole('row').first()).toContainText('passed');
});

test('Demo: events flow through both processors; processed + DLQ = produced, none lost', async ({ page }) => {
  test.setTimeout(120_000);
  await page.goto('/demo');
  await hydrated(page);
  await page.getByLabel('Demo events').fill('3000');
  await page.getByLabel('Demo rate').fill('1000');
  await page.getByLabel('Demo malformed every').fill('30');
  await page.getByRole('button', { name: 'Run demo' }).click();
  await expect(page.getByRole('status')).toContainText('demo started');
  // The counts table, read as a user reads it: the row's label, then its value.
  const count = (label: string) => page.getByRole('table', { name: 'Demo counts' })
    .getByRole('row', { name: new RegExp('^' + label) }).getByRole('cell').last();
  const value = async (label: string) => Number(await count(label).innerText());
  // Live progress while it runs.
  await expect.poll(() => value('Produced'), { timeout: 30_000 }).toBeGreaterThan(0);
  await expect(page.getByTestId('demo-status')).toHaveText('passed', { timeout: 90_000 });
  const produced = await value('Produced');
  const processed = await value('Processed');
  const dlq = await value('Dead-lettered');
  expect(produced).toBe(3000);
  expect(dlq).toBe(100);
  expect(processed + dlq).toBe(produced);
  await expect(count('Lost')).toHaveText('0');
  await expect(page.getByRole('table', { name: 'History' }).locator('tbody').getByRole('row').first()).toContainText('3000 produced');
});

test('Drills: a replica stopped under load, the timeline live, the verdict beside the expectation', async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto('/drills');
  await hydrated(page);
  const drills = page.getByRole('table', { name: 'Drills' });
  await expect(drills.getByRole('row', { name: /broker-kill/ })).toContainText('0 events lost');
  const replica = drills.getByRole('row', { name: /replica-stop/ });
  await expect(replica).toContainText('0 failed reads');
  await replica.getByRole('button', { name: 'Run replica-stop' }).click();
  await expect(page.getByRole('status').filter({ hasText: /drill replica-stop started/ })).toBeVisible();
  // Live: the fault and its removal appear on the timeline while the drill runs.
  const timeline = page.getByTestId('drill-timeline');
  await expect(timeline).toContainText('fault injected: stop postgres-replica-1', { timeout: 30_000 });
  // The topology shows the faulted part and links to the drill while it runs.
  const topo = await page.context().newPage();
  await topo.goto('/topology');
  await expect(topo.getByTestId('topology-drill')).toContainText('replica-stop running: postgres-replica-1');
  await expect(topo.locator('[data-service="postgres-replica-1"]')).toHaveClass(/faulted/);
  await topo.close();
  await expect(timeline).toContainText('fault removed: stop postgres-replica-1 undone', { timeout: 40_000 });
  // Live charts of the load: reads through the router and through HAProxy, per second.
  const reads = page.getByRole('img', { name: 'Reads per second' });
  await expect(reads).toBeVisible();
  await expect(page.getByTestId('drill-reads-chart-router ok')).not.toHaveText('0.00');
  await expect(page.getByTestId('drill-status')).toHaveText(/passed|failed/, { timeout: 150_000 });
  await expect(timeline).toContainText('load finished');
  // Whatever the verdict, it names what was measured against the expectation.
  await expect(page.getByTestId('drill-verdict')).toContainText(/as expected|failed|lost|not recovered/);
  await expect(page.getByTestId('drill-lost')).toHaveText('0');
  await expect(page.getByTestId('drill-acked-missing')).toHaveText('0');
  await expect(page.getByRole('table', { name: 'History' }).locator('tbody').getByRole('row').first()).toContainText('replica-stop');
});
