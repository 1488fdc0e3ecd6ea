import { defineConfig } from '@playwright/test';
import * as path from 'node:path';

// The servers run from the repository root, where the compose files' relative paths start.
const root = path.resolve(__dirname, '..');

// Two servers from the freshly built release binary (command from the Makefile), each on
// its own port and state file so neither touches a `make run` instance:
//   local  (E2E_PORT, default 3100): local mode, sign-in off (loopback only)
//   shared (E2E_PORT + 1):           sign-in on, users created by dev/scripts/test.sh
const port = Number(process.env.E2E_PORT ?? 3100);
const server = process.env.E2E_SERVER ?? '';
const sharedServer = process.env.E2E_SHARED_SERVER ?? '';
// A server with the swarm backend on dev/swarm's 3-host test bed, started by dev/swarm/test.sh.
const swarmUrl = process.env.E2E_SWARM_URL ?? '';

const chromium = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
};

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  use: {
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    // Debian's chromium; never `playwright install` (no browser downloads here).
    launchOptions: chromium,
  },
  projects: [
    { name: 'local', testMatch: /(shell|services|streams|stack-pages|verify-demo|walk-a11y)\.spec\.ts/, use: { baseURL: `http://127.0.0.1:${port}` } },
    // Runs after the stack tests: its lock test tears the stack down.
    { name: 'shared', testMatch: /shared\.spec\.ts/, dependencies: ['local'], use: { baseURL: `http://127.0.0.1:${port + 1}` } },
    ...(swarmUrl ? [{ name: 'swarm', testMatch: /swarm\.spec\.ts/, use: { baseURL: swarmUrl } }] : []),
  ],
  webServer: [
    ...(server
      ? [{ command: server, url: `http://127.0.0.1:${port}/healthz`, reuseExistingServer: false, timeout: 60_000, cwd: root,
           stdout: 'pipe' as const, stderr: 'pipe' as const, env: { BSS_LISTEN: `127.0.0.1:${port}` } }]
      : []),
    ...(sharedServer
      ? [{ command: sharedServer, url: `http://127.0.0.1:${port + 1}/healthz`, reuseExistingServer: false, timeout: 60_000, cwd: root,
           stdout: 'pipe' as const, stderr: 'pipe' as const, env: { BSS_LISTEN: `127.0.0.1:${port + 1}`, BSS_AUTH: 'on' } }]
      : []),
  ],
});
