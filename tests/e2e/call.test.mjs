// End-to-end: real Chromium users call each other through the UI and our engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertReceiving, connect, joinAll, launchBrowser, openUser, roomWith, rtpStats, screenshot, sleep, startServer, sum, waitFor,
} from './lib.mjs';

const A = '+33611111111';
const B = '+33622222222';
const C = '+33633333333';

/** The user's outbound video bitrate goes above 500 kbit/s within 15 s. */
async function assertBitrateClimbs(user) {
  let prev = await rtpStats(user);
  let best = 0;
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const now = await rtpStats(user);
    const kbps = ((sum(now.outbound, 'video', 'bytes') - sum(prev.outbound, 'video', 'bytes')) * 8) / 1000;
    best = Math.max(best, kbps);
    const v = now.outbound.find((o) => o.kind === 'video') || {};
    console.log(`${user.name}: ${kbps.toFixed(0)} kbit/s, target ${v.target}, available ${now.available}, limit ${v.limit}, width ${v.width}`);
    prev = now;
    if (best > 500) break;
  }
  console.log(`${user.name}: outbound video up to ${best.toFixed(0)} kbit/s`);
  assert.ok(best > 500, `${user.name}: outbound video bitrate stayed at ${best.toFixed(0)} kbit/s`);
}

for (const order of ['video-first', 'audio-first']) {
  test(`two users call through the UI (${order})`, { timeout: 240000 }, async () => {
    const server = await startServer();
    const browser = await launchBrowser();
    try {
      const query = order === 'audio-first' ? '?order=audio-first' : '';
      const a = await openUser(browser, server, A, 'Alice', query);
      const b = await openUser(browser, server, B, 'Bob', query);
      await connect(a, b);
      await roomWith(a, [b]);
      await joinAll([a, b], 1);
      await assertBitrateClimbs(a);
      await assertReceiving(a, 1);
      await assertReceiving(b, 1);
      await screenshot(a, `${order}-alice`);
      await screenshot(b, `${order}-bob`);
      const label = await b.page.$eval('[data-tile^="peer-"] span', (s) => s.textContent);
      assert.equal(label, 'Alice', 'remote tiles carry the peer name');
      if (order === 'audio-first') return;

      // Mute stops the remote audio; unmute brings it back.
      await a.page.click('#mute');
      await sleep(1000);
      const m1 = sum((await rtpStats(b)).inbound, 'audio', 'packets');
      await sleep(2000);
      const m2 = sum((await rtpStats(b)).inbound, 'audio', 'packets');
      assert.ok(m2 - m1 <= 5, `audio kept flowing while muted: ${m1} -> ${m2}`);
      await a.page.click('#mute');
      await waitFor('audio after unmute', async () => sum((await rtpStats(b)).inbound, 'audio', 'packets') > m2 + 20);

      // Camera off removes the remote video (producerClosed); camera on brings it back.
      await a.page.click('#camera');
      await waitFor('remote video gone', async () => !(await rtpStats(b)).consumers.includes('video'));
      await a.page.click('#camera');
      await waitFor('remote video back', async () => (await rtpStats(b)).consumers.includes('video'));
      await assertReceiving(b, 1);

      // A lost WebSocket reconnects and rejoins: media flows again both ways.
      await a.page.evaluate(() => window.atome.ws.close());
      await a.page.waitForFunction(() => window.atome.published && window.atome.consumers.size >= 2 && window.atome.ws, null, { timeout: 30000 });
      await waitFor('B consumes the rejoined A', async () => (await rtpStats(b)).consumers.length === 2);
      await assertReceiving(a, 1);
      await assertReceiving(b, 1);

      // A's media connection dies under it (its send PeerConnection closes: DTLS close_notify):
      // the engine closes the transport, the room (A included) hears producerClosed, A rejoins.
      await a.page.evaluate(() => window.atome.sendTransport.close());
      await a.page.waitForFunction(() => window.atome.sendTransport && !window.atome.sendTransport.closed
        && window.atome.published && window.atome.consumers.size >= 2, null, { timeout: 30000 });
      await waitFor('B consumes A again', async () => (await rtpStats(b)).consumers.length === 2);
      await assertReceiving(a, 1);
      await assertReceiving(b, 1);

      // One leaves: its resources are gone; the last one leaves: the router is closed.
      await b.page.click('#leave');
      const h1 = await waitFor('B gone from /health', async () => {
        const h = await server.health();
        return h.peers === 1 && h.media.consumers === 0 ? h : null;
      });
      assert.equal(h1.media.producers, 2);
      assert.equal(h1.media.transports, 2);
      await a.page.click('#leave');
      const h2 = await waitFor('room closed', async () => {
        const h = await server.health();
        return h.rooms === 0 && h.media.routers === 0 ? h : null;
      });
      assert.deepEqual([h2.media.transports, h2.media.producers, h2.media.consumers], [0, 0, 0]);
    } finally {
      await browser.close();
      server.stop();
    }
  });
}

test('three users each receive the two others', { timeout: 240000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    const c = await openUser(browser, server, C, 'Carol');
    await connect(a, b);
    await connect(a, c);
    await roomWith(a, [b, c]);
    await joinAll([a, b, c], 2);
    for (const u of [a, b, c]) await assertReceiving(u, 2, 5);
    for (const u of [a, b, c]) await screenshot(u, `three-${u.name.toLowerCase()}`);
  } finally {
    await browser.close();
    server.stop();
  }
});
