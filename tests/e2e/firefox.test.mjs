// End-to-end across browsers: a Chromium user and a Firefox user call each other through the UI
// (mediasoup-client picks its Firefox handler there: other SDP, extension ids and DTLS role).
// Each browser runs in its own network namespace (netns.mjs), the server on the first one's host
// end: Firefox pairs none of its candidates with a loopback one, and the test sends media only to
// namespaces it made.
import { test } from 'node:test';
import fs from 'node:fs';
import { assertReceiving, connect, joinAll, launchBrowser, openUser, roomWith, screenshot, startServer } from './lib.mjs';
import { geckodriverPath, launchFirefox } from './firefox.mjs';
import { createNetns, netnsUnavailable } from './netns.mjs';

const A = '+33611111111';
const B = '+33622222222';
const missing = !fs.existsSync('/usr/bin/firefox-esr')
  ? 'Debian firefox-esr is not installed'
  : !geckodriverPath() ? 'geckodriver is not installed (cargo install geckodriver)' : netnsUnavailable();

test('a Chromium user and a Firefox user call each other', { timeout: 240000, skip: missing }, async () => {
  const nsA = createNetns();
  const nsB = createNetns();
  let server;
  let chromium;
  let firefox;
  try {
    server = await startServer({ ip: nsA.hostIp });
    chromium = await launchBrowser({ netns: nsA, server });
    firefox = await launchFirefox({ netns: nsB, server });
    const a = await openUser(chromium, server, A, 'Alice');
    const b = await openUser(firefox, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    const t0 = Date.now();
    await joinAll([a, b], 1);
    console.log(`Chromium (${nsA.nsIp}) and Firefox (${nsB.nsIp}) joined, consumers ready in ${Date.now() - t0} ms`);
    await assertReceiving(a, 1);
    await assertReceiving(b, 1);
    console.log(`both receive within ${Date.now() - t0} ms of joining (incl. 8 s of checks)`);
    await screenshot(a, 'firefox-alice-chromium');
    await screenshot(b, 'firefox-bob-firefox');
  } finally {
    await chromium?.close();
    await firefox?.close();
    server?.stop();
    nsA.destroy();
    nsB.destroy();
  }
});
