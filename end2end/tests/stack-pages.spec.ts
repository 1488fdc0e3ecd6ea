import { test, expect, type Page } from '@playwright/test';
import { hydrated } from './helpers';
import { execFileSync } from 'node:child_process';

// Alerts and Gateway pages against the real AlertManager, Envoy and HAProxy of the stack
// that services.spec provisioned (same worker, runs after it in file order).

function amtool(labels: string[]): string {
  return execFileSync('docker', ['exec', 'bss-alertmanager', 'amtool', 'config', 'routes', 'test',
    '--config.file=/etc/alertmanager/alertmanager.yml', ...labels], { env: process.env }).toString().trim();
}

test('Alerts: the tree has 4 routes and 5 receivers; the route tester agrees with amtool and highlights the path', async ({ page }) => {
  await page.goto('/alerts');
  await hydrated(page);
  await expect(page.getByTestId('route-count')).toHaveText('4');
  await expect(page.getByTestId('receiver-count')).toHaveText('5');
  await expect(page.getByTestId('route-tree').locator('.kind-slack').first()).toBeVisible();

  for (const labels of [['team=database', 'severity=critical'], ['severity=warning'], ['team=nobody']]) {
    await page.getByLabel('Alert labels').fill(labels.join(', '));
    await page.getByRole('button', { name: 'Test route' }).click();
    const expected = amtool(labels).split(',');
    await expect(page.getByTestId('route-result')).toHaveText(new RegExp('^→ ' + expected.map(r => `${r} \\(via [\\w.]+\\)`).join(', then ') + '$'));
  }
  // The last test matched nothing but the root: only the root is highlighted.
  await expect(page.locator('.route.hit')).toHaveCount(1);
  await expect(page.locator('.route.hit')).toHaveAttribute('data-path', 'root');

  // A test alert shows up as delivered to the receivers the tester predicted.
  await page.getByLabel('Alert labels').fill('team=database, severity=warning');
  await page.getByRole('button', { name: 'Fire test alert' }).click();
  await expect(page.getByRole('status')).toContainText('should deliver it to dba-email, warning-slack');
  const name = (await page.getByRole('status').innerText()).split(' ')[0];
  const deliveries = page.getByRole('table', { name: 'Deliveries' });
  for (const rx of ['dba-email', 'warning-slack']) {
    await expect(deliveries.getByRole('row').filter({ hasText: name }).filter({ has: page.getByRole('cell', { name: rx, exact: true }) }))
      .toHaveCount(1, { timeout: 45_000 });
  }
});

test('Gateway: burst test gets 429s from Envoy and the counter moves; HAProxy backends are listed', async ({ page }) => {
  await page.goto('/gateway');
  await hydrated(page);
  await expect(page.getByTestId('envoy-ready')).toHaveText('LIVE');
  const breaker = page.getByRole('table', { name: 'Circuit breakers' }).getByRole('row', { name: 'max_connections', exact: true });
  await expect(breaker.getByRole('cell').nth(1)).toHaveText('100');
  await expect(page.getByRole('table', { name: 'HAProxy servers' }).getByRole('row', { name: 'postgres-replica-1', exact: true })).toContainText('UP');
  const counter = page.getByRole('table', { name: 'Envoy counters' })
    .getByRole('row', { name: 'http_local_rate_limiter.http_local_rate_limit.rate_limited', exact: true }).getByRole('cell').nth(1);
  const before = Number(await counter.innerText());
  await page.getByLabel('Burst requests').fill('30');
  await page.getByRole('button', { name: 'Run burst test' }).click();
  const result = page.getByRole('status');
  await expect(result).toContainText('30 sent');
  const m = (await result.innerText()).match(/(\d+) passed, (\d+) limited \(429\), 0 other in (\d+) ms \(at most (\d+) may pass\)/);
  expect(m).not.toBeNull();
  // The bound allows for the tokens that refill (one every 0.6 s) while the burst is in flight.
  const [passed, limited, spanMs, most] = [Number(m![1]), Number(m![2]), Number(m![3]), Number(m![4])];
  expect(most).toBe(11 + Math.floor(spanMs / 600));
  expect(most).toBeLessThan(30);
  expect(passed).toBeLessThanOrEqual(most);
  expect(limited).toBe(30 - passed);
  await expect.poll(async () => Number(await counter.innerText()), { timeout: 10_000 }).toBeGreaterThanOrEqual(before + limited);
});
