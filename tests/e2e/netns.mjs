// Network namespaces for the browser tests: each browser runs in its own namespace behind a veth
// pair to this machine, the server listens on the host end. Addresses come from 198.18.0.0/15
// only (the benchmarking range) and traffic goes only to those namespaces. Everything made here
// (namespace, veth pair and its qdisc, nft table, wrapper scripts) carries this process's pid:
// `createNetns` first removes what a dead test process left behind, and `destroy` (also run on
// exit) removes ours.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'atome-';

function run(cmd, args, { check = true, input } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (check && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error || '').toString().trim()}`);
  return r;
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

/** Why the namespace tests cannot run here (a one-line reason), or false. */
export function netnsUnavailable() {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth, nftables)';
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.status !== 0) return `ip netns fails: ${(ip.stderr || ip.error || '').toString().trim()}`;
  if (spawnSync('nft', ['--version']).status !== 0) return 'nft is not installed (apt-get install nftables)';
  return false;
}

/** Removes namespaces and nft tables of test processes that are gone (a crashed earlier run). */
function sweep() {
  const names = run('ip', ['netns', 'list'], { check: false }).stdout.split('\n').map((l) => l.split(' ')[0]);
  for (const n of names) {
    const m = n.match(/^atome-(\d+)-[0-9a-f]+$/);
    if (m && !alive(Number(m[1]))) run('ip', ['netns', 'del', n], { check: false });
  }
  const tables = run('nft', ['list', 'tables'], { check: false }).stdout.split('\n');
  for (const t of tables) {
    const m = t.match(/^table inet (atome_(\d+)_[0-9a-f]+)$/);
    if (m && !alive(Number(m[2]))) run('nft', ['delete', 'table', 'inet', m[1]], { check: false });
  }
}

/** A free /30 in 198.18.0.0/15 (none of this machine's addresses in it). */
function freeSubnet() {
  const used = run('ip', ['-4', '-o', 'addr', 'show'], { check: false }).stdout;
  for (;;) {
    const n = crypto.randomInt(0, 1 << 15); // 2^15 blocks of 4 addresses
    const base = (198 << 24) + (18 << 16) + n * 4;
    const ip = (k) => [24, 16, 8, 0].map((s) => ((base + k) >>> s) & 255).join('.');
    if (!used.includes(` ${ip(1)}/`) && !used.includes(` ${ip(2)}/`)) return { hostIp: ip(1), nsIp: ip(2) };
  }
}

const live = new Set();
process.on('exit', () => { for (const ns of live) ns.destroy(); });
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

/**
 * A namespace `atome-<pid>-<hex>` with a veth pair: the host end has `hostIp`/30, the namespace
 * end `nsIp`/30 and a default route through the host end. `wrapper(binary)` is an executable that
 * runs `binary` inside the namespace (for playwright's executablePath).
 */
export function createNetns() {
  sweep();
  const id = crypto.randomBytes(3).toString('hex');
  const name = `${PREFIX}${process.pid}-${id}`;
  const hostIf = `at${id}h`;
  const nsIf = `at${id}n`;
  const table = `atome_${process.pid}_${id}`;
  const { hostIp, nsIp } = freeSubnet();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  // Adds rules to this namespace's table: `chain` is input (from the namespace) or output (to it).
  const nft = (chain, rules) => run('nft', ['-f', '-'], {
    input: `table inet ${table} {\n chain ${chain} {\n  type filter hook ${chain} priority 0; policy accept;\n`
      + `${rules.map((r) => `  ${r}\n`).join('')} }\n}\n`,
  });
  const ns = {
    name, hostIf, nsIf, hostIp, nsIp,
    exec: (args, opts) => run('ip', ['netns', 'exec', name, ...args], opts),
    /** Drops UDP from the namespace to the host end (the server's media port included). */
    dropUdp() {
      nft('input', [`iifname "${hostIf}" ip daddr ${hostIp} meta l4proto udp drop`]);
    },
    /** Drops UDP and TCP from the namespace to these ports of the host end (the media ports). */
    dropPorts(ports) {
      const set = `{ ${ports.join(', ')} }`;
      nft('input', [`iifname "${hostIf}" ip daddr ${hostIp} udp dport ${set} counter drop`,
        `iifname "${hostIf}" ip daddr ${hostIp} tcp dport ${set} counter drop`]);
    },
    /** Drops `percent` % of UDP packets on the link at random, both ways (counted). */
    loseUdp(percent) {
      nft('input', [`iifname "${hostIf}" meta l4proto udp numgen random mod 100 < ${percent} counter drop`]);
      nft('output', [`oifname "${hostIf}" meta l4proto udp numgen random mod 100 < ${percent} counter drop`]);
    },
    /** Drops `percent` % of the UDP packets the namespace sends (the upstream only), counted. */
    loseUdpUp(percent) {
      nft('input', [`iifname "${hostIf}" meta l4proto udp numgen random mod 100 < ${percent} counter drop`]);
    },
    /** Packets the counted rules dropped so far, by chain. */
    dropped() {
      const out = run('nft', ['list', 'table', 'inet', table]).stdout;
      const counts = { input: 0, output: 0 };
      let chain = null;
      for (const line of out.split('\n')) {
        const c = line.match(/^\s*chain (\w+)/);
        if (c) chain = c[1];
        const m = line.match(/counter packets (\d+)/);
        if (m && chain in counts) counts[chain] += Number(m[1]);
      }
      return counts;
    },
    /**
     * Limits what reaches the namespace (the egress of the host end) to `rate` (tc's units, e.g.
     * `300kbit`): a token bucket filter, 16 kbit of burst, packets that would wait more than
     * 400 ms dropped. Gone with the veth pair (destroy), or by unlimit().
     */
    limitDown(rate) {
      run('tc', ['qdisc', 'replace', 'dev', hostIf, 'root', 'tbf', 'rate', rate, 'burst', '16kbit', 'latency', '400ms']);
    },
    /** Lifts limitDown's limit. */
    unlimit() {
      run('tc', ['qdisc', 'del', 'dev', hostIf, 'root']);
    },
    /** The downlink limit's counters so far ({sent bytes, packets, dropped, overlimits}), or null without one. */
    limitStats() {
      const out = run('tc', ['-s', 'qdisc', 'show', 'dev', hostIf]).stdout;
      if (!/qdisc tbf/.test(out)) return null;
      const m = out.match(/Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/);
      return m && { bytes: Number(m[1]), packets: Number(m[2]), dropped: Number(m[3]), overlimits: Number(m[4]) };
    },
    /** Moves the namespace end to a new address in another /30 (the client's network changes). */
    moveAddress() {
      const next = freeSubnet();
      run('ip', ['addr', 'add', `${next.hostIp}/30`, 'dev', hostIf]);
      ns.exec(['ip', 'addr', 'add', `${next.nsIp}/30`, 'dev', nsIf]);
      ns.exec(['ip', 'route', 'replace', 'default', 'via', next.hostIp, 'dev', nsIf, 'src', next.nsIp]);
      ns.exec(['ip', 'addr', 'del', `${ns.nsIp}/30`, 'dev', nsIf]);
      ns.exec(['ip', 'route', 'replace', 'default', 'via', next.hostIp, 'dev', nsIf]);
      ns.oldNsIp = ns.nsIp;
      ns.nsIp = next.nsIp;
      return next.nsIp;
    },
    wrapper(binary) {
      const file = path.join(dir, path.basename(binary));
      fs.writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${name} ${binary} "$@"\n`, { mode: 0o755 });
      return file;
    },
    destroy() {
      if (!live.delete(ns)) return;
      run('nft', ['delete', 'table', 'inet', table], { check: false });
      run('ip', ['netns', 'del', name], { check: false }); // takes the veth pair (and limitDown's qdisc) with it
      run('ip', ['link', 'del', hostIf], { check: false });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(ns);
  try {
    run('ip', ['netns', 'add', name]);
    run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', name]);
    run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    run('ip', ['link', 'set', hostIf, 'up']);
    ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    ns.exec(['ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf]);
    ns.exec(['ip', 'link', 'set', nsIf, 'up']);
    // Other namespaces' host ends are addresses of this machine: reachable through ours.
    ns.exec(['ip', 'route', 'add', 'default', 'via', hostIp, 'dev', nsIf]);
  } catch (e) {
    ns.destroy();
    throw e;
  }
  return ns;
}
