import { test, expect, type Browser, type Page } from '@playwright/test';
import { hydrated, serviceRow } from './helpers';

// The shared (sign-in) mode with real browsers: a viewer sees but cannot press, and two
// operators in two browsers meet the one-action-at-a-time lock, both seeing it live.
// Users are created by dev/scripts/test.sh with the password in E2E_PASSWORD.
const PASSWORD = process.env.E2E_PASSWORD ?? '';

async function signIn(browser: Browser, user: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto('/services');
  await expect(page).toHaveURL(/\/login$/);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('who')).toContainText(user);
  return page;
}

test('a wrong password is refused with a message', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('User name').fill('olga');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('wrong user name or password');
});

test('a viewer sees the stack but every action is disabled', async ({ browser }) => {
  const page = await signIn(browser, 'vera');
  await page.goto('/services');
  await hydrated(page);
  await expect(serviceRow(page, 'haproxy')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Provision stack' })).toBeDisabled();
  await expect(serviceRow(page, 'haproxy').getByRole('button', { name: 'Restart' })).toBeDisabled();
  await expect(serviceRow(page, 'haproxy').getByRole('button', { name: 'Logs' })).toBeEnabled();
});

test('two operators: the second is refused while the first one\'s action runs, both see it live', async ({ browser }) => {
  test.setTimeout(180_000);
  const olga = await signIn(browser, 'olga');
  const oscar = await signIn(browser, 'oscar');
  for (const p of [olga, oscar]) {
    await p.goto('/services');
    await hydrated(p);
    await expect(p.getByText('(connected)')).toBeVisible();
  }
  await olga.getByRole('button', { name: 'Tear down' }).click();
  await expect(olga.getByRole('status', { name: 'Last action' })).toContainText('down started');
  // Oscar's browser shows the running action without a reload…
  const inProgress = oscar.getByRole('status', { name: 'In progress' });
  await expect(inProgress).toContainText('stack down by olga', { timeout: 15_000 });
  // …and the server refuses his conflicting action even if he gets a click in.
  const restart = serviceRow(oscar, 'haproxy').getByRole('button', { name: 'Restart' });
  if (await restart.isEnabled()) {
    await restart.click();
    await expect(oscar.getByRole('status', { name: 'Last action' })).toContainText('in progress by olga');
  }
  await expect(olga.getByRole('log', { name: 'Stack events' })).toContainText('olga: down finished', { timeout: 120_000 });
  await expect(inProgress).toHaveCount(0, { timeout: 15_000 });

  // Everything was audited, with who did it.
  await oscar.goto('/audit?action=stack.down');
  await expect(oscar.getByRole('table', { name: 'Audit log' })).toContainText('olga');
});

test('an admin adds a user, changes the role and disables them; only an admin sees Users', async ({ browser }) => {
  const ada = await signIn(browser, 'ada');
  await hydrated(ada);
  await ada.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users', exact: true }).click();
  await expect(ada.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible();
  const name = `uma${Date.now() % 1_000_000}`;
  await ada.getByLabel('New user name').fill(name);
  await ada.getByLabel('New user role').selectOption('viewer');
  await ada.getByLabel('New user password').fill(PASSWORD);
  await ada.getByRole('button', { name: 'Add user' }).click();
  const result = ada.getByRole('status', { name: 'Last change' });
  await expect(result).toContainText(`user ${name} added as viewer`);
  const row = ada.getByRole('table', { name: 'Users' }).getByRole('row', { name, exact: true });
  await expect(row).toContainText('active');

  // The new user signs in as a viewer: no Users link, and the page itself is refused.
  const uma = await signIn(browser, name);
  await hydrated(uma);
  await expect(uma.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Drills', exact: true })).toBeVisible();
  await expect(uma.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users', exact: true })).toHaveCount(0);
  await uma.goto('/users');
  await expect(uma.getByRole('alert')).toContainText('admin');

  await row.getByLabel(`Role of ${name}`).selectOption('operator');
  await expect(result).toContainText(`${name} is now operator`);
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(result).toContainText(`${name} disabled; their sessions ended`);
  await expect(row).toContainText('disabled');
  // Their session ended: the next page sends them to sign in, and signing in is refused.
  await uma.goto('/services');
  await expect(uma).toHaveURL(/\/login$/);
  await uma.getByLabel('User name').fill(name);
  await uma.getByLabel('Password').fill(PASSWORD);
  await uma.getByRole('button', { name: 'Sign in' }).click();
  await expect(uma.getByRole('alert')).toContainText('wrong user name or password');
});
