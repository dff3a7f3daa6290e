// A real coturn (Debian's `coturn` package, installed here if missing and we are root) for the
// TURN tests: started by the test on one address of a test namespace's link (coturn refuses
// loopback peers), with the TURN REST API secret, its own configuration, database, log and pid
// file in a temporary directory (0700), and stopped by `stop()` or when the test process exits.
// Its address is a namespace link's, unique to this test process, so two test runs never share
// ports.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TURNSERVER = '/usr/bin/turnserver';
const live = new Set();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

/** Why coturn cannot run here (one line), or false. Installs the package when it can. */
export function coturnUnavailable() {
  if (fs.existsSync(TURNSERVER)) return false;
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version']).status !== 0) {
    return 'coturn is not installed (apt-get install coturn)';
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = spawnSync('apt-get', ['install', '-y', '-qq', 'coturn'], { encoding: 'utf8', env });
  if (r.status !== 0 || !fs.existsSync(TURNSERVER)) return `apt-get install coturn failed: ${(r.stderr || '').trim().split('\n').pop()}`;
  return false;
}

/** The TURN REST API credential (what the server computes; here to forge an expired one). */
export function turnCredential(secret, username) {
  return crypto.createHmac('sha1', secret).update(username).digest('base64');
}

/** One STUN binding request to ip:port over UDP: true if a binding success came back. */
function stunBinding(ip, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const id = crypto.randomBytes(12);
    const req = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), id]);
    const done = (ok) => { clearTimeout(timer); s.close(); resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.on('message', (m) => done(m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(id)));
    s.on('error', () => done(false));
    s.send(req, port, ip);
  });
}

/**
 * coturn listening on `ip` (UDP and TCP, one port) and relaying from `ip`, with `secret`
 * (use-auth-secret). Returns its `urls` (UDP and TCP), `stop()` and `log()`.
 */
export async function startCoturn({ ip, secret, realm = 'atome.test' }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `atome-coturn-${process.pid}-`));
  fs.chmodSync(dir, 0o700);
  // The address is this test's own: any port is free on it. Relay ports: a block of 200.
  const port = 20000 + crypto.randomInt(0, 10000);
  const minPort = 40000 + crypto.randomInt(0, 100) * 200;
  const conf = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(conf, [
    `listening-ip=${ip}`, `relay-ip=${ip}`, `listening-port=${port}`,
    `min-port=${minPort}`, `max-port=${minPort + 199}`,
    'use-auth-secret', `static-auth-secret=${secret}`, `realm=${realm}`,
    'fingerprint', 'no-cli', 'no-tls', 'no-dtls', 'no-multicast-peers', 'no-rfc5780',
    'no-software-attribute', `userdb=${path.join(dir, 'turndb')}`,
    `log-file=${path.join(dir, 'turn.log')}`, 'simple-log', 'no-stdout-log',
    `pidfile=${path.join(dir, 'turn.pid')}`, '',
  ].join('\n'), { mode: 0o600 });
  const proc = spawn(TURNSERVER, ['-c', conf], { stdio: 'ignore' });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  const log = () => {
    try { return fs.readFileSync(path.join(dir, 'turn.log'), 'utf8'); } catch { return ''; }
  };
  const stop = () => {
    proc.kill('SIGTERM');
    live.delete(proc);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const t0 = Date.now();
  while (!(await stunBinding(ip, port))) {
    if (proc.exitCode !== null || Date.now() - t0 > 10000) {
      const tail = log().split('\n').slice(-15).join('\n');
      stop();
      throw new Error(`coturn did not answer on ${ip}:${port} (exit ${proc.exitCode}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    ip, port, realm,
    urls: [`turn:${ip}:${port}?transport=udp`, `turn:${ip}:${port}?transport=tcp`],
    log,
    stop,
  };
}
