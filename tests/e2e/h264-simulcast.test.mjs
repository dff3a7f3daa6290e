// End-to-end: Chromium publishes its camera in H264 simulcast (the web client's three encodings,
// `?codec=h264`) through the stock mediasoup-client; the subscriber preferring spatial layer 0
// decodes the small stream, preferring layer 2 the large one (frameWidth from getStats). The
// engine switches H264 streams on their keyframes (SPS/IDR NAL units), with no payload
// descriptor to rewrite. Debian's Chromium encodes H264 with OpenH264.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { camera720, connect, joinAll, launchBrowser, openUser, printPageLogs, roomWith, simulcastStreams, sleep, startServer, tileWidth, waitFor } from './lib.mjs';
import { consumerCodec, consumerEncoding, preferSpatial, receivedWidth, videoStreams } from './codec-stats.mjs';

const A = '+33611111111';
const B = '+33622222222';

test('H264 simulcast from Chromium: a subscriber preferring layer 0 decodes the small stream, layer 2 the large one', { timeout: 240000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser({ args: [`--use-file-for-fake-video-capture=${camera720()}`] });
  let a;
  let b;
  try {
    a = await openUser(browser, server, A, 'Alice', '?codec=h264');
    b = await openUser(browser, server, B, 'Bob');
    await tileWidth(b); // wide tiles: Bob's client asks for no lower layer on its own
    await connect(a, b);
    await roomWith(a, [b]);
    await joinAll([a, b], 1);
    await waitFor('B decodes A\'s video', async () => (await receivedWidth(b)) > 0, 30000);
    // Up to 20 s for the third stream (the test goes on with two if it does not come).
    const sending = async () => (await videoStreams(a)).outbound.filter((o) => o.width > 0 && o.bytes > 0);
    await simulcastStreams(sending);
    await sleep(2000);
    const out = await sending();
    const sent = out.map((o) => o.width).sort((x, y) => x - y);
    console.log(`# Alice sends ${JSON.stringify(out)}`);
    assert.ok(out.every((o) => o.codec === 'video/H264'), `Alice sends H264: ${JSON.stringify(out)}`);
    assert.equal(await consumerCodec(b), 'video/H264');
    console.log(`# Bob's consumer encoding ${JSON.stringify(await consumerEncoding(b))}`);
    assert.ok(sent.length >= 2, `Chromium sends at least two H264 streams: ${sent}`);
    const top = sent[sent.length - 1];
    await waitFor(`B decodes the top stream (${top} px)`, async () => (await receivedWidth(b)) === top, 20000);

    let t0 = Date.now();
    const r = await preferSpatial(b, 0);
    assert.equal(r.type, 'consumerPreferredLayersSet', JSON.stringify(r));
    await waitFor(`B decodes the small stream (${sent[0]} px)`, async () => (await receivedWidth(b)) === sent[0], 20000);
    const down = Date.now() - t0;
    const f0 = (await videoStreams(b)).inbound[0].frames;
    await sleep(2000);
    const f1 = (await videoStreams(b)).inbound[0].frames;
    assert.ok(f1 - f0 > 20, `B keeps decoding the small stream: ${f1 - f0} frames in 2 s`);

    t0 = Date.now();
    await preferSpatial(b, 2);
    await waitFor(`B decodes the large stream (${top} px)`, async () => (await receivedWidth(b)) === top, 30000);
    console.log(`# H264: Bob decodes ${top} px; preferring layer 0: ${sent[0]} px after ${down} ms; layer 2: ${top} px after ${Date.now() - t0} ms`);
    assert.deepEqual((await b.page.evaluate(() => window.atome.errors)) ?? [], [], 'no client errors');
  } catch (e) {
    printPageLogs([a, b]);
    throw e;
  } finally {
    await browser.close();
    server.stop();
  }
});
