// Real networks: Chromium in a network namespace (netns.mjs) behind a veth pair, the server on the
// host end. UDP blocked on the path (the call goes over ICE-TCP), the client's address changing
// mid-call (media comes back without a rejoin: the session is taken back on a new socket, then
// ICE restarts), and a reload (a second page of the same user; on loopback).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertPairs, assertReceiving, connect, joinTimed, launchBrowser, openUser, roomWith, rtpStats, selectedPairs, sleep, startServer,
  videoFrames, waitFor,
} from './lib.mjs';
import { createNetns, netnsUnavailable } from './netns.mjs';

const A = '+33611111111';
const B = '+33622222222';
const noNetns = netnsUnavailable();

/** Records the signaling messages the page sends and receives (window.__sent, window.__received). */
async function recordSignaling(user) {
  await user.context.addInitScript(() => {
    window.__sent = [];
    window.__received = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      try { window.__sent.push(JSON.parse(data).type); } catch { /* not JSON */ }
      if (!this.__recorded) {
        this.__recorded = true;
        this.addEventListener('message', (ev) => {
          try { window.__received.push(JSON.parse(ev.data).type); } catch { /* not JSON */ }
        });
      }
      return send.call(this, data);
    };
  });
  await user.page.reload();
  await user.page.waitForSelector('#app:not([hidden])');
}

const signaling = (user) => user.page.evaluate(() => ({ sent: window.__sent, received: window.__received }));

test('UDP to the server is dropped: the call goes over ICE-TCP', { timeout: 120000, skip: noNetns }, async () => {
  const ns = createNetns();
  let server;
  let browser;
  try {
    ns.dropUdp();
    server = await startServer({ ip: ns.hostIp });
    browser = await launchBrowser({ netns: ns, server });
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    const [ta, tb] = await joinTimed([a, b]);
    console.log(`UDP dropped: time to media ${ta} ms (Alice), ${tb} ms (Bob)`);
    for (const u of [a, b]) await assertPairs(u, 'protocol', 'tcp');
    await assertReceiving(a, 1);
    await assertReceiving(b, 1);
  } finally {
    await browser?.close();
    server?.stop();
    ns.destroy();
  }
});

test('the client address changes mid-call: media resumes', { timeout: 120000, skip: noNetns }, async () => {
  const ns = createNetns();
  let server;
  let browser;
  try {
    server = await startServer({ ip: ns.hostIp });
    browser = await launchBrowser({ netns: ns, server });
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    await recordSignaling(a);
    await recordSignaling(b);
    await connect(a, b);
    await roomWith(a, [b]);
    const [ta, tb] = await joinTimed([a, b]);
    console.log(`time to media ${ta} ms (Alice), ${tb} ms (Bob)`);
    await assertReceiving(a, 1, 2);

    let last = await videoFrames(a);
    const logsBefore = a.logs.length;
    const moved = Date.now();
    const to = ns.moveAddress();
    console.log(`${new Date(moved).toISOString().slice(11, 23)} client address ${ns.oldNsIp} -> ${to}`);
    // The gap: the longest time without a new decoded frame at Alice, watched until video has
    // flowed again for 3 s after a stall (or 20 s without one).
    let lastNew = moved;
    let gap = 0;
    let stalled = false;
    let resumedAt = null;
    while (Date.now() - moved < 40000) {
      await sleep(100);
      const f = await videoFrames(a);
      const now = Date.now();
      if (now - lastNew > 1000) stalled = true;
      if (f > last) {
        gap = Math.max(gap, now - lastNew);
        if (stalled && resumedAt === null) resumedAt = now;
        lastNew = now;
        last = f;
      }
      const flowing = now - lastNew < 300;
      if (flowing && ((resumedAt !== null && now - resumedAt > 3000) || now - moved > 20000)) break;
    }
    const resumed = Date.now() - lastNew < 1000;
    if (!resumed) {
      for (const u of [a, b]) {
        console.log(`${u.name}: signaling ${JSON.stringify(await signaling(u))}`);
        console.log(`${u.name}: ${JSON.stringify(await u.page.evaluate(() => ({ ws: window.atome.ws?.readyState, send: window.atome.sendTransport?.connectionState, recv: window.atome.recvTransport?.connectionState, error: document.querySelector('#error').textContent })))}`);
        console.log(`${u.name}: ${u.logs.slice(-15).join('\n')}`);
      }
    }
    assert.ok(resumed, `media never resumed after the address change (no frame for ${Date.now() - lastNew} ms)`);
    console.log(`address change: video gap at Alice ${gap} ms`);
    console.log(`Alice's page after the change: ${a.logs.slice(logsBefore).join(' | ')}`);
    for (const u of [a, b]) {
      const { sent } = await signaling(u);
      const count = (type) => sent.filter((t) => t === type).length;
      const resumes = await u.page.evaluate(() => window.atome.resumes);
      console.log(`${u.name}: restartIce sent ${count('restartIce')}x, resumeSession ${count('resumeSession')}x (${resumes} taken back), joinRoom ${count('joinRoom')}x`);
      console.log(`${u.name}: selected pairs ${JSON.stringify(await selectedPairs(u))}`);
      // No rejoin: the same session, its transports restarted (Chrome may also recover alone).
      assert.equal(count('joinRoom'), 1, `${u.name} joined the call again instead of resuming`);
      await assertReceiving(u, 1);
    }
  } finally {
    await browser?.close();
    server?.stop();
    ns.destroy();
  }
});

test('a reload: the second page takes over, the peer sees no participantLeft', { timeout: 120000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    await recordSignaling(a);
    await recordSignaling(b);
    await connect(a, b);
    const roomId = await roomWith(a, [b]);
    await joinTimed([a, b]);
    await assertReceiving(b, 1, 2);

    // The same user in a second page (same browser context, so same login).
    const page = await a.context.newPage();
    const a2 = { ...a, page, name: 'Alice (reloaded)' };
    const t0 = Date.now();
    await page.goto(server.base);
    await page.waitForSelector('#app:not([hidden])');
    await page.waitForSelector(`#room-list option[value="${roomId}"]`, { state: 'attached', timeout: 10000 });
    await page.selectOption('#room-list', roomId);
    await page.click('#join');
    await page.waitForFunction(() => window.atome.published && window.atome.consumers.size >= 2, null, { timeout: 30000 });
    await waitFor('the first page hears sessionReplaced', async () => (await signaling(a)).received.includes('sessionReplaced'));
    await waitFor('Bob decodes the new video', async () => {
      const s = await rtpStats(b);
      return s.consumers.length === 2 && s.inbound.some((x) => x.kind === 'video' && x.frames > 0);
    });
    console.log(`reload: Bob decodes the second page's video ${Date.now() - t0} ms after it opened`);
    await assertReceiving(b, 1);
    await assertReceiving(a2, 1);
    await sleep(1500); // the first page must not join back (it would replace the second)
    const first = await signaling(a);
    assert.equal(first.sent.filter((t) => t === 'joinRoom').length, 1, 'the replaced page joined again');
    const bob = await signaling(b);
    assert.ok(!bob.received.includes('participantLeft'), `Bob heard ${bob.received.join(',')}`);
    await assertReceiving(b, 1, 2);
  } finally {
    await browser.close();
    server.stop();
  }
});
