import { defineConfig } from '@playwright/test';

// The server under test is the freshly built release binary (path from the Makefile), on
// its own port and with its own state file, so it never touches a `make run` instance.
const port = Number(process.env.E2E_PORT ?? 3100);
const server = process.env.E2E_SERVER ?? '';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    // Debian's chromium; never `playwright install` (no browser downloads here).
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: server
    ? {
        command: server,
        url: `http://127.0.0.1:${port}/healthz`,
        reuseExistingServer: false,
        timeout: 60_000,
        stdout: 'pipe',
        stderr: 'pipe',
        env: { BSS_LISTEN: `127.0.0.1:${port}` },
      }
    : undefined,
});
