import { test, expect, type Page } from '@playwright/test';
import { hydrated } from './helpers';

// Runs after services.spec (same worker, file order), which leaves the stack provisioned:
// the processors were autostarted by the server and find the brokers once they are up.

const processor = (page: Page, proc: string) =>
  page.getByRole('table', { name: 'Processors' }).getByRole('row', { name: proc, exact: true });
const num = async (page: Page, proc: string, col: string) =>
  Number(await processor(page, proc).getByTestId(col).innerText());

test('Streams page: processors run, sample events flow through both, rates and latency move', async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto('/streams');
  await hydrated(page);
  for (const p of ['bss-customer-analytics', 'bss-order-processor']) {
    await expect(processor(page, p).getByTestId('state')).toHaveText('running', { timeout: 60_000 });
  }
  // The topic table comes from the real brokers: 4 topics × 3 partitions.
  await expect(page.getByRole('table', { name: 'Topics' }).locator('tbody').getByRole('row')).toHaveCount(12, { timeout: 30_000 });

  const before = await num(page, 'bss-order-processor', 'produced');
  const dlqBefore = await num(page, 'bss-customer-analytics', 'dlq') + await num(page, 'bss-order-processor', 'dlq');
  await page.getByLabel('Events to send').fill('4000');
  await page.getByLabel('Malformed every').fill('40');
  await page.getByRole('button', { name: 'Send sample events' }).click();
  await expect(page.getByRole('status')).toContainText('4000 events acknowledged', { timeout: 60_000 });

  // Counters and charts move while the events flow (the page refreshes every 2 s).
  await expect.poll(() => num(page, 'bss-order-processor', 'produced'), { timeout: 60_000 }).toBeGreaterThan(before);
  await expect.poll(async () => await num(page, 'bss-customer-analytics', 'dlq') + await num(page, 'bss-order-processor', 'dlq'),
    { timeout: 60_000 }).toBeGreaterThanOrEqual(dlqBefore + 100);
  await expect.poll(async () => parseFloat(await page.getByTestId('in-rate-max').textContent() ?? '0'), { timeout: 30_000 })
    .toBeGreaterThan(1);
  await expect.poll(async () => parseFloat(await page.getByTestId('latency-max').textContent() ?? '0'), { timeout: 30_000 })
    .toBeGreaterThan(0.01);
  // The latency split per hop (event → consumed, consumed → acknowledged) moves too.
  await expect.poll(async () => parseFloat(await page.getByTestId('hops-max').textContent() ?? '0'), { timeout: 30_000 })
    .toBeGreaterThan(0.01);

  // Stop and start one processor from the UI.
  const row = processor(page, 'bss-order-processor');
  await row.getByRole('button', { name: 'Stop', exact: true }).click();
  await expect(row.getByTestId('state')).toHaveText('stopped', { timeout: 40_000 });
  await row.getByRole('button', { name: 'Start', exact: true }).click();
  await expect(row.getByTestId('state')).toHaveText('running', { timeout: 20_000 });

  // Its delivery guarantee, switched from the page: it drains, restarts into it, and back.
  await row.getByRole('button', { name: 'Switch to exactly-once' }).click();
  await expect(page.getByRole('status')).toContainText('bss-order-processor: exactly-once, restarted into it', { timeout: 40_000 });
  await expect(row.getByTestId('guarantee')).toHaveText('exactly-once');
  await expect(row.getByTestId('state')).toHaveText('running', { timeout: 20_000 });
  await row.getByRole('button', { name: 'Switch to at-least-once' }).click();
  await expect(page.getByRole('status')).toContainText('bss-order-processor: at-least-once, restarted into it', { timeout: 40_000 });
  await expect(row.getByTestId('guarantee')).toHaveText('at-least-once');
  await expect(row.getByTestId('state')).toHaveText('running', { timeout: 40_000 });
});

// History from Prometheus: the control plane's lag per processor (scraped from its
// container-facing listener) and each broker's own message count (the JMX exporter agent).
test('Streams page: history from Prometheus per processor and per broker, over a chosen window', async ({ page }) => {
  test.setTimeout(150_000);
  await page.goto('/streams');
  await hydrated(page);
  const drawn = async (card: string, series: string[]) => {
    const c = page.getByTestId(card);
    await expect(async () => {
      // Choosing a window asks again (Prometheus scrapes every 15 s).
      for (const w of ['15m', '1h']) await c.getByRole('button', { name: w, exact: true }).click();
      await expect(c.getByRole('button', { name: '1h', exact: true })).toHaveAttribute('aria-pressed', 'true');
      await expect(c.getByRole('figure')).toContainText('last 1h', { timeout: 5_000 });
      for (const s of series) await expect(c.locator(`polyline[data-series="${s}"]`).first()).toBeAttached({ timeout: 5_000 });
    }).toPass({ timeout: 100_000 });
    return c;
  };
  const lag = await drawn('history-consumer-lag', ['bss-customer-analytics', 'bss-order-processor']);
  await expect(lag.getByTestId('history-consumer-lag-query')).toHaveText('max by (processor) (bss_stream_consumer_lag)');
  await expect(lag.getByRole('link', { name: 'open in Prometheus' })).toHaveAttribute('href', /^http:\/\/127\.0\.0\.1:9090\/graph\?g0\.expr=/);
  // Per partition: series named "<processor> partition <n>" (which partitions have a
  // committed offset depends on what ran before: at least one per processor).
  const parts = page.getByTestId('history-consumer-lag-partition');
  await expect(async () => {
    await parts.getByRole('button', { name: '1h', exact: true }).click();
    for (const p of ['bss-customer-analytics', 'bss-order-processor'])
      await expect(parts.locator(`polyline[data-series^="${p} partition "]`).first()).toBeAttached({ timeout: 5_000 });
  }).toPass({ timeout: 60_000 });
  const brokers = await drawn('history-broker-messages-in', ['kafka-1', 'kafka-2', 'kafka-3']);
  await brokers.getByRole('button', { name: '6h', exact: true }).click();
  await expect(brokers.getByRole('figure')).toContainText('last 6h (one point per 90 s)');
});

test('Streams page links the event contracts a producer needs', async ({ page }) => {
  await page.goto('/streams');
  const link = page.getByRole('link', { name: 'the event contracts (JSON Schema)' });
  await expect(link).toHaveAttribute('href', '/api/events.schema.json');
  const r = await page.request.get('/api/events.schema.json');
  expect(r.ok()).toBeTruthy();
  expect(r.headers()['content-type']).toContain('application/schema+json');
  const doc = await r.json();
  expect(doc['$defs']['bss.customer.events'].properties.data.required).toEqual(['customer_id']);
  expect(doc['$defs']['bss.order.events'].examples).toHaveLength(4);
});
