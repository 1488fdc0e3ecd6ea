import { test, expect, type Page } from '@playwright/test';

// Against the real engine and the real offline images: provision the whole Phase 3 stack
// from the browser, watch it turn healthy live, then stop one service and start it again.
async function hydrated(page: Page) {
  await expect(page.locator('[data-hydrated="true"]')).toHaveCount(1);
}

test('provision from the UI, every service turns healthy, stop one and start it again', async ({ page }) => {
  test.setTimeout(420_000);
  await page.goto('/services');
  await hydrated(page);
  await expect(page.getByText('(connected)')).toBeVisible();

  await page.getByRole('button', { name: 'Provision stack' }).click();
  await expect(page.getByTestId('action-result')).toContainText('up started');
  // Progress arrives live on the feed while provisioning runs.
  await expect(page.getByTestId('event-feed').locator('li').first()).toBeVisible({ timeout: 30_000 });
  await expect(page.getByTestId('stack-summary')).toHaveText(/^(\d+) of \1 services up$/, { timeout: 300_000 });
  await expect(page.getByTestId('event-feed')).toContainText('stack bss is up', { timeout: 60_000 });

  const row = page.locator('tr[data-service="haproxy"]');
  await expect(row.locator('.badge')).toHaveClass(/\bok\b/);
  await row.getByRole('button', { name: 'Stop' }).click();
  await expect(row.locator('.badge')).toHaveClass(/\bbad\b/, { timeout: 60_000 });
  await expect(row.locator('.badge')).toContainText('exited');

  await page.goto('/topology');
  await hydrated(page);
  await expect(page.locator('g.node[data-service="haproxy"]')).toHaveClass(/\bbad\b/);
  await expect(page.locator('g.node[data-service="postgres-primary"]')).toHaveClass(/\bok\b/);

  await page.goto('/services');
  await hydrated(page);
  await page.locator('tr[data-service="haproxy"]').getByRole('button', { name: 'Start' }).click();
  await expect(page.locator('tr[data-service="haproxy"] .badge')).toHaveClass(/\bok\b/, { timeout: 90_000 });

  await page.locator('tr[data-service="haproxy"]').getByRole('button', { name: 'Logs' }).click();
  await expect(page.getByTestId('logs')).not.toBeEmpty();

  // Merged logs: several services in one view, narrowed by search, following live.
  await page.goto('/logs');
  await hydrated(page);
  const merged = page.getByTestId('merged-logs');
  await expect(merged.locator('.logline[data-service="postgres-primary"]').first()).toBeVisible();
  await expect(merged.locator('.logline[data-service="haproxy"]').first()).toBeVisible();
  await page.getByRole('searchbox', { name: 'Search logs' }).fill('haproxy');
  await expect(merged.locator('.logline[data-service="postgres-primary"]')).toHaveCount(0);
  await expect(page.getByText('following live')).toBeVisible();

  // Topology: traffic links drawn, nodes link to their pages.
  await page.goto('/topology');
  await hydrated(page);
  await expect(page.locator('g.flow[data-from="haproxy"][data-to="postgres-replica-1"]')).toHaveCount(1);
  await expect(page.locator('a[href="/database"] g.node[data-service="postgres-primary"]')).toHaveCount(1);
});
