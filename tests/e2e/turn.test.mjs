// Calls on hard networks (netns.mjs: Chromium in a namespace behind a veth pair, the server on
// the host end). 1. The media ports are blocked and the clients may only use a relay: the call
// goes through a real coturn with the server's TURN REST API credentials; an expired credential
// is refused. 2. 5% random loss (nftables) and 30 ms of jitter (a userspace relay, jitter.mjs) on
// the client's link: audio flows and video decodes every second (at least 10 frames/s, and it
// always comes back).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  assertPairs, assertReceiving, connect, joinTimed, launchBrowser, openUser, roomWith, sleep, startServer, waitFor,
} from './lib.mjs';
import { createNetns, netnsUnavailable } from './netns.mjs';
import { coturnUnavailable, startCoturn, turnCredential } from './coturn.mjs';
import { startJitterRelay } from './jitter.mjs';

const A = '+33611111111';
const B = '+33622222222';
const noNetns = netnsUnavailable();
const noCoturn = noNetns || coturnUnavailable();

/** Gathers ICE candidates in the page with only these `iceServers` and relay policy. */
async function gatherRelay(user, iceServers) {
  return user.page.evaluate(async (servers) => {
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: 'relay' });
    const relays = [];
    const errors = [];
    pc.onicecandidate = (e) => {
      if (e.candidate?.type === 'relay') relays.push(`${e.candidate.address}:${e.candidate.port}`);
    };
    pc.onicecandidateerror = (e) => errors.push({ code: e.errorCode, url: e.url, text: e.errorText });
    pc.createDataChannel('probe');
    const complete = new Promise((resolve) => {
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      setTimeout(resolve, 10000);
    });
    await pc.setLocalDescription();
    await complete;
    pc.close();
    return { relays, errors };
  }, iceServers);
}

/** Receive-side counters of the live consumers (getStats of the receive transport). */
async function receiveStats(user) {
  return user.page.evaluate(async () => {
    const live = new Set([...window.atome.consumers.values()].map((c) => c.consumer.rtpParameters.encodings[0].ssrc));
    const out = [];
    (await window.atome.recvTransport.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || !live.has(s.ssrc)) return;
      out.push({
        kind: s.kind, ssrc: s.ssrc, packets: s.packetsReceived || 0, lost: s.packetsLost || 0, frames: s.framesDecoded || 0,
        freezes: s.freezeCount || 0, freezeMs: Math.round((s.totalFreezesDuration || 0) * 1000), nacks: s.nackCount || 0,
        plis: s.pliCount || 0, jitterMs: Math.round((s.jitter || 0) * 1000), fps: s.framesPerSecond || 0,
        bufferMs: s.jitterBufferEmittedCount ? Math.round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000) : 0,
      });
    });
    return out;
  });
}

const total = (stats, kind, field) => stats.filter((s) => s.kind === kind).reduce((a, s) => a + s[field], 0);

test('media ports blocked, relay only: the call goes through coturn; an expired credential is refused',
  { timeout: 180000, skip: noCoturn }, async () => {
    const ns = createNetns();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atome-turn-'));
    let server;
    let browser;
    let turn;
    try {
      const secret = crypto.randomBytes(24).toString('hex');
      fs.writeFileSync(path.join(dir, 'turn-secret'), `${secret}\n`, { mode: 0o600 });
      turn = await startCoturn({ ip: ns.hostIp, secret });
      server = await startServer({
        ip: ns.hostIp,
        args: ['--turn-urls', turn.urls.join(','), '--turn-secret-file', path.join(dir, 'turn-secret')],
      });
      const mediaPorts = await server.mediaPorts();
      ns.dropPorts(mediaPorts);
      browser = await launchBrowser({ netns: ns, server });
      const a = await openUser(browser, server, A, 'Alice', '?iceTransportPolicy=relay');
      const b = await openUser(browser, server, B, 'Bob', '?iceTransportPolicy=relay');
      await connect(a, b);
      await roomWith(a, [b]);
      const [ta, tb] = await joinTimed([a, b]);
      console.log(`through TURN (media ports ${mediaPorts} blocked): time to media ${ta} ms (Alice), ${tb} ms (Bob)`);
      for (const u of [a, b]) await assertPairs(u, 'type', 'relay');
      await assertReceiving(a, 1);
      await assertReceiving(b, 1);

      // What the server handed out: the configured URLs, `expiry:user_id` 24 h ahead, and the
      // password computed here independently from the shared secret.
      const ice = await a.page.evaluate(() => window.atome.iceServers);
      assert.equal(ice.length, 1);
      assert.deepEqual(ice[0].urls, turn.urls);
      const [expiry, userId] = ice[0].username.split(':');
      const ahead = Number(expiry) - Date.now() / 1000;
      assert.ok(ahead > 86400 - 120 && ahead <= 86400 + 1, `credential expires in ${ahead} s`);
      assert.match(userId, /^[0-9a-f-]{36}$/);
      // (assert.ok: a failure must not print credentials)
      assert.ok(ice[0].credential === turnCredential(secret, ice[0].username), 'credential is not base64(HMAC-SHA1(secret, username))');

      // An ICE restart (the browser reports a network change) brings fresh credentials, which
      // the client hands to its transports; media keeps flowing through the relay.
      await a.page.evaluate(() => {
        window.__iceBefore = window.atome.iceServers;
        window.dispatchEvent(new Event('online'));
      });
      await waitFor('Alice gets iceServers in iceRestarted', () => a.page.evaluate(() => window.atome.iceServers !== window.__iceBefore
        && window.atome.iceServers[0]?.username.endsWith(window.__iceBefore[0].username.split(':')[1])));
      await assertReceiving(b, 1, 3);
      await assertPairs(a, 'type', 'relay');

      // Each TURN transport (UDP, TCP), alone, with a valid credential gives a relay candidate;
      // an expired credential none: coturn answers 401.
      for (const url of turn.urls) {
        const r = await gatherRelay(a, [{ urls: [url], username: ice[0].username, credential: ice[0].credential }]);
        assert.ok(r.relays.length > 0, `${url}: no relay candidate with a valid credential: ${JSON.stringify(r.errors)}`);
        console.log(`${url} alone: relay candidates ${r.relays.join(' ')}`);
      }
      const expiredName = `${Math.floor(Date.now() / 1000) - 60}:${userId}`;
      const expired = await gatherRelay(a, [{ urls: turn.urls, username: expiredName, credential: turnCredential(secret, expiredName) }]);
      console.log(`expired credential: relay candidates ${expired.relays.length}, errors ${JSON.stringify(expired.errors)}`);
      assert.equal(expired.relays.length, 0, 'coturn allocated a relay for an expired credential');
      assert.ok(expired.errors.some((e) => e.code === 401), `expected 401 from coturn: ${JSON.stringify(expired.errors)}`);
      assert.ok(!server.log().includes(secret), 'the TURN secret is in the server log');
    } catch (e) {
      if (turn) console.log(`coturn log:\n${turn.log().split('\n').slice(-20).join('\n')}`);
      throw e;
    } finally {
      await browser?.close();
      server?.stop();
      turn?.stop();
      ns.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

test('5% loss and 30 ms jitter on the client link: video decodes and audio flows every second',
  { timeout: 180000, skip: noNetns }, async () => {
    const ns = createNetns();
    let server;
    let browser;
    let relay;
    try {
      // Media on loopback, announced on the link's host end, where the jitter relay listens.
      server = await startServer({ ip: ns.hostIp, rtcIp: '127.0.0.1', announcedIp: ns.hostIp });
      const ports = await server.mediaPorts();
      relay = await startJitterRelay({ listenIp: ns.hostIp, targetIp: '127.0.0.1', ports, delayMs: 40, jitterMs: 30 });
      ns.loseUdp(5);
      browser = await launchBrowser({ netns: ns, server });
      const a = await openUser(browser, server, A, 'Alice', '' /* simulcast, the default */);
      const b = await openUser(browser, server, B, 'Bob', '' /* simulcast, the default */);
      await connect(a, b);
      await roomWith(a, [b]);
      const [ta, tb] = await joinTimed([a, b]);
      console.log(`server log: ${server.dataDir}/server.log`);
      console.log(`loss 5% + delay 40±30 ms (order kept): time to media ${ta} ms (Alice), ${tb} ms (Bob)`);
      await sleep(2000); // the first keyframe's repairs settle

      // Every second the counters of both users; in between, every 250 ms, the time since the
      // last newly decoded frame (the longest such gap is a stall).
      const seconds = 15;
      const samples = { [a.name]: [await receiveStats(a)], [b.name]: [await receiveStats(b)] };
      const gap = {};
      for (const u of [a, b]) gap[u.name] = { frames: total(samples[u.name][0], 'video', 'frames'), at: Date.now(), longest: 0 };
      for (let i = 0; i < seconds * 4; i++) {
        await sleep(250);
        for (const u of [a, b]) {
          const now = await receiveStats(u);
          const g = gap[u.name];
          const frames = total(now, 'video', 'frames');
          if (frames > g.frames) Object.assign(g, { frames, at: Date.now() });
          g.longest = Math.max(g.longest, Date.now() - g.at);
          if (i % 4 === 3) samples[u.name].push(now);
        }
      }
      const dropped = ns.dropped();
      const r = relay.stats();
      console.log(`link: nft dropped ${dropped.input} packets from the client, ${dropped.output} to it; relay passed `
        + `${r.up} up, ${r.down} down, mean delay ${r.meanDelayMs.toFixed(1)} ms, ${r.reordered} reordered`);
      for (const u of [a, b]) {
        const s = samples[u.name];
        const frames = s.slice(1).map((x, i) => total(x, 'video', 'frames') - total(s[i], 'video', 'frames'));
        const audio = s.slice(1).map((x, i) => total(x, 'audio', 'packets') - total(s[i], 'audio', 'packets'));
        const last = s.at(-1);
        const video = last.find((x) => x.kind === 'video');
        const sound = last.find((x) => x.kind === 'audio');
        console.log(`${u.name}: video frames decoded per second ${frames.join(' ')}; audio packets per second ${audio.join(' ')}`);
        console.log(`${u.name}: video ${JSON.stringify(video)}; audio ${JSON.stringify(sound)}`);
        const before = s[0].find((x) => x.kind === 'video') ?? { freezes: 0, freezeMs: 0 };
        console.log(`${u.name}: freezeCount ${video.freezes} (${video.freezeMs} ms frozen) since the first frame, `
          + `${video.freezes - before.freezes} (${video.freezeMs - before.freezeMs} ms) in the ${seconds} s measured; framesDecoded ${video.frames}`);
        assert.equal(last.filter((x) => x.kind === 'video').length, 1, `${u.name}: one video stream`);
        assert.equal(last.filter((x) => x.kind === 'audio').length, 1, `${u.name}: one audio stream`);
        console.log(`${u.name}: longest time seen without a new decoded frame (sampled every 250 ms) ${gap[u.name].longest < 250 ? 'under 250' : gap[u.name].longest} ms`);
        frames.forEach((n, i) => assert.ok(n > 0, `${u.name}: no video frame decoded in second ${i + 1} (${frames})`));
        audio.forEach((n, i) => assert.ok(n > 0, `${u.name}: no audio packet in second ${i + 1} (${audio})`));
        assert.ok(frames.reduce((x, y) => x + y) > seconds * 10, `${u.name}: under 10 frames/s (${frames})`);
        assert.ok(video.lost > 0 || video.nacks > 0, `${u.name}: the loss did not reach the video (${JSON.stringify(video)})`);
      }
      // A stalled video always comes back.
      for (const u of [a, b]) {
        const f0 = total(await receiveStats(u), 'video', 'frames');
        await waitFor(`${u.name} decodes new video frames`, async () => total(await receiveStats(u), 'video', 'frames') > f0 + 10, 10000);
      }
      assert.ok(dropped.input > 0 && dropped.output > 0, `nft dropped nothing: ${JSON.stringify(dropped)}`);
      assert.ok(r.meanDelayMs > 30 && r.reordered === 0, `the relay: ${JSON.stringify(r)}`);
    } finally {
      await browser?.close();
      server?.stop();
      relay?.close();
      ns.destroy();
    }
  });
