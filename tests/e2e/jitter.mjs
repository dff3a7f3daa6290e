// Jitter for the network tests, in user space (the kernel here has no netem): a UDP relay that
// sits where the client sends its media and holds every datagram, both ways, for a random time
// before passing it on. Each datagram draws its own delay, so packets get reordered as on a real
// path with jitter. The relay acts as a NAT would: one upstream socket per client address.
import dgram from 'node:dgram';

/**
 * Listens on `listenIp` at each of `ports` and forwards to `targetIp` at the same port; every
 * datagram waits `delayMs` ± `jitterMs` (uniform) each way. Returns `stats()` and `close()`.
 */
export async function startJitterRelay({ listenIp, targetIp, ports, delayMs = 40, jitterMs = 30 }) {
  const sockets = [];
  const stats = { up: 0, down: 0, delays: 0, delaySum: 0, reordered: 0 };
  const hold = (fn) => {
    const d = delayMs - jitterMs + Math.random() * 2 * jitterMs;
    stats.delays += 1;
    stats.delaySum += d;
    setTimeout(fn, d);
  };
  // A datagram still held when the relay closes is dropped.
  const send = (socket, msg, port, ip) => {
    try { socket.send(msg, port, ip); } catch { /* closed */ }
  };
  const bind = (socket, port, ip) => new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, ip, () => { socket.off('error', reject); resolve(); });
  });
  for (const port of ports) {
    const front = dgram.createSocket('udp4');
    sockets.push(front);
    await bind(front, port, listenIp);
    const upstream = new Map(); // "client ip:port" -> socket towards the target
    const lastSeq = new Map(); // per direction and source: arrival order, to count reordering
    const order = (key) => {
      const n = (lastSeq.get(key) ?? 0) + 1;
      lastSeq.set(key, n);
      return n;
    };
    const delivered = new Map();
    const deliver = (key, n) => {
      if (n < (delivered.get(key) ?? 0)) stats.reordered += 1;
      else delivered.set(key, n);
    };
    front.on('error', () => {});
    front.on('message', (msg, from) => {
      const key = `${from.address}:${from.port}`;
      let up = upstream.get(key);
      if (!up) {
        up = dgram.createSocket('udp4');
        up.on('error', () => {});
        upstream.set(key, up);
        sockets.push(up);
        up.bind(0, targetIp);
        up.on('message', (back) => {
          stats.down += 1;
          const n = order(`down ${key}`);
          hold(() => { deliver(`down ${key}`, n); send(front, back, from.port, from.address); });
        });
      }
      stats.up += 1;
      const n = order(`up ${key}`);
      hold(() => { deliver(`up ${key}`, n); send(up, msg, port, targetIp); });
    });
  }
  return {
    stats: () => ({ ...stats, meanDelayMs: stats.delays ? stats.delaySum / stats.delays : 0 }),
    close: () => { for (const s of sockets) { try { s.close(); } catch { /* closed */ } } },
  };
}
