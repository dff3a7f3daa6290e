// Helpers for the end-to-end tests: the real server binary, Debian's Chromium through
// playwright-core with fake camera and microphone, and users driven through the UI only.
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

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * The real server binary on a free port with a fresh data directory (SMS codes go to
 * `<dataDir>/sms_outbox.jsonl`). `restart()` starts it again on the same port and data.
 */
export async function startServer({ devAuth = false } = {}) {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'atome-e2e-'));
  const base = `http://127.0.0.1:${port}`;
  const args = [
    '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--rtc-port', '0', '--workers', '2',
    '--sms-sender', 'file', '--web-dir', path.join(repo, 'web/dist'),
  ];
  if (devAuth) args.push('--dev-auth');
  let proc;
  const up = async () => {
    if (!fs.existsSync(binary)) throw new Error(`no server binary at ${binary}: run tests/e2e/run.sh (it builds it)`);
    const log = fs.openSync(path.join(dataDir, 'server.log'), 'a');
    proc = spawn(binary, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let exited = null;
    proc.once('exit', (code) => { exited = code; });
    for (let i = 0; i < 100; i++) {
      if (exited !== null) break;
      try {
        if ((await fetch(`${base}/health`)).ok) return;
      } catch { /* not up yet */ }
      await sleep(100);
    }
    const tail = fs.readFileSync(path.join(dataDir, 'server.log'), 'utf8').split('\n').slice(-20).join('\n');
    throw new Error(`the server did not start (exit ${exited}):\n${tail}`);
  };
  const down = async () => {
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([gone, sleep(5000)]);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  };
  await up();
  return {
    base,
    dataDir,
    health: async () => (await fetch(`${base}/health`)).json(),
    stop: down,
    restart: async () => { await down(); await up(); },
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
    if (r.error || r.status !== 0) {
      console.log('# no ffmpeg: Chromium\'s plain fake camera is used (the bitrate check may then fail)');
      return null;
    }
    fs.renameSync(`${file}.tmp.y4m`, file);
  }
  return file;
}

export async function launchBrowser() {
  const camera = fakeCameraFile();
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      ...(camera ? [`--use-file-for-fake-video-capture=${camera}`] : []),
    ],
  });
}

function codesFor(dataDir, phone) {
  const file = path.join(dataDir, 'sms_outbox.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .filter((l) => l.phone_e164 === phone).map((l) => l.code);
}

/** The code of the SMS sent to `phone` after the first `seen` ones (the file SMS sender). */
export async function readCode(dataDir, phone, seen = 0) {
  for (let i = 0; i < 50; i++) {
    const codes = codesFor(dataDir, phone);
    if (codes.length > seen) return codes.at(-1);
    await sleep(100);
  }
  throw new Error(`no SMS code for ${phone}`);
}

export const codeCount = (dataDir, phone) => codesFor(dataDir, phone).length;

/** A new browser context (one user) on the app's page; `init` runs in the page before the app. */
export async function openPage(browser, server, query = '', init = null) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()} ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror ${e}`));
  if (init) await page.addInitScript(init);
  await page.goto(`${server.base}/${query}`);
  return { page, context, logs };
}

/** The one-line message the user sees. */
export const message = (user) => user.page.textContent('#error');

/** Waits until the message line contains `text`. */
export async function waitMessage(user, text, timeout = 10000) {
  try {
    await user.page.waitForFunction((t) => document.querySelector('#error').textContent.includes(t), text, { timeout });
  } catch {
    throw new Error(`expected the message "${text}", saw "${await message(user)}"`);
  }
}

/** Logs in through the one-time-code UI: phone, name, "Send code", the code from the SMS file. */
export async function logIn(user, server, phone, name) {
  await user.page.fill('#phone', phone);
  await user.page.fill('#name', name);
  const seen = codeCount(server.dataDir, phone);
  await user.page.click('#send-code');
  const code = await readCode(server.dataDir, phone, seen);
  await user.page.fill('#code', code);
  await user.page.click('#verify');
  await user.page.waitForSelector('#app:not([hidden])');
  Object.assign(user, { phone, name });
  return user;
}

/** A user in their own browser context, logged in through the one-time-code UI. */
export async function openUser(browser, server, phone, name, query = '', init = null) {
  return logIn(await openPage(browser, server, query, init), server, phone, name);
}

/** A asks B to connect through the UI; B accepts. */
export async function connect(a, b) {
  await a.page.fill('#contact-phone', b.phone);
  await a.page.click('#add-contact');
  const row = `#incoming [data-testid="incoming-request"][data-phone="${a.phone}"]`;
  await b.page.waitForSelector(row, { timeout: 10000 });
  await b.page.click(`${row} [data-testid="accept-request"]`);
  await a.page.waitForSelector(`#connections input[data-phone="${b.phone}"]`, { timeout: 10000 });
  await b.page.waitForSelector(`#connections input[data-phone="${a.phone}"]`, { timeout: 10000 });
}

/** The owner creates a room and invites `guests`, who select it; returns the room id. */
export async function roomWith(owner, guests) {
  await owner.page.click('#create-room');
  const roomId = await waitFor('room created', () => owner.page.$eval('#room-list', (s) => s.value));
  if (!guests.length) return roomId;
  for (const g of guests) await owner.page.check(`#connections input[data-phone="${g.phone}"]`);
  await owner.page.click('#invite');
  await waitMessage(owner, `Invited ${guests.length}`);
  for (const g of guests) {
    await g.page.waitForSelector(`#room-list option[value="${roomId}"]`, { state: 'attached', timeout: 10000 });
    await g.page.selectOption('#room-list', roomId);
  }
  return roomId;
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

export async function screenshot(user, name) {
  fs.mkdirSync(artifacts, { recursive: true });
  await user.page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}
