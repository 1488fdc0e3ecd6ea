import { test, expect, type Page } from '@playwright/test';
import { execFileSync, spawnSync } from 'node:child_process';
import { hydrated, serviceRow } from './helpers';

// The Cluster page against a server with runtime.backend = "swarm" on the 3-host test bed,
// the whole stack up on it (run by dev/swarm/test.sh, project "swarm"; DOCKER_HOST is a
// manager's engine). What the page shows is checked against the docker CLI on the same
// swarm, not against the product's own answers.

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', env: process.env }).trim();
}

// Stdout and stderr together: `docker service logs` writes a task's stderr lines to its own
// stderr (AlertManager logs there).
function dockerBoth(...args: string[]): string {
  const r = spawnSync('docker', args, { encoding: 'utf8', env: process.env });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return `${r.stdout}${r.stderr}`.trim();
}

// The node each of the stack's services' running task is on, as Swarm's task list says.
function placement(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const svc of docker('service', 'ls', '--filter', 'label=io.bss-control.project=bss', '--format', '{{.Name}}').split('\n')) {
    const running = docker('service', 'ps', svc, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}')
      .split('\n').find((l) => / Running /.test(l));
    if (running) out[svc.replace(/^bss_/, '')] = running.split(' ')[0];
  }
  return out;
}

const nodes = (page: Page) => page.getByRole('table', { name: 'Nodes' });
const node = (page: Page, host: string) => nodes(page).getByRole('row', { name: host, exact: true });
const onHost = (page: Page, host: string) => page.getByRole('region', { name: `Tasks on ${host}` });

test('the Cluster page shows the nodes and where each task runs; an operator drains a node and makes it active again', async ({ page }) => {
  test.setTimeout(360_000);
  await page.goto('/cluster');
  await hydrated(page);
  await expect(page.getByTestId('backend')).toHaveText('swarm');
  for (const h of ['h1', 'h2', 'h3']) {
    await expect(node(page, h).getByTestId('node-state')).toHaveText('ready');
    await expect(node(page, h).getByTestId('node-availability')).toHaveText('active');
  }
  await expect(nodes(page).getByText('(leader)')).toHaveCount(1);

  // Every service is shown on the host Swarm says its task runs on.
  const where = placement();
  expect(Object.keys(where).length).toBeGreaterThanOrEqual(15);
  for (const [svc, host] of Object.entries(where)) {
    await expect(onHost(page, host).getByRole('listitem', { name: svc, exact: true })).toBeVisible();
  }
  expect([where['kafka-1'], where['kafka-2'], where['kafka-3']]).toEqual(['h1', 'h2', 'h3']);

  // Drain h3: its unpinned tasks move to h1/h2, the services pinned to it wait for it.
  await node(page, 'h3').getByRole('button', { name: 'Drain' }).click();
  await expect(page.getByTestId('action-result')).toContainText('h3 drained');
  await expect(node(page, 'h3').getByTestId('node-availability')).toHaveText('drain');
  expect(docker('node', 'inspect', '-f', '{{.Spec.Availability}}', 'h3')).toBe('drain');
  const waiting = page.getByRole('region', { name: 'Waiting for a node' });
  for (const svc of ['kafka-3', 'postgres-replica-2', 'postgres-exporter-replica-2']) {
    await expect(waiting.getByRole('listitem', { name: svc, exact: true })).toBeVisible({ timeout: 60_000 });
  }
  // (A job that completed there, kafka-init, stays listed where it ran.)
  await expect(onHost(page, 'h3').getByRole('listitem').filter({ hasNotText: 'complete' })).toHaveCount(0, { timeout: 120_000 });
  // The other services run on h1 or h2 (Swarm's own account).
  await expect.poll(() => Object.entries(placement()).filter(([, h]) => h === 'h3'), { timeout: 120_000 }).toEqual([]);
  // A drained node offers only Activate.
  await expect(node(page, 'h3').getByRole('button', { name: 'Drain' })).toBeDisabled();

  // Activate h3: the pinned services run there again.
  await node(page, 'h3').getByRole('button', { name: 'Activate' }).click();
  await expect(page.getByTestId('action-result')).toContainText('h3 active');
  await expect(node(page, 'h3').getByTestId('node-availability')).toHaveText('active');
  for (const svc of ['kafka-3', 'postgres-replica-2', 'postgres-exporter-replica-2']) {
    await expect(onHost(page, 'h3').getByRole('listitem', { name: svc, exact: true })).toBeVisible({ timeout: 180_000 });
  }
  await expect(waiting).toHaveCount(0);

  // Both actions are in the audit log, by the local operator.
  await page.goto('/audit');
  await hydrated(page);
  await expect(page.getByRole('cell', { name: 'node.drain', exact: true }).first()).toBeVisible();
  await expect(page.getByRole('cell', { name: 'node.activate', exact: true }).first()).toBeVisible();
});

test('the Services page drives the swarm: stop scales to 0, start to 1, restart replaces the task, logs come from the service', async ({ page }) => {
  test.setTimeout(240_000);
  const runningTask = () => docker('service', 'ps', 'bss_bss-sink', '--filter', 'desired-state=running', '--format', '{{.ID}} {{.CurrentState}}')
    .split('\n').find((l) => / Running /.test(l))?.split(' ')[0] ?? '';
  const replicas = () => docker('service', 'inspect', '-f', '{{.Spec.Mode.Replicated.Replicas}}', 'bss_bss-sink');
  await page.goto('/services');
  await hydrated(page);
  const row = serviceRow(page, 'bss-sink');
  await expect(row.getByText('running', { exact: true })).toBeVisible();
  await expect(row.getByTestId('container-name')).toContainText(/task on h[123]/);

  await row.getByRole('button', { name: 'Stop', exact: true }).click();
  await expect(page.getByTestId('action-result')).toHaveText('bss-sink: scaled to 0');
  expect(replicas()).toBe('0');
  await expect(row.getByText(/^exited/)).toBeVisible({ timeout: 30_000 });

  await row.getByRole('button', { name: 'Start', exact: true }).click();
  await expect(page.getByTestId('action-result')).toHaveText('bss-sink: scaled to 1');
  expect(replicas()).toBe('1');
  await expect(row.getByText('running', { exact: true })).toBeVisible({ timeout: 60_000 });

  await expect.poll(runningTask, { timeout: 60_000 }).not.toBe('');
  const before = runningTask();
  await row.getByRole('button', { name: 'Restart', exact: true }).click();
  await expect(page.getByTestId('action-result')).toContainText('bss-sink: force-updated');
  await expect.poll(runningTask, { timeout: 60_000 }).not.toMatch(new RegExp(`^(${before})?$`));

  // Logs through Swarm's service logs: the page shows what the CLI reads.
  const last = dockerBoth('service', 'logs', '--raw', '--tail', '1', 'bss_alertmanager').split('\n').pop() ?? '';
  expect(last).not.toBe('');
  await serviceRow(page, 'alertmanager').getByRole('button', { name: 'Logs', exact: true }).click();
  await expect(page.getByTestId('logs')).toContainText(last.slice(0, 60));
});

test('the Alerts page reads AlertManager and Prometheus on whichever host their tasks run, before and after they move', async ({ page }) => {
  test.setTimeout(300_000);
  const moved = ['alertmanager', 'prometheus'];
  // What the page shows comes from AlertManager (its routing tree) and Prometheus (its
  // scrape targets, some up), read by the server at the node each task runs on.
  const readsBoth = async () => {
    await expect(async () => {
      await page.goto('/alerts');
      await expect(page.getByTestId('route-count')).toHaveText('4', { timeout: 5_000 });
      await expect(page.getByTestId('targets-up')).not.toHaveText('0', { timeout: 5_000 });
    }).toPass({ timeout: 120_000 });
  };
  await readsBoth();
  const from = placement();
  // Move both off their hosts, as a drained or lost host would make Swarm do.
  try {
    for (const svc of moved) {
      docker('service', 'update', '--detach', '--constraint-add', `node.hostname!=${from[svc]}`, `bss_${svc}`);
    }
    for (const svc of moved) {
      await expect.poll(() => placement()[svc] ?? 'nowhere', { timeout: 120_000 }).toMatch(new RegExp(`^(?!${from[svc]}$)h[123]$`));
    }
    await readsBoth();
  } finally {
    for (const svc of moved) {
      docker('service', 'update', '--detach', '--constraint-rm', `node.hostname!=${from[svc]}`, `bss_${svc}`);
    }
  }
});
