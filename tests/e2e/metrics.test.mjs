// Call quality on /metrics during real Chromium calls: per-peer bitrates against the browser's own
// getStats, RTT and loss on loopback; then 5% of a publisher's upstream UDP dropped in a network
// namespace (nftables), the upstream loss the server measures before NACK recovery, and the loss
// alert of deploy/prometheus/alerts.yml run by promtool on the samples recorded here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, joinTimed, launchBrowser, openUser, repo, roomWith, sleep, startServer } from './lib.mjs';
import { createNetns, netnsUnavailable } from './netns.mjs';

const A = '+33611111111';
const B = '+33622222222';
const noNetns = netnsUnavailable();

/** The value of each series of `name` on the page, by its label set text. */
function series(page, name) {
  const out = {};
  for (const line of page.split('\n')) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? (\S+)$/);
    if (m && m[1] === name) out[m[2] || ''] = Number(m[3]);
  }
  return out;
}
const scrape = async (server) => (await fetch(`${server.base}/metrics`)).text();
const userId = (u) => u.page.evaluate(() => window.atome.user.user_id);

/** Bytes on the selected candidate pair of each transport, as the browser counts them. */
const pairBytes = (u) => u.page.evaluate(async () => {
  const out = {};
  for (const [name, t] of [['send', window.atome.sendTransport], ['recv', window.atome.recvTransport]]) {
    (await t.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out[name] = { sent: s.bytesSent, received: s.bytesReceived };
    });
  }
  return out;
});

test('per-peer bitrate, RTT and loss on /metrics match the browsers', { timeout: 120000 }, async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    await joinTimed([a, b]);
    await sleep(4000); // past the first seconds of bandwidth ramp-up
    const [ida, idb] = [await userId(a), await userId(b)];
    // 5 s: the server's per-second figure sampled every second, the browser's bytes at both ends.
    const before = { a: await pairBytes(a), b: await pairBytes(b) };
    const t0 = Date.now();
    const samples = [];
    for (let i = 0; i < 5; i++) {
      await sleep(1000);
      samples.push(series(await scrape(server), 'atome_peer_bitrate_bps'));
    }
    const secs = (Date.now() - t0) / 1000;
    const after = { a: await pairBytes(a), b: await pairBytes(b) };
    const page = await scrape(server);
    for (const [u, id, key] of [[a, ida, 'a'], [b, idb, 'b']]) {
      const server = (dir) => samples.reduce((s, x) => s + (x[`{peer="${id}",direction="${dir}"}`] || 0), 0) / samples.length;
      // What the peer sends: on its send transport (plus its receive transport's RTCP).
      const sent = ((after[key].send.sent - before[key].send.sent) + (after[key].recv.sent - before[key].recv.sent)) * 8 / secs;
      const received = ((after[key].send.received - before[key].send.received) + (after[key].recv.received - before[key].recv.received)) * 8 / secs;
      const [sin, sout] = [server('in'), server('out')];
      console.log(`${u.name}: server in ${Math.round(sin / 1000)} kbit/s vs browser sent ${Math.round(sent / 1000)}; out ${Math.round(sout / 1000)} vs received ${Math.round(received / 1000)}`);
      assert.ok(Math.abs(sin - sent) <= 0.2 * sent, `${u.name}: in ${sin} vs ${sent}`);
      assert.ok(Math.abs(sout - received) <= 0.2 * received, `${u.name}: out ${sout} vs ${received}`);
      const rtt = series(page, 'atome_peer_rtt_seconds')[`{peer="${id}"}`];
      const lost = series(page, 'atome_peer_fraction_lost');
      console.log(`${u.name}: rtt ${rtt} s, loss up ${lost[`{peer="${id}",direction="up"}`]}, down ${lost[`{peer="${id}",direction="down"}`]}`);
      assert.ok(rtt >= 0 && rtt < 0.05, `${u.name}: rtt ${rtt}`);
      assert.equal(lost[`{peer="${id}",direction="up"}`], 0);
      assert.ok(lost[`{peer="${id}",direction="down"}`] < 0.01);
    }
  } finally {
    await browser.close();
    server.stop();
  }
});

test('5% of the upstream dropped: the server measures it, the loss alert fires on it', { timeout: 180000, skip: noNetns }, async (t) => {
  const ns = createNetns();
  let server;
  let browser;
  try {
    server = await startServer({ ip: ns.hostIp });
    ns.loseUdpUp(5);
    browser = await launchBrowser({ netns: ns, server });
    const a = await openUser(browser, server, A, 'Alice');
    const b = await openUser(browser, server, B, 'Bob');
    await connect(a, b);
    await roomWith(a, [b]);
    await joinTimed([a, b]);
    await sleep(3000);
    const id = await userId(a);
    const key = `{peer="${id}",direction="up"}`;
    const values = [];
    for (let i = 0; i < 20; i++) {
      await sleep(1000);
      const v = series(await scrape(server), 'atome_peer_fraction_lost')[key];
      if (v !== undefined) values.push(v);
    }
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    console.log(`upstream loss measured by the server, 20 samples 1 s apart: mean ${(mean * 100).toFixed(1)}% [${values.map((v) => (v * 100).toFixed(1)).join(' ')}], nft dropped ${JSON.stringify(ns.dropped())}`);
    assert.ok(values.length >= 15, `samples ${values.length}`);
    assert.ok(mean >= 0.03 && mean <= 0.07, `mean upstream loss ${mean}`);

    // The alert rule on these samples, 1 s apart as recorded (a 1 s scrape), the 20 repeated to
    // cover the rule's 2 minutes.
    const promtool = spawnSync('promtool', ['--version']);
    if (promtool.error) return t.skip('promtool not installed (apt-get install prometheus)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atome-alert-'));
    try {
      const rules = path.join(repo, 'deploy/prometheus/alerts.yml');
      const recorded = Array.from({ length: 200 }, (_, i) => values[i % values.length]).join(' ');
      fs.writeFileSync(path.join(dir, 'test.yml'), [
        'rule_files:', `  - ${rules}`, 'evaluation_interval: 5s', 'tests:', '  - interval: 1s', '    input_series:',
        `      - series: 'atome_peer_fraction_lost{job="atome",instance="test",peer="${id}",direction="up"}'`,
        `        values: '${recorded}'`,
        '    alert_rule_test:', '      - eval_time: 3m30s', '        alertname: AtomePeerPacketLossHigh', '        exp_alerts: []',
        '',
      ].join('\n'));
      const r = spawnSync('promtool', ['test', 'rules', path.join(dir, 'test.yml')], { encoding: 'utf8' });
      // exp_alerts is empty on purpose: promtool fails when the alert fires and lists it.
      const fired = r.status !== 0 && /AtomePeerPacketLossHigh/.test(r.stdout + r.stderr);
      console.log(`AtomePeerPacketLossHigh on the recorded samples: ${fired ? 'fires' : 'silent'}`);
      assert.ok(fired, `the loss alert stays silent on ${values}: ${r.stdout}${r.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await browser?.close();
    server?.stop();
    ns.destroy();
  }
});
