#!/usr/bin/env node
// Takes the README's screenshots (docs/screenshots/: login, a call, a call with a shared screen)
// with the real server, Chromium and its fake camera, through the UI as the browser tests do.
// Needs the server binary and the web bundle built (tests/e2e/run.sh builds both):
//   node scripts/screenshots.mjs
import fs from 'node:fs';
import path from 'node:path';
import {
  connect, joinAll, launchBrowser, openUser, repo, roomWith, sleep, startServer, waitFor,
} from '../tests/e2e/lib.mjs';

const out = path.join(repo, 'docs/screenshots');
fs.mkdirSync(out, { recursive: true });
const viewport = { width: 760, height: 560 };
const server = await startServer();
// Chrome's own fake camera (a plain pattern: small PNGs), not the tests' noisy one.
const browser = await launchBrowser({ fakeDevices: 'device-count=1' });
try {
  const login = await (await browser.newContext({ viewport })).newPage();
  await login.goto(server.base);
  await login.fill('#phone', '+33 6 11 11 11 11');
  await login.fill('#name', 'Alice');
  await login.screenshot({ path: path.join(out, 'login.png'), clip: { x: 0, y: 0, width: viewport.width, height: 150 } });

  const a = await openUser(browser, server, '+33611111111', 'Alice');
  const b = await openUser(browser, server, '+33622222222', 'Bob');
  await a.page.setViewportSize(viewport);
  await connect(a, b);
  await a.page.fill('#room-name', 'Standup');
  await roomWith(a, [b]);
  await joinAll([a, b], 1);
  await waitFor('pictures', () => a.page.evaluate(() => [...document.querySelectorAll('video')].every((v) => v.videoWidth > 0)));
  await sleep(1500);
  await a.page.screenshot({ path: path.join(out, 'call.png') });
  await b.page.click('#screen');
  await waitFor('the shared screen', () => a.page.evaluate(() => document.querySelector('[data-tile^="screen-"] video')?.videoWidth > 0));
  await sleep(1500);
  await a.page.screenshot({ path: path.join(out, 'call-screen-share.png') });
  for (const f of fs.readdirSync(out)) console.log(`${path.join('docs/screenshots', f)}: ${fs.statSync(path.join(out, f)).size} bytes`);
} finally {
  await browser.close();
  server.stop();
}
