import { expect, type Locator, type Page } from '@playwright/test';

// <body> gets data-hydrated="true" once the wasm has hydrated the whole page (its lazily
// loaded route included: app/src/lib.rs).
export async function hydrated(page: Page) {
  await expect(page.locator('[data-hydrated="true"]')).toHaveCount(1);
}

// A service's row on the Services page, found as a user finds it: by the table's name and
// the row's (the service name).
export function serviceRow(page: Page, service: string): Locator {
  return page.getByRole('table', { name: 'Services' }).getByRole('row', { name: service, exact: true });
}
