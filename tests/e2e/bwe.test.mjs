// End-to-end: simulcast and bandwidth adaptation. Alice publishes her 1280x720 camera in
// simulcast (the web client's default); Bob receives it on this machine with nothing in the way;
// Carol's Chromium runs in a network namespace (netns.mjs), and once she receives the top stream
// a token bucket limits her downlink (the egress of the host end of her veth pair) to 300 kbit/s.
// Bob and Carol lay their tiles out wide, so their small-tile rule (web/src/layers.js) asks for
// the top stream: only the bandwidth decides. Bob gets the top stream that arrives; Carol a lower
// one, and keeps decoding; once the limit is lifted, Carol climbs back to the top stream. Bob
// and Carol turn their cameras off and mute: each downlink carries only Alice. (The web client
// caps the streams at 0.15, 0.5 and 1.5 Mbit/s: under the limit only the lowest, 320x180, fits.)
// The server runs with downlink estimation on (`--rtc-downlink-bwe=true`, not the default).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { camera720, connect, joinAll, launchBrowser, openUser, roomWith, rtpStats, simulcastStreams, sleep, startServer, tileWidth, waitFor } from './lib.mjs';
import { createNetns, netnsUnavailable } from './netns.mjs';

const A = '+33611111111';
const B = '+33622222222';
const C = '+33633333333';
const LIMIT_KBPS = 300;
const missing = netnsUnavailable() || (spawnSync('tc', ['-V']).status !== 0 && 'tc is not installed (apt-get install iproute2)');

/**
 * How `user` receives Alice's camera: its inbound-rtp (frame width, frames decoded, bytes,
 * freezes), what the small-tile rule asked for, and the bytes of the receive transport's pair.
 */
async function reception(user, alice) {
  return user.page.evaluate(async (peer) => {
    const entry = [...window.atome.consumers.values()].find((c) => c.peer === peer && c.consumer.kind === 'video');
    const out = {
      at: performance.now(), mode: entry?.consumer.rtpParameters.encodings[0].scalabilityMode, layer: entry?.layer, tilePx: entry?.tilePx,
      width: 0, frames: 0, bytes: 0, freezes: 0, freezeMs: 0, pairBytes: 0,
    };
    if (!entry) return out;
    const ssrc = entry.consumer.rtpParameters.encodings[0].ssrc;
    const all = new Map();
    (await window.atome.recvTransport.getStats()).forEach((s) => all.set(s.id, s));
    for (const s of all.values()) {
      if (s.type === 'inbound-rtp' && s.ssrc === ssrc) {
        Object.assign(out, {
          width: s.frameWidth || 0, frames: s.framesDecoded || 0, bytes: s.bytesReceived || 0,
          freezes: s.freezeCount || 0, freezeMs: Math.round((s.totalFreezesDuration || 0) * 1000),
        });
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) out.pairBytes = all.get(s.selectedCandidatePairId)?.bytesReceived || 0;
    }
    return out;
  }, alice);
}

const kbps = (bytes, ms) => Math.round((bytes * 8) / ms);

/** The width of the frames `user` decodes of Alice's camera over half a second (0: none decoded). */
async function decodedWidth(user, alice) {
  const r0 = await reception(user, alice);
  await sleep(500);
  const r1 = await reception(user, alice);
  return r1.frames > r0.frames ? r1.width : 0;
}

/**
 * Records, in the page, the consumerLayersChanged notifications of its socket (the stream and
 * temporal layer the server forwards to each consumer): window.__layers.
 */
function recordLayers() {
  window.__layers = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (!this.__recorded) {
      this.__recorded = true;
      this.addEventListener('message', (ev) => {
        try {
          const m = JSON.parse(ev.data);
          if (m.type === 'consumerLayersChanged') window.__layers.push({ at: Date.now(), consumer: m.consumer_id, s: m.spatialLayer, t: m.temporalLayer });
        } catch { /* not JSON */ }
      });
    }
    return send.call(this, data);
  };
}

/** The layers the server forwarded to `user`'s consumer of Alice's camera, as `S<s>T<t> at <seconds>` from `t0`. */
async function layerChanges(user, alice, t0) {
  const changes = await user.page.evaluate((peer) => {
    const entry = [...window.atome.consumers.values()].find((c) => c.peer === peer && c.consumer.kind === 'video');
    return window.__layers.filter((l) => l.consumer === entry?.consumer.id);
  }, alice);
  return changes.map((l) => `S${l.s}T${l.t} at ${((l.at - t0) / 1000).toFixed(1)} s`).join(', ') || 'none';
}

/** Alice's simulcast streams that are sending, lowest first: width and bitrate over a second. */
async function sentStreams(a) {
  const video = async () => (await rtpStats(a)).outbound.filter((o) => o.kind === 'video');
  const first = await video();
  const t0 = Date.now();
  await sleep(1000);
  const last = await video();
  const ms = Date.now() - t0;
  return last.filter((o) => o.width > 0 && o.bytes > 0)
    .map((o) => ({ width: o.width, kbps: kbps(o.bytes - (first.find((f) => f.ssrc === o.ssrc)?.bytes ?? 0), ms) }))
    .sort((x, y) => x.width - y.width);
}

/** The server's downlink estimate for `user`'s receive transport, kbit/s (transportStats). */
async function serverEstimate(user) {
  const r = await user.page.evaluate(() => window.atomeRequest('getTransportStats', { transport_id: window.atome.recvTransport.id }));
  const bps = r?.stats?.[0]?.availableOutgoingBitrate;
  return bps === undefined ? 'none' : Math.round(bps / 1000);
}

test('simulcast and bandwidth adaptation: a subscriber limited to 300 kbit/s gets a lower stream, keeps decoding, and climbs back once the limit is lifted',
  { timeout: 300000, skip: missing }, async (t) => {
    const ns = createNetns();
    let server;
    let hostBrowser;
    let nsBrowser;
    const users = [];
    try {
      server = await startServer({ ip: ns.hostIp, args: ['--rtc-downlink-bwe=true'] });
      hostBrowser = await launchBrowser({ server, args: [`--use-file-for-fake-video-capture=${camera720()}`] });
      nsBrowser = await launchBrowser({ netns: ns, server });
      const a = await openUser(hostBrowser, server, A, 'Alice');
      const b = await openUser(hostBrowser, server, B, 'Bob', '', { init: recordLayers });
      const c = await openUser(nsBrowser, server, C, 'Carol', '', { init: recordLayers });
      users.push(a, b, c);
      for (const u of [b, c]) await tileWidth(u);
      await connect(a, b);
      await connect(a, c);
      await roomWith(a, [b, c]);
      await joinAll([a, b, c], 2);
      // Bob and Carol turn their cameras off and mute: each downlink carries only Alice.
      for (const u of [b, c]) {
        await u.page.click('#camera');
        await u.page.click('#mute');
      }
      for (const [u, other] of [[b, 'Carol'], [c, 'Bob']]) {
        await waitFor(`${u.name} no longer consumes ${other}'s camera`, () => u.page.evaluate(
          () => [...window.atome.consumers.values()].filter((x) => x.consumer.kind === 'video').length === 1,
        ));
      }
      const alice = await a.page.evaluate(() => window.atome.user.user_id);

      await waitFor('Bob shows Alice', async () => (await reception(b, alice)).width > 0, 30000);
      const sent = await simulcastStreams(() => sentStreams(a));
      console.log(`# Alice sends ${sent.length} streams: ${sent.map((s) => `${s.width} px at ${s.kbps} kbit/s`).join(', ')}`);
      assert.ok(sent.length >= 2, `Chromium sends at least two streams: ${JSON.stringify(sent)}`);
      const top = sent.at(-1).width;
      // The server's downlink estimate starts at 600 kbit/s and climbs as Bob's feedback allows.
      const t0 = Date.now();
      const bobTop = await waitFor(`Bob receives the top stream (${top} px)`, async () => (await decodedWidth(b, alice)) === top, 30000)
        .then(() => Date.now() - t0, () => null);
      console.log(`# Bob: ${bobTop === null ? `not on the top stream within 30 s (${await decodedWidth(b, alice)} px)` : `receives the top stream ${bobTop} ms after Alice's streams were read`}`
        + `; the server's estimate of his downlink ${await serverEstimate(b)} kbit/s`);
      for (const u of [b, c]) {
        const r = await reception(u, alice);
        console.log(`# ${u.name}'s tile is ${r.tilePx} px wide: the small-tile rule asks for layer ${r.layer} (consumer ${r.mode})`);
        assert.equal(r.layer, Number(r.mode.match(/^L(\d+)/)[1]) - 1, `${u.name}'s tile asks for the top layer`);
      }

      // Carol on the top stream for two readings in a row (on this loaded machine a loopback
      // estimate can dip and take a subscriber a stream down for a few seconds).
      const c0 = Date.now();
      let onTop = 0;
      const carolTop = await waitFor(`Carol receives the top stream (${top} px) before the limit`, async () => {
        onTop = (await decodedWidth(c, alice)) === top ? onTop + 1 : 0;
        return onTop >= 2;
      }, 30000).then(() => Date.now() - c0, () => null);
      console.log(`# Carol, not limited yet: decodes ${await decodedWidth(c, alice)} px${carolTop === null ? ' (not the top stream within 30 s)' : ` (the top stream ${carolTop} ms after Bob)`}`);

      // Limited: Carol should get a lower stream (up to 30 s for the server to see her downlink),
      // then 10 s of per-second figures.
      ns.limitDown(`${LIMIT_KBPS}kbit`);
      const limited = Date.now();
      console.log(`# Carol's downlink limited: tc tbf rate ${LIMIT_KBPS}kbit burst 16kbit latency 400ms on ${ns.hostIf} (Carol at ${ns.nsIp})`);
      // Settled: two seconds in a row with frames decoded, all of a lower stream than the top.
      let prev = await reception(c, alice);
      // ... once the server has switched her to a lower stream than the one she had at the limit
      // (a consumerLayersChanged after it): until then what the token bucket's queue lets
      // through of the old stream may still decode.
      const layersNow = async () => c.page.evaluate((peer) => {
        const entry = [...window.atome.consumers.values()].find((x) => x.peer === peer && x.consumer.kind === 'video');
        return window.__layers.filter((l) => l.consumer === entry?.consumer.id);
      }, alice);
      const atLimit = (await layersNow()).at(-1)?.s;
      let settledFor = 0;
      const lower = await waitFor('Carol settles on a lower stream than the top', async () => {
        await sleep(1000);
        const now = await reception(c, alice);
        const after = (await layersNow()).filter((l) => l.at >= limited);
        const switched = after.length > 0 && after.at(-1).s < atLimit;
        const decoding = switched && now.frames > prev.frames && now.width > 0 && now.width < top;
        prev = now;
        settledFor = decoding ? settledFor + 1 : 0;
        return settledFor >= 2 ? now.width : null;
      }, 30000).catch(() => null);
      console.log(`# Carol: ${lower ? `settled on a ${lower} px stream ${Date.now() - limited} ms after the limit was set (decoding for 2 s)` : `no lower stream decoded within 30 s (frames decoded ${(await reception(c, alice)).frames}, the last ${(await reception(c, alice)).width} px wide)`}`);
      const samples = [await reception(c, alice)];
      const bob0 = await reception(b, alice);
      const tbf0 = ns.limitStats();
      for (let i = 0; i < 10; i++) {
        await sleep(1000);
        samples.push(await reception(c, alice));
      }
      const tbf1 = ns.limitStats();
      const bob1 = await reception(b, alice);
      const sentLimited = await sentStreams(a);
      const [first, last] = [samples[0], samples.at(-1)];
      const span = last.at - first.at;
      const frames = samples.slice(1).map((s, i) => s.frames - samples[i].frames);
      // The width of the frames decoded in each second (0: none decoded).
      const widths = samples.slice(1).map((s, i) => (s.frames > samples[i].frames ? s.width : 0));
      const videoKbps = samples.slice(1).map((s, i) => kbps(s.bytes - samples[i].bytes, s.at - samples[i].at));
      const pairKbps = kbps(last.pairBytes - first.pairBytes, span);
      const linkKbps = kbps(tbf1.bytes - tbf0.bytes, span);
      console.log(`# Carol, limited: the server's estimate of her downlink ${await serverEstimate(c)} kbit/s`);
      console.log(`# Carol, limited: width of the frames decoded in each second ${widths.join(' ')} (Bob: ${bob1.width})`);
      console.log(`# Carol, limited: frames decoded per second ${frames.join(' ')}`);
      console.log(`# Carol, limited: video received per second (kbit/s) ${videoKbps.join(' ')}; all she received ${pairKbps} kbit/s; `
        + `the link passed ${linkKbps} kbit/s, dropped ${tbf1.dropped - tbf0.dropped} of ${tbf1.packets - tbf0.packets + tbf1.dropped - tbf0.dropped} packets`);
      console.log(`# Carol, limited: freezeCount ${last.freezes - first.freezes} (${last.freezeMs - first.freezeMs} ms frozen) in the 10 s; `
        + `${last.freezes} (${last.freezeMs} ms) since her first frame`);
      console.log(`# Bob meanwhile: ${bob1.width} px, ${bob1.frames - bob0.frames} frames, ${kbps(bob1.bytes - bob0.bytes, bob1.at - bob0.at)} kbit/s of video; `
        + `Alice sends ${sentLimited.map((x) => `${x.width} px at ${x.kbps} kbit/s`).join(', ')}`);

      // Lifted: Carol should climb to the top stream within 30 s.
      ns.unlimit();
      const t1 = Date.now();
      const climbed = await waitFor(`Carol climbs to ${top} px`, async () => (await decodedWidth(c, alice)) === top, 30000)
        .then(() => Date.now() - t1, () => null);
      const u0 = await reception(c, alice);
      await sleep(2000);
      const u1 = await reception(c, alice);
      console.log(`# Carol, limit lifted: ${climbed === null ? `not at ${top} px within 30 s` : `${top} px after ${climbed} ms`}; `
        + `then ${u1.width} px, ${kbps(u1.bytes - u0.bytes, u1.at - u0.at)} kbit/s of video, ${Math.round(((u1.frames - u0.frames) * 1000) / (u1.at - u0.at))} frames/s`);
      for (const u of [b, c]) {
        console.log(`# ${u.name}: layers forwarded (consumerLayersChanged; limit set at 0 s, lifted at ${((t1 - limited) / 1000).toFixed(1)} s): ${await layerChanges(u, alice, limited)}`);
      }

      await t.test('Bob, not limited, receives the top stream', () => {
        assert.ok(bobTop !== null, `Bob's frame width ${bob1.width}, the top ${top}`);
      });
      await t.test('the limit holds Carol\'s downlink near 300 kbit/s', () => {
        assert.ok(linkKbps <= LIMIT_KBPS * 1.1, `the link passed ${linkKbps} kbit/s`);
        assert.ok(pairKbps <= LIMIT_KBPS * 1.1, `Carol received ${pairKbps} kbit/s`);
      });
      await t.test('Carol receives a lower stream than the top one', () => {
        assert.ok(widths.every((w) => w > 0 && w < top), `Carol's frame widths ${widths}, the top ${top} (Bob: ${bob1.width})`);
      });
      await t.test('Carol decodes every second', () => {
        frames.forEach((n, i) => assert.ok(n > 0, `no frame decoded in second ${i + 1} (${frames})`));
      });
      await t.test('Carol climbs to the top stream within 30 s of the limit lifted', () => {
        assert.ok(climbed !== null, `Carol's frame width ${u1.width}, the top ${top}`);
      });
    } catch (e) {
      for (const u of users) {
        const st = await u.page.evaluate(() => ({ consumers: window.atome.consumers.size, published: window.atome.published, errors: window.atome.errors })).catch(() => null);
        console.log(`# ${u.name}'s page (${JSON.stringify(st)}):\n${u.logs.slice(-15).map((l) => `#   ${l}`).join('\n')}`);
      }
      throw e;
    } finally {
      await hostBrowser?.close();
      await nsBrowser?.close();
      server?.stop();
      ns.destroy();
    }
  });
