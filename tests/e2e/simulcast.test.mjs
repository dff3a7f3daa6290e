// End-to-end: Chromium publishes its camera with simulcast (the web client's default:
// mediasoup-demo's three encodings, rid-identified, L1T3, 1280x720 captured) through the stock
// mediasoup-client; the subscriber receives the highest stream that arrives, follows
// setConsumerPreferredLayers (issue 18), and its client asks for the stream its tile's width needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { camera720, connect, joinAll, launchBrowser, openUser, printPageLogs, roomWith, rtpStats, simulcastStreams, sleep, startServer, tileWidth, waitFor } from './lib.mjs';
import { preferSpatial } from './codec-stats.mjs';

const A = '+33611111111';
const B = '+33622222222';

/** The width of A's video as B's tile shows it, once it is stable for a second. */
async function remoteWidth(b) {
  return b.page.evaluate(() => document.querySelector('[data-tile^="peer-"] video')?.videoWidth ?? 0);
}

/** Widths of A's simulcast streams that are sending (outbound-rtp with frames), lowest first. */
async function sentWidths(a) {
  const s = await rtpStats(a);
  return s.outbound.filter((o) => o.kind === 'video' && o.width > 0 && o.bytes > 0).map((o) => o.width).sort((x, y) => x - y);
}

/** What Bob's small-tile rule chose for A's video: {layer, tilePx} (web/src/layers.js). */
async function chosen(b) {
  return b.page.evaluate(() => {
    const c = [...window.atome.consumers.values()].find((x) => x.consumer.kind === 'video');
    return { layer: c.layer, tilePx: c.tilePx };
  });
}

test('simulcast from Chromium: the subscriber gets the top stream, then the one it prefers, then the one its tile needs', { timeout: 240000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser({ args: [`--use-file-for-fake-video-capture=${camera720()}`] });
  let a;
  let b;
  try {
    a = await openUser(browser, server, A, 'Alice');
    b = await openUser(browser, server, B, 'Bob');
    await tileWidth(b); // wide tiles: Bob's client asks for no lower layer on its own
    await connect(a, b);
    await roomWith(a, [b]);
    await joinAll([a, b], 1);
    await waitFor('B shows A\'s video', async () => (await remoteWidth(b)) > 0, 30000);
    const sent = await simulcastStreams(() => sentWidths(a));
    const consumer = await b.page.evaluate(() => [...window.atome.consumers.values()].find((x) => x.consumer.kind === 'video').consumer.rtpParameters.encodings[0]);
    console.log(`# Alice sends ${sent.length} streams, widths ${sent.join(', ')}; Bob's consumer encoding ${JSON.stringify(consumer)}`);
    assert.equal(consumer.scalabilityMode, 'L3T3', 'one encoding naming three streams of three temporal layers');
    assert.ok(sent.length >= 2, `Chromium sends at least two streams: ${sent}`);
    const top = sent[sent.length - 1];
    await waitFor(`B shows the top stream that arrives (${top} px)`, async () => (await remoteWidth(b)) === top, 15000);

    let t0 = Date.now();
    const r = await preferSpatial(b, 0);
    assert.equal(r.type, 'consumerPreferredLayersSet', JSON.stringify(r));
    assert.equal(r.spatialLayer, 0);
    await waitFor(`B shows the lowest stream (${sent[0]} px)`, async () => (await remoteWidth(b)) === sent[0], 15000);
    const down = Date.now() - t0;
    const frames0 = (await rtpStats(b)).inbound.find((s) => s.kind === 'video').frames;
    await sleep(2000);
    const frames1 = (await rtpStats(b)).inbound.find((s) => s.kind === 'video').frames;
    assert.ok(frames1 - frames0 > 20, `B keeps decoding on the low stream: ${frames1 - frames0} frames in 2 s`);

    t0 = Date.now();
    await preferSpatial(b, 2);
    await waitFor(`B climbs back to ${top} px`, async () => (await remoteWidth(b)) === top, 30000);
    const up = Date.now() - t0;
    console.log(`# Bob: ${top} px -> ${sent[0]} px in ${down} ms after setConsumerPreferredLayers(0); back to ${top} px in ${up} ms`);

    // The small-tile rule: Bob's tile narrowed to 300, then 600 CSS px asks for layer 0, then 1;
    // widened again, for the top one.
    for (const [px, layer] of [[300, 0], [600, 1], [undefined, 2]]) {
      t0 = Date.now();
      await tileWidth(b, px);
      const want = sent[Math.min(layer, sent.length - 1)];
      await waitFor(`B's client asks for layer ${layer} (tile ${px ?? 'full'} px)`, async () => (await chosen(b)).layer === layer, 5000);
      await waitFor(`B shows the ${want} px stream`, async () => (await remoteWidth(b)) === want, 30000);
      console.log(`# Bob's tile ${px ? `${px} CSS px` : 'full width'}: ${JSON.stringify(await chosen(b))}, shows ${want} px after ${Date.now() - t0} ms`);
    }
    const errors = await b.page.evaluate(() => window.atome.errors);
    assert.deepEqual(errors ?? [], [], 'no client errors');
  } catch (e) {
    printPageLogs([a, b]);
    throw e;
  } finally {
    await browser.close();
    server.stop();
  }
});
