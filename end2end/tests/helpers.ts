import { expect, type Page } from '@playwright/test';

// The nav bar's container gets data-hydrated="true" once the wasm has hydrated the page.
export async function hydrated(page: Page) {
  await expect(page.locator('[data-hydrated="true"]')).toHaveCount(1);
}
