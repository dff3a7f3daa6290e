// The dashboard's panels over a real test call, as a picture: the server (built), Debian's
// Prometheus scraping it every second, two Chromium users in a call for a minute (the second
// half with 5% of Alice's upstream dropped when run as root with `ip netns` and `nft`), then
// every panel's query over the call from Prometheus's query API, plotted with matplotlib
// (scripts/plot_panels.py, in a virtualenv under ~/.cache/atome-plot).
//   node scripts/metrics-picture.mjs [out.png]      (default docs/screenshots/metrics-call.png)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  connect, freePort, joinTimed, launchBrowser, openUser, repo, roomWith, sleep, startServer, waitUntilUp,
} from '../tests/e2e/lib.mjs';
import { createNetns, netnsUnavailable } from '../tests/e2e/netns.mjs';

const out = path.resolve(process.argv[2] || path.join(repo, 'docs/screenshots/metrics-call.png'));
const CALL_S = Number(process.env.CALL_SECONDS || 60);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atome-picture-'));
const useNetns = !netnsUnavailable();
const ns = useNetns ? createNetns() : null;
let server;
let prometheus;
let browser;
try {
  server = await startServer(ns ? { ip: ns.hostIp } : {});
  const promPort = await freePort();
  const target = server.base.replace(/^http:\/\//, '');
  fs.writeFileSync(path.join(tmp, 'prometheus.yml'), [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s', 'scrape_configs:', '  - job_name: atome',
    `    static_configs: [{targets: ["${target}"]}]`, '',
  ].join('\n'));
  prometheus = spawn('prometheus', [`--config.file=${path.join(tmp, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(tmp, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: 'ignore' });
  await waitUntilUp(`http://127.0.0.1:${promPort}/-/ready`);
  browser = await launchBrowser(ns ? { netns: ns, server } : {});
  const a = await openUser(browser, server, '+33611111111', 'Alice');
  const b = await openUser(browser, server, '+33622222222', 'Bob');
  await connect(a, b);
  await roomWith(a, [b]);
  const start = Date.now() / 1000;
  await joinTimed([a, b]);
  console.log(`call for ${CALL_S} s${ns ? `; 5% of Alice's upstream dropped from ${CALL_S / 2} s` : ' (no loss: not root or no ip netns)'}`);
  await sleep((CALL_S / 2) * 1000);
  ns?.loseUdpUp(5);
  await sleep((CALL_S / 2) * 1000);
  const end = Date.now() / 1000;
  const ids = { [await a.page.evaluate(() => window.atome.user.user_id)]: 'Alice', [await b.page.evaluate(() => window.atome.user.user_id)]: 'Bob' };
  // Every panel's queries over the call.
  const dashboard = JSON.parse(fs.readFileSync(path.join(repo, 'deploy/grafana/atome.json'), 'utf8'));
  const subst = { __rate_interval: '5s', __interval: '2s', __range: '1m', instance: '.*', peer: '.*' };
  const expand = (e) => e.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, x, y) => subst[x || y] ?? '.*');
  const panels = [];
  const walk = (ps) => ps.forEach((p) => { if (p.targets?.length) panels.push(p); walk(p.panels || []); });
  walk(dashboard.panels);
  const data = [];
  for (const p of panels) {
    const series = [];
    for (const t of p.targets) {
      const q = new URLSearchParams({ query: expand(t.expr), start: String(start), end: String(end), step: '2' });
      const r = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/query_range?${q}`)).json();
      for (const s of r.data?.result || []) {
        const labels = Object.entries(s.metric).filter(([k]) => !['__name__', 'job', 'instance'].includes(k))
          .map(([k, v]) => `${k}=${k === 'peer' ? (ids[v] || v) : v}`).join(',');
        series.push({ name: `${t.legendFormat && !t.legendFormat.includes('{{') ? t.legendFormat : labels || t.refId}`, points: s.values.map(([ts, v]) => [ts - start, Number(v)]) });
      }
    }
    data.push({ title: p.title, unit: p.fieldConfig?.defaults?.unit || '', series });
  }
  fs.writeFileSync(path.join(tmp, 'panels.json'), JSON.stringify({ lossFrom: ns ? CALL_S / 2 : null, panels: data }));
  // matplotlib from PyPI, in a virtualenv of its own.
  const venv = path.join(os.homedir(), '.cache/atome-plot');
  const py = path.join(venv, 'bin/python');
  if (!fs.existsSync(py)) {
    spawnSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    spawnSync(py, ['-m', 'pip', 'install', '-q', 'matplotlib==3.9.2'], { stdio: 'inherit' });
  }
  const r = spawnSync(py, [path.join(repo, 'scripts/plot_panels.py'), path.join(tmp, 'panels.json'), out], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('plotting failed');
  console.log(`wrote ${out}`);
} finally {
  await browser?.close();
  prometheus?.kill();
  server?.stop();
  ns?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}
