// End-to-end: screen sharing and switching the camera in a call (issue 15).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertReceiving, connect, joinAll, launchBrowser, openUser, roomWith, rtpStats, sleep, startServer, waitFor,
} from './lib.mjs';

const A = '+33611111111';
const B = '+33622222222';

async function call(server, browser) {
  const a = await openUser(browser, server, A, 'Alice');
  const b = await openUser(browser, server, B, 'Bob');
  await connect(a, b);
  await roomWith(a, [b]);
  await joinAll([a, b], 1);
  return { a, b };
}

/** Video streams B decodes: frames per stream, after `ms`. */
async function decoding(user, ms = 3000) {
  const first = await rtpStats(user);
  await sleep(ms);
  const last = await rtpStats(user);
  return last.inbound.filter((s) => s.kind === 'video')
    .map((s) => s.frames - (first.inbound.find((x) => x.ssrc === s.ssrc)?.frames ?? 0));
}

test('screen share: the other user decodes a second video; the button or the track\'s end stops it', { timeout: 180000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const { a, b } = await call(server, browser);
    for (const how of ['button', 'track ended']) {
      await a.page.click('#screen');
      await a.page.waitForFunction(() => document.querySelector('#screen').textContent === 'Stop sharing');
      await waitFor('B consumes the screen', async () => (await rtpStats(b)).consumers.filter((k) => k === 'video').length === 2);
      const frames = await decoding(b);
      assert.equal(frames.length, 2, 'B receives two video streams');
      assert.ok(frames.every((f) => f > 10), `both decode: ${frames}`);
      // The screen has its own tile, named, at the screen's size.
      await b.page.waitForFunction(() => document.querySelector('[data-tile^="screen-"] video')?.videoWidth > 0);
      const screen = await b.page.$eval('[data-tile^="screen-"]', (t) => ({ label: t.querySelector('span').textContent, w: t.querySelector('video').videoWidth }));
      assert.equal(screen.label, 'Alice (screen)');
      assert.ok(screen.w > 640, `the screen tile shows the screen (${screen.w} px wide), not the camera`);
      assert.equal((await server.health()).media.producers, 5);
      if (how === 'button') {
        await a.page.click('#screen');
      } else {
        // What the browser's own "Stop sharing" does: the track ends and says so.
        await a.page.evaluate(() => {
          const t = window.atome.producers.screen.track;
          t.stop();
          t.dispatchEvent(new Event('ended'));
        });
      }
      await waitFor(`screen gone at B (${how})`, async () => (await rtpStats(b)).consumers.filter((k) => k === 'video').length === 1);
      assert.equal(await b.page.$('[data-tile^="screen-"]'), null, 'the screen tile is gone');
      assert.equal((await server.health()).media.producers, 4, `the screen producer is closed (${how})`);
      assert.equal(await a.page.textContent('#screen'), 'Share screen');
    }
    await assertReceiving(b, 1);
  } finally {
    await browser.close();
    server.stop();
  }
});

/** The mean colour of the picture B shows for A. */
async function remotePicture(b) {
  return b.page.evaluate(() => {
    const v = document.querySelector('[data-tile^="peer-"] video');
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 48;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0, 64, 48);
    const px = g.getImageData(0, 0, 64, 48).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < px.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += px[i + k];
    return sum.map((x) => Math.round(x / (px.length / 4)));
  });
}

const distance = (p, q) => Math.hypot(...p.map((x, i) => x - q[i]));

/** The size of A's picture at B. */
const remoteSize = (b) => b.page.$eval('[data-tile^="peer-"] video', (v) => ({ w: v.videoWidth, h: v.videoHeight }));

/**
 * A second camera for the page (the "canvas-captured second source"): Chrome's fake
 * cameras all draw the same green picture (or one WebRTC cannot encode), so the page also lists
 * "Canvas camera", a red 320x240 canvas with a moving square. Everything after getUserMedia is
 * the real path: the client's replaceTrack, the encoder, our server, B's decoder.
 */
function canvasCamera() {
  const md = navigator.mediaDevices;
  const enumerate = md.enumerateDevices.bind(md);
  const getUserMedia = md.getUserMedia.bind(md);
  const id = 'canvas-camera';
  md.enumerateDevices = async () => [...await enumerate(), { deviceId: id, kind: 'videoinput', label: 'Canvas camera', groupId: id }];
  md.getUserMedia = async (c) => {
    const wanted = c?.video?.deviceId?.exact ?? c?.video?.deviceId;
    if (wanted !== id) return getUserMedia(c);
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 240;
    const g = canvas.getContext('2d');
    let n = 0;
    setInterval(() => {
      g.fillStyle = '#d02020';
      g.fillRect(0, 0, 320, 240);
      g.fillStyle = '#fff';
      g.fillRect((n++ * 4) % 300, 110, 20, 20);
    }, 33);
    const stream = canvas.captureStream(30);
    if (c.audio) for (const t of (await getUserMedia({ audio: c.audio })).getAudioTracks()) stream.addTrack(t);
    return stream;
  };
}

test('switching the camera in a call changes the picture the other user sees, with no new producer', { timeout: 180000 }, async () => {
  const server = await startServer();
  // Chrome's fake devices, two of each (the first camera draws on green).
  const browser = await launchBrowser({ fakeDevices: 'device-count=2' });
  try {
    const a = await openUser(browser, server, A, 'Alice', '', { init: canvasCamera });
    const b = await openUser(browser, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    await joinAll([a, b], 1);
    const cameras = await a.page.$$eval('#camera-select option', (os) => os.map((o) => [o.value, o.textContent]));
    assert.deepEqual(cameras.map(([, label]) => label), ['fake_device_0', 'fake_device_1', 'Canvas camera'], 'the cameras are listed');
    assert.ok(await a.page.$$eval('#mic-select option', (os) => os.length) >= 2, 'the microphones are listed');
    await waitFor('A\'s picture at B', async () => (await rtpStats(b)).remoteWidths[0] > 0);
    await sleep(1000);
    const before = await remotePicture(b);
    assert.ok(before[1] - before[0] > 50, `the first camera is green: ${before}`);
    // The first camera is captured at 1280x720 and sent in simulcast: B gets one of its streams,
    // all 16:9; the canvas is 4:3 and 320 px wide, so its streams are 4:3 and at most 320 wide.
    const first = await remoteSize(b);
    assert.equal(first.w * 9, first.h * 16, `the first camera at B: ${first.w}x${first.h}`);
    const producerId = await a.page.evaluate(() => window.atome.producers.video.id);
    await a.page.selectOption('#camera-select', 'canvas-camera');
    const after = await waitFor('the other picture at B', async () => {
      const p = await remotePicture(b);
      return distance(p, before) > 100 && p[0] - p[1] > 100 ? p : null;
    }, 10000);
    const second = await waitFor('its size at B', async () => {
      const size = await remoteSize(b);
      return size.w * 3 === size.h * 4 && size.w <= 320 ? size : null;
    }, 10000);
    console.log(`remote picture (mean RGB) ${before} -> ${after}, ${first.w}x${first.h} -> ${second.w}x${second.h}`);
    assert.equal(await a.page.evaluate(() => window.atome.producers.video.id), producerId, 'same producer (replaceTrack)');
    // The microphone too: audio keeps flowing after the switch.
    const mics = await a.page.$$eval('#mic-select option', (os) => os.map((o) => o.value));
    await a.page.selectOption('#mic-select', mics.at(-1));
    await assertReceiving(b, 1);
    assert.deepEqual(await a.page.evaluate(() => window.atome.errors), []);
    assert.equal((await server.health()).media.producers, 4, 'no new producer');
  } finally {
    await browser.close();
    server.stop();
  }
});
