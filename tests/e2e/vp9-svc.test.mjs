// End-to-end: Chromium publishes its camera in VP9 SVC (`?codec=vp9&svc=L3T3`: one encoding of
// three spatial and three temporal layers) through the stock mediasoup-client; the SVC consumer
// (mediasoup's SvcConsumer) forwards the layers its subscriber prefers: spatial layer 0 gives the
// small resolution, layer 2 the large one (frameWidth from getStats), without a keyframe going
// down in full SVC, on one going up. The consumer's rtpParameters carry the producer's mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { camera720, connect, joinAll, launchBrowser, openUser, printPageLogs, roomWith, sleep, startServer, tileWidth, waitFor } from './lib.mjs';
import { consumerCodec, consumerEncoding, preferSpatial, receivedWidth, videoStreams } from './codec-stats.mjs';

const A = '+33611111111';
/** The width Alice's one VP9 stream is sent at now (its top spatial layer). */
const sentWidth = async (a) => (await videoStreams(a)).outbound.find((o) => o.bytes > 0)?.width ?? 0;
const B = '+33622222222';

for (const mode of ['L3T3', 'L3T3_KEY']) {
  test(`VP9 SVC (${mode}) from Chromium: a subscriber preferring spatial layer 0 gets the small resolution, layer 2 the large one`, { timeout: 240000 }, async () => {
    const server = await startServer();
    const browser = await launchBrowser({ args: [`--use-file-for-fake-video-capture=${camera720()}`] });
    let a;
    let b;
    try {
      a = await openUser(browser, server, A, 'Alice', `?codec=vp9&svc=${mode}`);
      b = await openUser(browser, server, B, 'Bob');
      await tileWidth(b); // wide tiles: Bob's client asks for no lower layer on its own
      await connect(a, b);
      await roomWith(a, [b]);
      await joinAll([a, b], 1);
      await waitFor('B decodes A\'s video', async () => (await receivedWidth(b)) > 0, 30000);
      await sleep(6000); // the encoder ramps up to its spatial layers
      const out = (await videoStreams(a)).outbound.filter((o) => o.bytes > 0);
      console.log(`# Alice sends ${JSON.stringify(out)}`);
      assert.equal(out.length, 1, 'one stream');
      assert.equal(out[0].codec, 'video/VP9');
      assert.equal(await consumerCodec(b), 'video/VP9');
      const encoding = await consumerEncoding(b);
      console.log(`# Bob's consumer encoding ${JSON.stringify(encoding)}`);
      assert.equal(encoding.scalabilityMode, mode, 'the producer\'s scalabilityMode, as mediasoup');
      // The encoder adapts its resolution as its bandwidth estimate and CPU allow: wait for a
      // top layer of 480 px or more, received as sent.
      let top = 0;
      await waitFor('B gets the large resolution Alice sends (480 px or more)', async () => {
        top = await sentWidth(a);
        return top >= 480 && (await receivedWidth(b)) === top;
      }, 30000);

      let t0 = Date.now();
      const r = await preferSpatial(b, 0);
      assert.equal(r.type, 'consumerPreferredLayersSet', JSON.stringify(r));
      let small = 0;
      await waitFor('B gets a smaller resolution', async () => {
        small = await receivedWidth(b);
        return small > 0 && small < top / 2;
      }, 20000);
      const down = Date.now() - t0;
      await sleep(1000);
      small = await receivedWidth(b);
      // Chromium may adapt its capture meanwhile (CPU): layer 0 is a quarter of what it sends now.
      const now = await sentWidth(a);
      assert.ok([top, now].some((w) => Math.abs(small - w / 4) <= 2), `spatial layer 0 is a quarter of what is sent (${top}, now ${now} px): ${small}`);
      const f0 = (await videoStreams(b)).inbound[0].frames;
      await sleep(2000);
      const f1 = (await videoStreams(b)).inbound[0].frames;
      assert.ok(f1 - f0 > 20, `B keeps decoding layer 0: ${f1 - f0} frames in 2 s`);

      t0 = Date.now();
      await preferSpatial(b, 2);
      let large = 0;
      await waitFor('B gets the large resolution again (what Alice sends)', async () => {
        large = await receivedWidth(b);
        return large > 2 * small && large === await sentWidth(a);
      }, 30000);
      console.log(`# VP9 ${mode}: Bob gets ${top} px; preferring spatial layer 0: ${small} px after ${down} ms; layer 2: ${large} px after ${Date.now() - t0} ms`);
      assert.deepEqual((await b.page.evaluate(() => window.atome.errors)) ?? [], [], 'no client errors');
    } catch (e) {
      printPageLogs([a, b]);
      throw e;
    } finally {
      await browser.close();
      server.stop();
    }
  });
}
