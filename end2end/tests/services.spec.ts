import { test, expect, type Page } from '@playwright/test';
import { hydrated, serviceRow } from './helpers';
import { execFileSync } from 'node:child_process';

// A write on the primary, through its own psql (not through the product).
function writeOnPrimary() {
  execFileSync('docker', ['exec', 'bss-postgres-primary', 'psql', '-q', '-U', 'postgres', '-d', 'bss', '-c',
    'CREATE TABLE IF NOT EXISTS e2e_lag (x int); INSERT INTO e2e_lag SELECT generate_series(1, 2000)'], { env: process.env });
}

// Against the real engine and the real offline images: provision the whole Phase 3 stack
// from the browser, watch it turn healthy live, then stop one service and start it again.

test('provision from the UI, every service turns healthy, stop one and start it again', async ({ page }) => {
  test.setTimeout(540_000);
  await page.goto('/services');
  await hydrated(page);
  await expect(page.getByText('(connected)')).toBeVisible();

  await page.getByRole('button', { name: 'Provision stack' }).click();
  await expect(page.getByRole('status', { name: 'Last action' })).toContainText('up started');
  // Progress arrives live on the feed while provisioning runs.
  const feed = page.getByRole('log', { name: 'Stack events' });
  await expect(feed.locator('li').first()).toBeVisible({ timeout: 30_000 });
  await expect(page.getByText(/^(\d+) of \1 services up$/)).toBeVisible({ timeout: 300_000 });
  await expect(feed).toContainText('stack bss is up', { timeout: 60_000 });

  const row = serviceRow(page, 'haproxy');
  await expect(row.locator('.badge')).toHaveClass(/\bok\b/);
  await row.getByRole('button', { name: 'Stop', exact: true }).click();
  await expect(row.locator('.badge')).toHaveClass(/\bbad\b/, { timeout: 60_000 });
  await expect(row.locator('.badge')).toContainText('exited');

  await page.goto('/topology');
  await hydrated(page);
  await expect(page.locator('g.node[data-service="haproxy"]')).toHaveClass(/\bbad\b/);
  await expect(page.locator('g.node[data-service="postgres-primary"]')).toHaveClass(/\bok\b/);

  await page.goto('/services');
  await hydrated(page);
  await serviceRow(page, 'haproxy').getByRole('button', { name: 'Start', exact: true }).click();
  await expect(serviceRow(page, 'haproxy').locator('.badge')).toHaveClass(/\bok\b/, { timeout: 90_000 });

  await serviceRow(page, 'haproxy').getByRole('button', { name: 'Logs' }).click();
  await expect(page.getByRole('log', { name: 'Container logs' })).not.toBeEmpty();

  // Merged logs: several services in one view, narrowed by search, following live.
  await page.goto('/logs');
  await hydrated(page);
  const merged = page.getByTestId('merged-logs');
  await expect(merged.locator('.logline[data-service="postgres-primary"]').first()).toBeVisible();
  await expect(merged.locator('.logline[data-service="haproxy"]').first()).toBeVisible();
  await page.getByRole('searchbox', { name: 'Search logs' }).fill('haproxy');
  await expect(merged.locator('.logline[data-service="postgres-primary"]')).toHaveCount(0);
  await expect(page.getByText('following live')).toBeVisible();

  // Database: pausing replay on a replica makes its lag rise on the chart and the router
  // takes it out; resuming brings it back.
  await page.goto('/database');
  await hydrated(page);
  const r1 = page.getByRole('table', { name: 'Replicas' }).getByRole('row', { name: 'postgres-replica-1', exact: true });
  await expect(r1.getByTestId('admission')).toHaveText('taking reads', { timeout: 30_000 });
  await r1.getByRole('button', { name: 'Pause replay' }).click();
  await expect(page.getByRole('status')).toContainText('replay paused');
  for (let i = 0; i < 8; i++) {
    writeOnPrimary();
    await page.waitForTimeout(700);
  }
  await expect.poll(async () => Number(await page.getByTestId('lag-secs-postgres-replica-1').textContent()), { timeout: 20_000 }).toBeGreaterThan(1);
  await expect(r1.getByTestId('admission')).toContainText('lag', { timeout: 20_000 });
  // Drawn (one polyline per run of known values: a time the replica did not answer, such as
  // before the stack was provisioned, is a gap, not a 0).
  await expect(page.getByTestId('lag-secs').locator('polyline[data-series="postgres-replica-1"]').first()).toBeAttached();
  await r1.getByRole('button', { name: 'Resume replay' }).click();
  await expect(r1.getByTestId('admission')).toHaveText('taking reads', { timeout: 30_000 });

  // A stopped replica's lag is unknown, not 0: the row says so and is out of the read pool;
  // started again, it is measured and taking reads.
  const r2 = page.getByRole('table', { name: 'Replicas' }).getByRole('row', { name: 'postgres-replica-2', exact: true });
  await expect(r2.getByTestId('lag')).toHaveText(/^\d+ B \/ \d+\.\d\d s$/);
  // From the Services page (an operator's stop, not a crash the supervisor heals), then
  // back to the Database page.
  const onServices = async (button: 'Stop' | 'Start', badge: RegExp, timeout: number) => {
    await page.goto('/services');
    await hydrated(page);
    const row = serviceRow(page, 'postgres-replica-2');
    await row.getByRole('button', { name: button, exact: true }).click();
    await expect(row.locator('.badge')).toHaveClass(badge, { timeout });
    await page.goto('/database');
    await hydrated(page);
  };
  await onServices('Stop', /\bbad\b/, 60_000);
  await expect(r2.getByTestId('lag')).toHaveText('unknown', { timeout: 20_000 });
  await expect(r2.getByTestId('admission')).toContainText('down', { timeout: 20_000 });
  await onServices('Start', /\bok\b/, 90_000);
  await expect(r2.getByTestId('admission')).toHaveText('taking reads', { timeout: 60_000 });
  await expect(r2.getByTestId('lag')).toHaveText(/^\d+ B \/ \d+\.\d\d s$/);

  // Topology: traffic links drawn, nodes link to their pages.
  await page.goto('/topology');
  await hydrated(page);
  await expect(page.locator('g.flow[data-from="haproxy"][data-to="postgres-replica-1"]')).toHaveCount(1);
  // Envoy's upstream (this control plane's container-facing listener, mutual TLS) is healthy:
  // the arrow from Envoy is drawn green and says so.
  const upstream = page.locator('g.flow[data-from="envoy"][data-to="bss-control"]');
  await expect(upstream).toHaveClass(/\bok\b/, { timeout: 30_000 });
  await expect(upstream.locator('title')).toContainText("Envoy's upstream healthy");
  await expect(page.locator('a[href="/database"] g.node[data-service="postgres-primary"]')).toHaveCount(1);
});
