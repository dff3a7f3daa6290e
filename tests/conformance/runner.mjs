// Runs conformance cases (cases.mjs) against a server speaking docs/protocol.md, ours or the mediasoup
// reference, and returns each step's answer, normalized so that both servers' answers compare:
//   {ok: true, type, body}   accepted; body = the reply fields in KEEP (or the step's `keep`)
//   {ok: false, type, code, error}   refused ({type: "error"} or "authError")
//   {skipped: label}         not sent: the step it refers to was refused (or timed out)
// Raw steps also carry `raw`, the reply's exact text.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROME, labelOf } from './cases.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(repo, 'web/package.json'));
const WebSocket = require('ws');
const ortc = require('mediasoup-client/ortc');

const TIMEOUT_MS = 3000;
/** Reply fields recorded by default; the rest (peers, user objects, ...) is not ORTC. */
export const KEEP = {
  roomJoined: ['existingProducers'],
  transportCreated: ['direction'],
  transportConnected: ['transport_id'],
  produced: ['producer_id'],
  consumerCreated: ['consumerOptions'],
};
const NOTIFICATIONS = new Set(['newProducer', 'producerClosed', 'producerPaused', 'producerResumed', 'participantJoined', 'participantLeft']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** device.rtpCapabilities and device.sendRtpCapabilities of Chrome for `routerCaps`, as Device.load computes them. */
export function deviceCapabilities(routerCaps) {
  const router = structuredClone(routerCaps);
  ortc.validateAndNormalizeRtpCapabilities(router);
  const extended = () => {
    const native = structuredClone(CHROME);
    ortc.validateAndNormalizeRtpCapabilities(native);
    return ortc.getExtendedRtpCapabilities(native, router, false);
  };
  return { recvCaps: ortc.getRecvRtpCapabilities(extended()), sendCaps: ortc.getSendRtpCapabilities(extended()) };
}

async function http(base, method, route, token, body) {
  const r = await fetch(base + route, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** One signaling socket: every frame is kept, in order, until a step takes it. */
class Socket {
  static async open(url) {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new Socket(ws);
  }
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.closed = false;
    ws.on('message', (data) => {
      const raw = String(data);
      let msg = {};
      try { msg = JSON.parse(raw); } catch { /* kept raw */ }
      this.frames.push({ raw, msg });
    });
    ws.on('close', () => { this.closed = true; });
  }
  send(text) { if (!this.closed) this.ws.send(text); }
  /** The first frame matching `pred` (removed), or null when the socket closed or time ran out. */
  async take(pred, timeoutMs = TIMEOUT_MS) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) return { closed: true };
      if (Date.now() > end) return { timeout: true };
      await sleep(5);
    }
  }
  close() { this.ws.close(); }
}

// ---------- normalization ----------

const ID_KEYS = new Set(['id', 'producerId', 'producer_id', 'transport_id', 'consumer_id']);
const SSRC_MIN = 100000000;
const SSRC_MAX = 999999999;
const FINGERPRINT = /^[0-9A-F]{2}(:[0-9A-F]{2})+$/i;

/** Per case: ids become <id1>, <id2>... in order of appearance; user ids become <user A>. */
function normalizer(users, cnames) {
  const ids = new Map();
  const id = (v) => {
    if (!ids.has(v)) ids.set(v, `<id${ids.size + 1}>`);
    return ids.get(v);
  };
  const walk = (v, key, parent) => {
    if (Array.isArray(v)) {
      // Order carries no meaning in these lists: key them so a missing entry is named, not shifted.
      if (key === 'headerExtensions') return Object.fromEntries(v.map((e) => [`${e.kind ? `${e.kind} ` : ''}${e.uri}`, walk(e)]));
      if (key === 'rtcpFeedback') return Object.fromEntries(v.map((f) => [`${f.type}${f.parameter ? ` ${f.parameter}` : ''}`, true]));
      if (key === 'existingProducers') return Object.fromEntries(v.map((p) => [id(p.producer_id), walk(p)]));
      return v.map((x) => walk(x, undefined, key));
    }
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, k, key === undefined ? parent : key);
      if (key === undefined && parent === 'encodings') encoding(v, out);
      return out;
    }
    if (typeof v === 'string' && ID_KEYS.has(key)) return id(v);
    if (typeof v === 'string' && key === 'peer_user_id') return users.get(v) ?? '<unknown user>';
    if (typeof v === 'string' && (key === 'usernameFragment' || key === 'password') && v) return `<ice ${key}>`;
    if (key === 'port' && Number.isInteger(v) && v > 0 && v < 65536) return '<port>';
    if (key === 'priority' && Number.isInteger(v)) return '<priority>';
    if (key === 'foundation' && typeof v === 'string') return '<foundation>';
    if (key === 'value' && parent === 'fingerprints' && FINGERPRINT.test(v)) return '<fingerprint>';
    if (key === 'cname' && typeof v === 'string' && !cnames.has(v)) return '<generated cname>';
    return v;
  };
  /** A consumer's SSRC is random in mediasoup's range; its RTX SSRC is the next one. */
  const encoding = (raw, out) => {
    if (Number.isInteger(raw.ssrc) && raw.ssrc >= SSRC_MIN && raw.ssrc <= SSRC_MAX) out.ssrc = '<ssrc>';
    if (raw.rtx && raw.rtx.ssrc === raw.ssrc + 1) out.rtx = { ...out.rtx, ssrc: '<ssrc + 1>' };
  };
  return (v) => walk(v);
}

// ---------- running ----------

class Skip extends Error {
  constructor(label) { super(`skipped: ${label}`); this.label = label; }
}

function lookup(ref, scope, replies) {
  const [name, ...rest] = ref.split('.');
  if (name in scope) return scope[name];
  const reply = replies[name];
  if (!reply) throw new Skip(name);
  return rest.reduce((v, k) => v?.[k], reply);
}

function resolve(v, scope, replies) {
  if (typeof v === 'string' && v.startsWith('$')) return lookup(v.slice(1), scope, replies);
  if (Array.isArray(v)) return v.map((x) => resolve(x, scope, replies));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, scope, replies)]));
  return v;
}

/** Logs each peer of the case in, lets it into one public room and authenticates its socket. */
async function setUp(base, c, index) {
  const names = [...new Set(c.steps.map((s) => s.by))];
  const peers = {};
  let room;
  for (const [i, name] of names.entries()) {
    const phone = `+3361${String(index).padStart(6, '0')}${i}`;
    const login = await http(base, 'POST', '/auth/dev-login', null, { phone_e164: phone, display_name: `${c.name} ${name}` });
    room ??= (await http(base, 'POST', '/rooms', login.token, { visibility: 'public' })).room_id;
    const joined = await http(base, 'POST', `/rooms/${room}/join`, login.token);
    const device = deviceCapabilities(joined.rtpCapabilities);
    const options = c.peers?.[name] ?? {};
    const socket = await Socket.open(`${base.replace(/^http/, 'ws')}/ws`);
    socket.send(JSON.stringify({ type: 'auth', requestId: 'auth', token: login.token, phone_e164: phone }));
    const auth = await socket.take((f) => f.msg.requestId === 'auth');
    if (auth.msg?.type !== 'authOk') throw new Error(`${c.name}: peer ${name} not authenticated: ${auth.raw ?? JSON.stringify(auth)}`);
    peers[name] = {
      socket,
      userId: login.user.user_id,
      scope: {
        room,
        joinToken: joined.join_token,
        routerCaps: joined.rtpCapabilities,
        recvCaps: options.recv ? options.recv(device.recvCaps) : device.recvCaps,
        sendCaps: options.send ? options.send(device.sendCaps) : device.sendCaps,
      },
    };
  }
  return peers;
}

function cnamesOf(c) {
  return new Set(c.steps.map((s) => s.msg?.rtpParameters?.rtcp?.cname).filter(Boolean));
}

/** Runs case `c` (its `index` makes its users unique on the server) and returns {label: answer}. */
export async function runCase(base, c, index) {
  const peers = await setUp(base, c, index);
  const users = new Map(Object.entries(peers).map(([name, p]) => [p.userId, `<user ${name}>`]));
  const normalize = normalizer(users, cnamesOf(c));
  const replies = {};
  const answers = {};
  let stuck = null;
  try {
    for (const [i, step] of c.steps.entries()) {
      const label = labelOf(step, i);
      if (stuck) {
        answers[label] = { skipped: stuck };
        continue;
      }
      const peer = peers[step.by];
      let frame;
      if (step.raw !== undefined) {
        peer.socket.send(step.raw);
        frame = await peer.socket.take((f) => !NOTIFICATIONS.has(f.msg.type));
      } else {
        let msg;
        try {
          msg = resolve(step.msg, peer.scope, replies);
        } catch (e) {
          if (!(e instanceof Skip)) throw e;
          answers[label] = { skipped: e.label };
          continue;
        }
        const requestId = `${label}-${i}`;
        peer.socket.send(JSON.stringify({ ...msg, requestId }));
        frame = await peer.socket.take((f) => f.msg.requestId === requestId);
      }
      if (frame.timeout || frame.closed) {
        answers[label] = { ok: false, code: frame.timeout ? '<no answer>' : '<socket closed>' };
        stuck = label;
        continue;
      }
      answers[label] = answer(frame, step, normalize);
      if (answers[label].ok) replies[label] = frame.msg;
    }
  } finally {
    for (const p of Object.values(peers)) p.socket.close();
  }
  return answers;
}

function answer({ raw, msg }, step, normalize) {
  const extra = step.raw !== undefined ? { raw } : {};
  if (msg.type === 'error' || msg.type === 'authError') return { ok: false, type: msg.type, code: msg.code, error: msg.error, ...extra };
  const keep = step.keep ?? KEEP[msg.type] ?? Object.keys(msg).filter((k) => k !== 'type' && k !== 'requestId');
  const body = Object.fromEntries(keep.filter((k) => k in msg).map((k) => [k, msg[k]]));
  return { ok: true, type: msg.type, body: normalize(body), ...extra };
}

/** Runs every case in order; `each(case, answers)` is called as each ends. */
export async function runCases(base, cases, each = () => {}) {
  const all = {};
  for (const [index, c] of cases.entries()) {
    try {
      all[c.name] = await runCase(base, c, index);
    } catch (e) {
      all[c.name] = { '<case>': { ok: false, code: '<error>', error: String(e?.stack ?? e) } };
    }
    await each(c, all[c.name]);
  }
  return all;
}
