// End-to-end across browsers: a Chromium user and a Firefox user call each other through the UI
// (mediasoup-client picks its Firefox handler there: other SDP, extension ids and DTLS role).
import { test } from 'node:test';
import fs from 'node:fs';
import { assertReceiving, connect, hostIp, joinAll, launchBrowser, openUser, roomWith, screenshot, startServer } from './lib.mjs';
import { geckodriverPath, launchFirefox } from './firefox.mjs';

const A = '+33611111111';
const B = '+33622222222';
const missing = !fs.existsSync('/usr/bin/firefox-esr')
  ? 'Debian firefox-esr is not installed'
  : !geckodriverPath() ? 'geckodriver is not installed (cargo install geckodriver)' : false;

test('a Chromium user and a Firefox user call each other', { timeout: 240000, skip: missing }, async () => {
  // Firefox pairs none of its candidates with a loopback one: media on this machine's address.
  const server = await startServer({ rtcIp: hostIp() });
  const chromium = await launchBrowser();
  const firefox = await launchFirefox();
  try {
    const a = await openUser(chromium, server, A, 'Alice');
    const b = await openUser(firefox, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    await joinAll([a, b], 1);
    await assertReceiving(a, 1);
    await assertReceiving(b, 1);
    await screenshot(a, 'firefox-alice-chromium');
    await screenshot(b, 'firefox-bob-firefox');
  } finally {
    await chromium.close();
    await firefox.close();
    server.stop();
  }
});
