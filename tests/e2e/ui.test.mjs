// End-to-end, without media: login, contacts and rooms through the UI in real Chromium against
// the real server (HTTP only; the call itself is in call.test.mjs).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  codeCount, connect, launchBrowser, message, openPage, openUser, readCode, roomWith, sleep,
  startServer, waitMessage,
} from './lib.mjs';

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('log in by phone number with a one-time code, stay logged in, log out', async () => {
  const u = await openPage(browser, server);
  const phone = '+33610000001';
  await u.page.click('#send-code');
  await waitMessage(u, 'Enter your phone number first');

  await u.page.fill('#phone', 'not a number');
  await u.page.click('#send-code');
  await waitMessage(u, 'not valid');

  // This server has no dev auth: the button says so.
  await u.page.fill('#phone', phone);
  await u.page.click('#dev-login');
  await waitMessage(u, 'Dev login is disabled');

  await u.page.fill('#name', 'Dora');
  const seen = codeCount(server.dataDir, phone);
  await u.page.click('#send-code');
  await waitMessage(u, 'Code sent');
  const code = await readCode(server.dataDir, phone, seen);
  const wrong = String((Number(code) + 1) % 1000000).padStart(6, '0');
  await u.page.fill('#code', wrong);
  await u.page.click('#verify');
  await waitMessage(u, 'Wrong code');
  assert.equal(await u.page.isVisible('#app'), false);

  await u.page.fill('#code', code);
  await u.page.click('#verify');
  await u.page.waitForSelector('#app:not([hidden])');
  assert.equal(await message(u), '');
  assert.equal(await u.page.textContent('#me'), `Dora (${phone})`);

  await u.page.reload();
  await u.page.waitForSelector('#app:not([hidden])');
  assert.match(await u.page.textContent('#me'), /^Dora /);

  await u.page.click('#logout');
  await u.page.waitForSelector('#login:not([hidden])');
  await u.page.reload();
  await sleep(500);
  assert.equal(await u.page.isVisible('#login'), true, 'the token is forgotten after logout');
  assert.equal(await u.page.isVisible('#app'), false);
  await u.context.close();
});

test('dev login button on a server started with --dev-auth', async () => {
  const dev = await startServer({ devAuth: true });
  try {
    const u = await openPage(browser, dev);
    await u.page.fill('#phone', '+33 6 10 00 00 09');
    await u.page.fill('#name', 'Dev');
    await u.page.click('#dev-login');
    await u.page.waitForSelector('#app:not([hidden])');
    assert.equal(await u.page.textContent('#me'), 'Dev (+33610000009)');
    await u.context.close();
  } finally {
    await dev.stop();
  }
});

test('contacts: send, reject and accept connection requests', async () => {
  const a = await openUser(browser, server, '+33620000001', 'Ann');
  const b = await openUser(browser, server, '+33620000002', 'Ben');
  const c = await openUser(browser, server, '+33620000003', 'Cat');

  await a.page.click('#add-contact');
  await waitMessage(a, 'Type the phone number');
  await a.page.fill('#contact-phone', 'garbage');
  await a.page.click('#add-contact');
  await waitMessage(a, 'not valid');
  await a.page.fill('#contact-phone', a.phone);
  await a.page.click('#add-contact');
  await waitMessage(a, 'your own number');

  // A asks B; B rejects: no connection either side.
  await a.page.fill('#contact-phone', b.phone);
  await a.page.click('#add-contact');
  await waitMessage(a, 'Request sent');
  const fromA = `#incoming [data-testid="incoming-request"][data-phone="${a.phone}"]`;
  await b.page.waitForSelector(fromA, { timeout: 10000 });
  assert.match(await b.page.textContent(fromA), /^Ann \(\+33620000001\) wants to connect/);
  await b.page.click(`${fromA} [data-testid="reject-request"]`);
  await b.page.waitForSelector(fromA, { state: 'detached', timeout: 5000 });
  await sleep(2500); // one refresh cycle
  assert.equal(await a.page.$$eval('#connections li', (l) => l.length), 0);
  assert.equal(await b.page.$$eval('#connections li', (l) => l.length), 0);

  // C asks B; B accepts: each lists the other, with the display name.
  await connect(c, b);
  assert.match(await b.page.textContent(`#connections [data-testid="connection"][data-phone="${c.phone}"]`), /Cat \(\+33620000003\)/);
  assert.match(await c.page.textContent(`#connections [data-testid="connection"][data-phone="${b.phone}"]`), /Ben \(\+33620000002\)/);
  assert.equal(await b.page.$$eval('#incoming li', (l) => l.length), 0);
  for (const u of [a, b, c]) await u.context.close();
});

test('rooms: create, invite connections only, join errors, video window toggle', async () => {
  const a = await openUser(browser, server, '+33630000001', 'Ada');
  const b = await openUser(browser, server, '+33630000002', 'Bea');
  const c = await openUser(browser, server, '+33630000003', 'Cyd');
  await connect(a, b);

  await c.page.click('#join');
  await waitMessage(c, 'Create or choose a room first');
  await a.page.click('#invite');
  await waitMessage(a, 'Create or choose a room first');

  await a.page.click('#create-room');
  await waitMessage(a, 'Room created');
  await a.page.click('#invite');
  await waitMessage(a, 'Tick the connections to invite');

  const roomId = await roomWith(a, [b]);
  assert.ok(roomId);
  assert.equal(await b.page.$eval('#room-list', (s) => s.value), roomId);
  await sleep(2500); // C (not invited) never sees it
  assert.equal(await c.page.$$eval(`#room-list option[value="${roomId}"]`, (o) => o.length), 0);

  // A room that does not exist (or is not ours): a message the user can act on.
  await c.page.evaluate(() => {
    const o = document.createElement('option');
    o.value = 'no-such-room';
    o.textContent = 'stale room';
    document.querySelector('#room-list').append(o);
    document.querySelector('#room-list').value = 'no-such-room';
  });
  await c.page.click('#join');
  await waitMessage(c, 'Room not found');
  assert.equal(await c.page.isEnabled('#join'), true, 'Join stays available after a failed join');
  assert.equal(await c.page.isEnabled('#leave'), false);

  // The video window opens and closes.
  const hidden = () => a.page.$eval('#window', (w) => w.hidden);
  assert.equal(await hidden(), false);
  await a.page.click('#toggle-window');
  assert.equal(await hidden(), true);
  assert.equal(await a.page.textContent('#toggle-window'), 'Open video window');
  await a.page.click('#toggle-window');
  assert.equal(await hidden(), false);
  assert.equal(await a.page.textContent('#toggle-window'), 'Close video window');
  for (const u of [a, b, c]) await u.context.close();
});

test('a second login in another context sees the same connections', async () => {
  const a = await openUser(browser, server, '+33640000001', 'Eve');
  const b = await openUser(browser, server, '+33640000002', 'Fay');
  await connect(a, b);
  const again = await openUser(browser, server, a.phone, 'Eve');
  await again.page.waitForSelector(`#connections input[data-phone="${b.phone}"]`, { timeout: 5000 });
  assert.equal(await again.page.textContent('#me'), `Eve (${a.phone})`);
  for (const u of [a, b, again]) await u.context.close();
});
