// Jitter for the network tests, in user space (the kernel here has no netem): a UDP relay that
// sits where the client sends its media and holds every datagram, both ways, for a random time
// before passing it on. Each datagram draws its own delay; by default a datagram never overtakes
// the one before it (a router's queue: the delay varies, the order stays), with `reorder` each
// goes when its own delay is over, as netem's jitter does (most packets then arrive out of
// order). The relay acts as a NAT would: one upstream socket per client address.
import dgram from 'node:dgram';

/**
 * Listens on `listenIp` at each of `ports` and forwards to `targetIp` at the same port; every
 * datagram waits `delayMs` ± `jitterMs` (uniform) each way. Returns `stats()` and `close()`.
 */
export async function startJitterRelay({ listenIp, targetIp, ports, delayMs = 40, jitterMs = 30, reorder = false }) {
  const sockets = [];
  const stats = { up: 0, down: 0, delays: 0, delaySum: 0, reordered: 0 };
  const flows = new Map(); // flow -> its queue (datagrams in order, each with its time to go)
  const drain = (f) => {
    f.timer = setTimeout(() => {
      while (f.queue.length && f.queue[0].at <= performance.now() + 0.5) f.queue.shift().go();
      f.timer = f.queue.length ? drain(f) : null;
    }, Math.max(0, f.queue[0].at - performance.now()));
    return f.timer;
  };
  const hold = (flow, go) => {
    const now = performance.now();
    let at = now + delayMs - jitterMs + Math.random() * 2 * jitterMs;
    if (reorder) {
      setTimeout(go, at - now);
    } else {
      const f = flows.get(flow) ?? { queue: [], timer: null, last: 0 };
      flows.set(flow, f);
      at = Math.max(at, f.last);
      f.last = at;
      f.queue.push({ at, go });
      if (!f.timer) drain(f);
    }
    stats.delays += 1;
    stats.delaySum += at - now;
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
          hold(`down ${port} ${key}`, () => { deliver(`down ${key}`, n); send(front, back, from.port, from.address); });
        });
      }
      stats.up += 1;
      const n = order(`up ${key}`);
      hold(`up ${port} ${key}`, () => { deliver(`up ${key}`, n); send(up, msg, port, targetIp); });
    });
  }
  return {
    stats: () => ({ ...stats, meanDelayMs: stats.delays ? stats.delaySum / stats.delays : 0 }),
    close: () => {
      for (const f of flows.values()) clearTimeout(f.timer);
      for (const s of sockets) { try { s.close(); } catch { /* closed */ } }
    },
  };
}
