// Helpers for the end-to-end tests: the real server binary, Debian's Chromium through
// playwright-core with fake camera and microphone, and users driven through the UI only.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
const require = createRequire(path.join(repo, 'web/package.json'));
const { chromium } = require('playwright-core');

export const artifacts = path.join(repo, 'target/e2e-artifacts');
const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/atome-target');
const binary = process.env.ATOME_BIN || path.join(target, 'debug/atome');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 2xx (10 s at most; the caller's next request says if it never did). */
export async function waitUntilUp(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not up yet */ }
    await sleep(100);
  }
}

/**
 * The server on loopback, or on `ip` (HTTP and media: the host end of a test namespace's veth,
 * see netns.mjs), announcing that address. `rtcIp` moves the media elsewhere (announcing
 * `announcedIp`, a relay's address); `args` are more flags.
 */
export async function startServer({ ip = '127.0.0.1', rtcIp = ip, announcedIp, args = [], port, dataDir } = {}) {
  port ??= await freePort();
  dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'atome-e2e-'));
  const log = fs.openSync(path.join(dataDir, 'server.log'), 'a');
  const proc = spawn(binary, [
    '--listen', `${ip}:${port}`, '--data-dir', dataDir, '--rtc-port', '0', '--workers', '2',
    '--sms-sender', 'file', '--web-dir', path.join(repo, 'web/dist'), '--rtc-listen-ip', rtcIp,
    ...(announcedIp ? ['--rtc-announced-ip', announcedIp] : []),
    ...(ip === '127.0.0.1' ? [] : ['--insecure-http']),
    ...args,
  ], { stdio: ['ignore', log, log] });
  const base = `http://${ip}:${port}`;
  await waitUntilUp(`${base}/health`);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  return {
    base,
    port,
    dataDir,
    health: async () => (await fetch(`${base}/health`)).json(),
    /** The media workers' ports (UDP, and TCP for ICE-TCP). */
    mediaPorts: async () => {
      const h = await (await fetch(`${base}/health`)).json();
      return h.media_workers.map((w) => Number(w.addr.split(':').pop()));
    },
    log: () => fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8'),
    stop: () => proc.kill('SIGTERM'),
    /** Killed at once (as by a crash or `kill -9`), resolved once the process is gone. */
    kill: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A camera picture that does not compress to nothing (noise over a moving test pattern), so the
 * sender's bitrate follows its bandwidth estimate instead of the content: Chrome's built-in fake
 * camera is so simple that its encoder never needs 500 kbit/s.
 */
function fakeCameraFile() {
  const file = path.join(os.tmpdir(), 'atome-e2e-camera-640x480.y4m');
  if (!fs.existsSync(file)) {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i',
      'testsrc2=size=640x480:rate=30,noise=alls=40:allf=t', '-t', '3', '-pix_fmt', 'yuv420p', '-y', `${file}.tmp.y4m`]);
    if (r.status !== 0) throw new Error(`ffmpeg could not make the fake camera file: ${r.stderr}`);
    fs.renameSync(`${file}.tmp.y4m`, file);
  }
  return file;
}

/** A 1280x720 fake camera (1 s looped; at 640x480 libwebrtc sends only two of the three simulcast streams). */
export function camera720() {
  const file = path.join(os.tmpdir(), 'atome-e2e-camera-1280x720.y4m');
  if (!fs.existsSync(file)) {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i',
      'testsrc2=size=1280x720:rate=30,noise=alls=30:allf=t', '-t', '1', '-pix_fmt', 'yuv420p', '-y', `${file}.tmp.y4m`]);
    if (r.status !== 0) throw new Error(`ffmpeg could not make the 720p camera file: ${r.stderr}`);
    fs.renameSync(`${file}.tmp.y4m`, file);
  }
  return file;
}

/**
 * Chromium, inside the namespace `netns` (netns.mjs) if given; then the page is on the server's
 * non-loopback address, which Chromium must treat as secure (getUserMedia needs it).
 */
export async function launchBrowser({ netns, server, args = [], fakeDevices } = {}) {
  return chromium.launch({
    executablePath: netns ? netns.wrapper('/usr/bin/chromium') : '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      fakeDevices ? `--use-fake-device-for-media-stream=${fakeDevices}` : '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Chrome's own fake cameras (each device its own picture) when `fakeDevices` is given.
      ...(fakeDevices ? [] : [`--use-file-for-fake-video-capture=${fakeCameraFile()}`]),
      ...(server ? [`--unsafely-treat-insecure-origin-as-secure=${server.base}`] : []),
      ...args,
    ],
  });
}

async function readCode(dataDir, phone) {
  for (let i = 0; i < 50; i++) {
    const file = path.join(dataDir, 'sms_outbox.jsonl');
    if (fs.existsSync(file)) {
      // Only complete lines: the server may have created the file and not yet written its line.
      const text = fs.readFileSync(file, 'utf8');
      const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const mine = lines.filter((l) => l.phone_e164 === phone);
      if (mine.length) return mine.at(-1).code;
    }
    await sleep(100);
  }
  throw new Error(`no code for ${phone}`);
}

/** A user in their own browser context, logged in through the one-time-code UI. */
export async function openUser(browser, server, phone, name, query = '', { init } = {}) {
  const context = await browser.newContext();
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${new Date().toISOString().slice(11, 23)} ${m.type()} ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror ${e}`));
  await page.goto(`${server.base}/${query}`);
  await page.fill('#phone', phone);
  await page.fill('#name', name);
  await page.click('#send-code');
  const code = await readCode(server.dataDir, phone);
  await page.fill('#code', code);
  await page.click('#verify');
  await page.waitForSelector('#app:not([hidden])');
  return { page, context, phone, name, logs };
}

/**
 * Lays the user's tiles out `px` CSS pixels wide (default: one tile per row, about 1250 px in the
 * default viewport): the small-tile rule (web/src/layers.js) then asks for the layer that width
 * needs, the top one for wide tiles.
 */
export async function tileWidth(user, px) {
  await user.page.evaluate((w) => {
    let style = document.getElementById('test-tiles');
    if (!style) {
      style = document.createElement('style');
      style.id = 'test-tiles';
      document.head.append(style);
    }
    style.textContent = `#videos { grid-template-columns: ${w ? `repeat(auto-fill, ${w}px)` : '1fr'} !important; }`;
  }, px);
}

/** Inbound and outbound RTP counters of the user's transports (RTCPeerConnection.getStats). */
export async function rtpStats(user) {
  return user.page.evaluate(async () => {
    const out = { inbound: [], outbound: [] };
    const collect = async (t) => {
      if (!t) return;
      (await t.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') out.inbound.push({ kind: s.kind, packets: s.packetsReceived || 0, frames: s.framesDecoded || 0, ssrc: s.ssrc });
        if (s.type === 'outbound-rtp') out.outbound.push({ kind: s.kind, bytes: s.bytesSent || 0, ssrc: s.ssrc, limit: s.qualityLimitationReason, target: s.targetBitrate, width: s.frameWidth });
        if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) out.available = s.availableOutgoingBitrate;
      });
    };
    await collect(window.atome.recvTransport);
    await collect(window.atome.sendTransport);
    // Only the streams of live consumers (closed ones may linger in the stats).
    const live = new Set([...window.atome.consumers.values()].map((c) => c.consumer.rtpParameters.encodings[0].ssrc));
    out.inbound = out.inbound.filter((s) => live.has(s.ssrc));
    const videos = [...document.querySelectorAll('[data-tile^="peer-"] video')];
    out.remoteWidths = videos.map((v) => v.videoWidth);
    out.consumers = [...window.atome.consumers.values()].map((c) => c.consumer.kind);
    out.errors = window.atome.errors;
    return out;
  });
}

export const sum = (list, kind, field) => list.filter((s) => s.kind === kind).reduce((a, s) => a + s[field], 0);

/**
 * The streams a Chromium publisher sends with three simulcast encodings: its encoders ramp up with
 * its CPU and its uplink estimate, so `read()` (a list, one entry per stream sent) is read every
 * 500 ms until it holds three or `timeoutMs` passed. Returns the last reading.
 */
export async function simulcastStreams(read, timeoutMs = 20000) {
  const t0 = Date.now();
  let sent = await read();
  while (sent.length < 3 && Date.now() - t0 < timeoutMs) {
    await sleep(500);
    sent = await read();
  }
  return sent;
}

/** On a failure: the last 15 lines each page logged, for the users opened so far (nulls skipped). */
export function printPageLogs(users) {
  for (const u of users.filter(Boolean)) console.log(`# ${u.name}'s page:\n${u.logs.slice(-15).map((l) => `#   ${l}`).join('\n')}`);
}

export async function waitFor(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The user is in the call: published, and consuming `n` producers. */
export async function inCall(user, n, timeout = 30000) {
  await user.page.waitForFunction((k) => window.atome.published && window.atome.consumers.size >= k, n, { timeout });
}

export async function screenshot(user, name) {
  fs.mkdirSync(artifacts, { recursive: true });
  await user.page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/** A asks B to connect through the UI; B accepts. */
export async function connect(a, b) {
  await a.page.fill('#contact-phone', b.phone);
  await a.page.click('#add-contact');
  await b.page.waitForSelector('#incoming button.accepted', { timeout: 10000 });
  await b.page.click('#incoming button.accepted');
  await a.page.waitForSelector(`#connections input[data-phone="${b.phone}"]`, { timeout: 10000 });
  await b.page.waitForSelector(`#connections input[data-phone="${a.phone}"]`, { timeout: 10000 });
}

/** The owner creates a room and invites `guests`; returns the room id. */
export async function roomWith(owner, guests) {
  const before = await owner.page.$$eval('#room-list option', (o) => o.length);
  await owner.page.click('#create-room');
  await owner.page.waitForFunction((n) => document.querySelectorAll('#room-list option').length > n
    && document.querySelector('#info').textContent.startsWith('Room created'), before);
  const roomId = await owner.page.$eval('#room-list', (s) => s.value);
  for (const g of guests) await owner.page.check(`#connections input[data-phone="${g.phone}"]`);
  await owner.page.click('#invite');
  await owner.page.waitForFunction(() => document.querySelector('#info').textContent.startsWith('Invited'));
  for (const g of guests) {
    await g.page.waitForSelector(`#room-list option[value="${roomId}"]`, { state: 'attached', timeout: 10000 });
    await g.page.selectOption('#room-list', roomId);
  }
  return roomId;
}

export async function joinAll(users, peers) {
  for (const u of users) await u.page.click('#join');
  for (const u of users) {
    await u.page.waitForFunction((n) => window.atome.published && window.atome.consumers.size >= n, peers * 2, { timeout: 30000 });
  }
}

/** Over `seconds`, every remote video decodes more frames and every remote audio gets packets. */
export async function assertReceiving(user, expectedPeers, seconds = 4) {
  const first = await rtpStats(user);
  await sleep(seconds * 1000);
  const last = await rtpStats(user);
  assert.equal(last.consumers.filter((k) => k === 'video').length, expectedPeers, `${user.name} video consumers`);
  assert.equal(last.consumers.filter((k) => k === 'audio').length, expectedPeers, `${user.name} audio consumers`);
  for (const kind of ['video', 'audio']) {
    assert.equal(last.inbound.filter((x) => x.kind === kind).length, expectedPeers, `${user.name}: ${kind} streams received`);
  }
  for (const s of last.inbound.filter((x) => x.kind === 'video')) {
    const before = first.inbound.find((x) => x.ssrc === s.ssrc)?.frames ?? 0;
    assert.ok(s.frames > before + 10, `${user.name}: video ${s.ssrc} frames ${before} -> ${s.frames}`);
  }
  for (const s of last.inbound.filter((x) => x.kind === 'audio')) {
    const before = first.inbound.find((x) => x.ssrc === s.ssrc)?.packets ?? 0;
    assert.ok(s.packets > before + 50, `${user.name}: audio ${s.ssrc} packets ${before} -> ${s.packets}`);
  }
  assert.equal(last.remoteWidths.length, expectedPeers);
  assert.ok(last.remoteWidths.every((w) => w > 0), `${user.name}: remote video widths ${last.remoteWidths}`);
}

/** The selected candidate pair of each transport: protocol, addresses, local candidate type. */
export async function selectedPairs(user) {
  return user.page.evaluate(async () => {
    const out = [];
    for (const t of [window.atome.sendTransport, window.atome.recvTransport]) {
      if (!t) continue;
      const stats = await t.getStats();
      const all = new Map();
      stats.forEach((s) => all.set(s.id, s));
      const transport = [...all.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
      const pair = transport && all.get(transport.selectedCandidatePairId);
      if (!pair) { out.push(null); continue; }
      const local = all.get(pair.localCandidateId);
      const remote = all.get(pair.remoteCandidateId);
      out.push({ protocol: local.protocol, type: local.candidateType, local: `${local.address}:${local.port}`, remote: `${remote.address}:${remote.port}/${remote.protocol}` });
    }
    return out;
  });
}

/** Both transports' selected pairs have `field` = `value` (e.g. protocol tcp, type relay). */
export async function assertPairs(user, field, value) {
  const pairs = await selectedPairs(user);
  console.log(`${user.name}: selected pairs ${JSON.stringify(pairs)}`);
  assert.equal(pairs.length, 2);
  for (const p of pairs) assert.equal(p?.[field], value, `${user.name}: selected pair ${JSON.stringify(p)}`);
}

export const videoFrames = async (user) => (await rtpStats(user)).inbound.filter((s) => s.kind === 'video').reduce((a, s) => a + s.frames, 0);

/** Joins both users and returns the milliseconds until each decodes the other's video. */
export async function joinTimed(users) {
  const t0 = Date.now();
  await joinAll(users, 1);
  const times = [];
  for (const u of users) {
    await waitFor(`${u.name} decodes video`, async () => (await videoFrames(u)) > 0, 30000);
    times.push(Date.now() - t0);
  }
  return times;
}
