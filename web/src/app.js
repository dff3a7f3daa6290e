// Atome's minimal browser client: login by phone, contacts, rooms, and one video window.
// Plain JavaScript over the server's HTTP API and WebSocket signaling (PROTOCOL.md), with the
// stock mediasoup-client Device.
import { Device } from 'mediasoup-client';

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const params = new URLSearchParams(location.search);
// Test knob: which track to publish first (`audio-first`, else video first).
const ORDER = params.get('order') === 'audio-first' ? ['audio', 'video'] : ['video', 'audio'];
const VIDEO = { width: 640, height: 480 };

const state = {
  token: localStorage.getItem('atome.token'),
  user: null,
  roomId: null, // the room the user is in (or rejoining): null once they leave
  phase: 'idle', // 'idle' | 'joining' | 'joined'
  rejoining: false,
  ws: null,
  device: null,
  sendTransport: null,
  recvTransport: null,
  localStream: null,
  producers: {}, // kind -> Producer
  consumers: new Map(), // consumer id -> { consumer, peer }
  waiting: [], // producers announced before the receive transport existed
  pausedProducers: new Set(), // remote producers their owner paused (muted)
  peers: new Map(), // user id -> display name
  micMuted: false, // the user's choices, kept across a reconnection
  cameraOff: false,
  published: false,
  errors: [],
};
window.atome = state; // for tests (getStats on the transports) and debugging

// ---------------------------------------------------------------- one-line messages

function showError(message) {
  const el = $('error');
  el.textContent = message || '';
  el.dataset.kind = 'error';
  if (message) state.errors.push(message);
}

function showInfo(message) {
  const el = $('error');
  el.textContent = message;
  el.dataset.kind = 'info';
}

const FRIENDLY = {
  not_connected: 'You can only invite your connections: send them a contact request first.',
  not_found: 'Room not found: it may not exist or you may not be invited.',
  not_allowed: 'You are not invited to this room: ask its owner for an invitation.',
  invalid_phone: 'That phone number is not valid: use the international form, e.g. +33612345678.',
  invalid_code: 'Wrong code: check the SMS and try again.',
  code_expired: 'The code has expired: ask for a new one.',
  too_many_attempts: 'Too many wrong codes: ask for a new one.',
  rate_limited: 'Too many attempts: wait a little and try again.',
  unauthorized: 'Your session has ended: log in again.',
  self_request: 'That is your own number.',
  self_invite: 'That is your own number.',
  invalid_join_token: 'The invitation to join expired: press Join again.',
  already_in_room: 'You are already in a call: leave it first.',
  not_in_room: 'You are not in a call.',
};

function friendly(code, fallback) {
  return FRIENDLY[code] || fallback || 'Something went wrong.';
}

class UserError extends Error {
  constructor(message, { code, status } = {}) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// Runs a UI action: clears the message line, shows a failure as one line.
const run = (fn) => async (...args) => {
  try {
    showError('');
    await fn(...args);
  } catch (e) {
    showError(e.message || String(e));
  }
};

// ---------------------------------------------------------------- HTTP

async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new UserError('Cannot reach the server: check your connection and try again.', { code: 'offline' });
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok || data.success === false) {
    let message = friendly(data.code, data.error || res.statusText);
    if (path === '/auth/dev-login' && (res.status === 404 || res.status === 405)) message = 'Dev login is disabled on this server: use the SMS code.';
    if (res.status === 401 && state.user) loggedOut();
    throw new UserError(message, { code: data.code, status: res.status });
  }
  return data;
}

// ---------------------------------------------------------------- login

async function afterLogin(data) {
  state.token = data.token;
  state.user = data.user;
  localStorage.setItem('atome.token', data.token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('me').textContent = `${data.user.display_name} (${data.user.phone_e164})`;
  await refresh();
}

function loggedOut() {
  localStorage.removeItem('atome.token');
  state.token = null;
  state.user = null;
  $('login').hidden = false;
  $('app').hidden = true;
  $('logout').hidden = true;
  $('me').textContent = '';
}

function loginBody() {
  const body = { phone_e164: $('phone').value.trim() };
  if (!body.phone_e164) throw new UserError('Enter your phone number first.');
  if ($('name').value.trim()) body.display_name = $('name').value.trim();
  return body;
}

$('send-code').onclick = run(async () => {
  await api('POST', '/auth/otp/request', { phone_e164: loginBody().phone_e164 });
  showInfo('Code sent by SMS: type it below.');
  $('code').focus();
});

$('verify').onclick = run(async () => {
  const body = loginBody();
  body.code = $('code').value.trim();
  if (!body.code) throw new UserError('Type the 6-digit code from the SMS (press "Send code" first).');
  await afterLogin(await api('POST', '/auth/otp/verify', body));
});

$('dev-login').onclick = run(async () => {
  await afterLogin(await api('POST', '/auth/dev-login', loginBody()));
});

$('logout').onclick = run(async () => {
  await leave();
  await api('POST', '/auth/logout', {}).catch(() => {});
  loggedOut();
});

// ---------------------------------------------------------------- contacts and rooms

function item(testid, text) {
  const li = document.createElement('li');
  li.dataset.testid = testid;
  li.append(text);
  return li;
}

async function refresh() {
  const [requests, contacts, rooms] = await Promise.all([
    api('GET', '/contacts/requests'),
    api('GET', '/contacts'),
    api('GET', '/rooms'),
  ]);
  $('incoming').replaceChildren(...requests.incoming.map((r) => {
    const li = item('incoming-request', `${r.from.display_name} (${r.from.phone_e164}) wants to connect `);
    li.dataset.requestId = r.request_id;
    li.dataset.phone = r.from.phone_e164;
    for (const [label, decision, testid] of [['Accept', 'accepted', 'accept-request'], ['Reject', 'rejected', 'reject-request']]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.className = decision;
      b.dataset.testid = testid;
      b.onclick = run(async () => {
        await api('POST', '/contacts/respond', { request_id: r.request_id, decision });
        await refresh();
      });
      li.append(b);
    }
    return li;
  }));
  // Keep the ticks across refreshes.
  const ticked = new Set([...document.querySelectorAll('#connections input:checked')].map((b) => b.value));
  $('connections').replaceChildren(...contacts.contacts.map((c) => {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = c.phone_e164;
    box.dataset.phone = c.phone_e164;
    box.checked = ticked.has(c.phone_e164);
    label.append(box, ` ${c.display_name} (${c.phone_e164})`);
    const li = item('connection', label);
    li.dataset.phone = c.phone_e164;
    return li;
  }));
  const select = $('room-list');
  const current = select.value;
  select.replaceChildren(...rooms.rooms.map((r) => {
    const o = document.createElement('option');
    o.value = r.room_id;
    o.textContent = r.role ? `${r.name} (${r.role})` : r.name;
    return o;
  }));
  if (current && rooms.rooms.some((r) => r.room_id === current)) select.value = current;
}
setInterval(() => { if (state.user) refresh().catch(() => {}); }, 2000);

$('add-contact').onclick = run(async () => {
  const phone = $('contact-phone').value.trim();
  if (!phone) throw new UserError('Type the phone number of the person to add.');
  const r = await api('POST', '/contacts/request', { to_phone_e164: phone });
  $('contact-phone').value = '';
  showInfo(r.status === 'accepted' ? 'You are now connected.' : 'Request sent.');
  await refresh();
});

$('create-room').onclick = run(async () => {
  const r = await api('POST', '/rooms', {});
  await refresh();
  $('room-list').value = r.room_id;
  showInfo('Room created: tick connections and press "Invite selected", or Join.');
});

$('invite').onclick = run(async () => {
  const roomId = $('room-list').value;
  if (!roomId) throw new UserError('Create or choose a room first.');
  const phones = [...document.querySelectorAll('#connections input:checked')].map((b) => b.value);
  if (!phones.length) throw new UserError('Tick the connections to invite.');
  for (const p of phones) await api('POST', `/rooms/${encodeURIComponent(roomId)}/invite`, { to_phone_e164: p });
  for (const b of document.querySelectorAll('#connections input:checked')) b.checked = false;
  showInfo(`Invited ${phones.length}.`);
});

// ---------------------------------------------------------------- signaling

let nextRequestId = 0;
const pending = new Map();

function request(type, data = {}) {
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      reject(new UserError('Not connected to the server.', { code: 'offline' }));
      return;
    }
    const requestId = ++nextRequestId;
    pending.set(requestId, { resolve, reject });
    state.ws.send(JSON.stringify({ type, requestId, ...data }));
  });
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new UserError('Cannot reach the server: check your connection.', { code: 'offline' }));
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      onMessage(msg);
    };
    ws.onclose = () => onSocketClosed(ws);
  });
}

function closeSocket() {
  const ws = state.ws;
  state.ws = null; // before close(): its close event is then not a lost connection
  for (const p of pending.values()) p.reject(new UserError('Connection lost.', { code: 'offline' }));
  pending.clear();
  ws?.close();
}

function onMessage(msg) {
  if (msg.requestId != null && pending.has(msg.requestId)) {
    const p = pending.get(msg.requestId);
    pending.delete(msg.requestId);
    if (msg.type === 'error' || msg.type === 'authError') p.reject(new UserError(friendly(msg.code, msg.error), { code: msg.code }));
    else p.resolve(msg);
    return;
  }
  switch (msg.type) {
    case 'newProducer':
      if (state.recvTransport) consumeQuietly(msg.producer_id, msg.peer_user_id);
      else state.waiting.push(msg);
      break;
    case 'producerClosed':
      state.waiting = state.waiting.filter((p) => p.producer_id !== msg.producer_id);
      state.pausedProducers.delete(msg.producer_id);
      for (const [id, c] of state.consumers) {
        if (c.consumer.producerId === msg.producer_id) {
          c.consumer.close();
          state.consumers.delete(id);
        }
      }
      renderTiles();
      break;
    case 'producerPaused':
      state.pausedProducers.add(msg.producer_id);
      renderTiles();
      break;
    case 'producerResumed':
      state.pausedProducers.delete(msg.producer_id);
      renderTiles();
      break;
    case 'participantJoined':
      state.peers.set(msg.peer_user_id, msg.display_name);
      renderTiles();
      break;
    case 'participantLeft':
      state.peers.delete(msg.peer_user_id);
      renderTiles();
      break;
    case 'error':
      if (msg.error) console.warn('server:', msg.code, msg.error);
      break;
    default:
      break;
  }
}

function onSocketClosed(ws) {
  if (ws !== state.ws) return; // closed on purpose
  state.ws = null;
  for (const p of pending.values()) p.reject(new UserError('Connection lost.', { code: 'offline' }));
  pending.clear();
  if (state.phase === 'joined' && state.roomId) rejoin();
}

/** The WebSocket dropped during a call: join the same room again until it works or the user leaves. */
async function rejoin() {
  if (state.rejoining) return;
  state.rejoining = true;
  try {
    for (let attempt = 1; state.roomId; attempt++) {
      teardownMedia();
      state.phase = 'joining';
      setCallButtons();
      showError('Connection lost: reconnecting...');
      await sleep(Math.min(500 * attempt, 5000));
      if (!state.roomId) return;
      try {
        await join(state.roomId);
        showError('');
        return;
      } catch (e) {
        closeSocket();
        if ([401, 403, 404].includes(e.status)) {
          // The room is gone or no longer ours: stop trying, say why.
          state.roomId = null;
          teardownMedia();
          state.phase = 'idle';
          setCallButtons();
          showError(`Connection lost, could not rejoin: ${e.message}`);
          return;
        }
        showError(`Connection lost: ${e.message} Retrying...`);
      }
    }
  } finally {
    state.rejoining = false;
  }
}

// ---------------------------------------------------------------- the call

function wire(transport) {
  transport.on('connect', ({ dtlsParameters }, ok, fail) => {
    request('connectTransport', { transport_id: transport.id, dtlsParameters }).then(() => ok(), fail);
  });
  transport.on('connectionstatechange', (s) => {
    if (s === 'failed' && state.phase === 'joined') showError('Media connection failed: leave and join again.');
  });
}

/** Joins `roomId` (also used to rejoin): device, transports, consume the others, publish mic and camera. */
async function join(roomId) {
  const still = () => {
    if (state.roomId !== roomId) throw new UserError('Left the room.');
  };
  state.phase = 'joining';
  const joined = await api('POST', `/rooms/${encodeURIComponent(roomId)}/join`, {});
  still();
  state.ws = await openSocket();
  still();
  await request('auth', { token: state.token, phone_e164: state.user.phone_e164 });
  state.device = new Device();
  await state.device.load({ routerRtpCapabilities: joined.rtpCapabilities });
  const room = await request('joinRoom', {
    room_id: roomId,
    join_token: joined.join_token,
    rtpCapabilities: state.device.rtpCapabilities,
  });
  still();
  state.peers = new Map(room.peers.map((p) => [p.peer_user_id, p.display_name]));
  state.pausedProducers.clear();

  const send = await request('createTransport', { direction: 'send', rtpCapabilities: state.device.sendRtpCapabilities });
  state.sendTransport = state.device.createSendTransport(send.transportOptions);
  wire(state.sendTransport);
  const sendTransport = state.sendTransport;
  sendTransport.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
    request('produce', { transport_id: sendTransport.id, kind, rtpParameters, appData })
      .then((r) => ok({ id: r.producer_id }), fail);
  });
  const recv = await request('createTransport', { direction: 'recv' });
  state.recvTransport = state.device.createRecvTransport(recv.transportOptions);
  wire(state.recvTransport);
  still();

  state.phase = 'joined';
  setCallButtons();
  const toConsume = [...room.existingProducers, ...state.waiting];
  state.waiting = [];
  for (const p of toConsume) await consumeQuietly(p.producer_id, p.peer_user_id);
  await publish();
}

/** Publishes the microphone and (unless the user turned it off) the camera, in ORDER. */
async function publish() {
  const stream = await getMedia(true, !state.cameraOff);
  state.localStream = stream;
  renderTiles();
  for (const kind of ORDER) {
    const track = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    if (!track) continue;
    state.producers[kind] = await state.sendTransport.produce({ track, appData: { kind } });
    if (kind === 'audio' && state.micMuted) {
      await request('pauseProducer', { producer_id: state.producers.audio.id });
      state.producers.audio.pause();
    }
  }
  state.published = true;
  setCallButtons();
}

/**
 * The camera and/or microphone. When the browser denies one, carries on with what it allows
 * (possibly nothing: the user then only watches) and says so on the message line.
 */
async function getMedia(audio, video) {
  const md = navigator.mediaDevices;
  if (!md?.getUserMedia) {
    showError('This page cannot use the camera or microphone (it needs https or localhost): you can only watch.');
    return new MediaStream();
  }
  if (!audio && !video) return new MediaStream();
  try {
    return await md.getUserMedia({ audio, video: video ? VIDEO : false });
  } catch (first) {
    const got = new MediaStream();
    const missing = [];
    for (const [kind, wanted] of [['audio', audio], ['video', video]]) {
      if (!wanted) continue;
      try {
        const s = await md.getUserMedia(kind === 'audio' ? { audio: true } : { video: VIDEO });
        s.getTracks().forEach((t) => got.addTrack(t));
      } catch {
        missing.push(kind === 'audio' ? 'microphone' : 'camera');
      }
    }
    if (missing.length) {
      const denied = first?.name === 'NotAllowedError' || first?.name === 'SecurityError';
      showError(`${missing.join(' and ')} ${denied ? 'denied' : 'unavailable'}: allow ${missing.length > 1 ? 'them' : 'it'} in the browser settings, then leave and join again.`
        .replace(/^./, (c) => c.toUpperCase()));
    }
    return got;
  }
}

async function consume(producerId, peerUserId) {
  const transport = state.recvTransport;
  if (!transport) return;
  const r = await request('consume', { transport_id: transport.id, producer_id: producerId });
  if (transport.closed) return;
  const consumer = await transport.consume(r.consumerOptions);
  state.consumers.set(consumer.id, { consumer, peer: peerUserId });
  renderTiles();
  await request('resumeConsumer', { consumer_id: consumer.id });
}

function consumeQuietly(producerId, peerUserId) {
  // A producer may close between its announcement and our consume: not worth a message.
  return consume(producerId, peerUserId).catch((e) => {
    if (e.code !== 'not_found' && e.code !== 'offline') showError(`Cannot receive a stream: ${e.message}`);
  });
}

function teardownMedia() {
  for (const c of state.consumers.values()) c.consumer.close();
  state.consumers.clear();
  for (const p of Object.values(state.producers)) p.close();
  state.producers = {};
  state.sendTransport?.close();
  state.recvTransport?.close();
  state.sendTransport = state.recvTransport = null;
  state.localStream?.getTracks().forEach((t) => t.stop());
  state.localStream = null;
  state.waiting = [];
  state.pausedProducers.clear();
  state.peers.clear();
  state.published = false;
  renderTiles();
}

async function leave() {
  if (!state.roomId) return;
  const roomId = state.roomId;
  state.roomId = null;
  if (state.ws) await request('leaveRoom', { room_id: roomId }).catch(() => {});
  closeSocket();
  teardownMedia();
  state.phase = 'idle';
  setCallButtons();
}

function setCallButtons() {
  const inCall = state.roomId !== null;
  $('join').disabled = inCall;
  $('leave').disabled = !inCall;
  $('mute').disabled = !inCall;
  $('camera').disabled = !inCall;
  $('mute').textContent = state.micMuted ? 'Unmute' : 'Mute';
  $('camera').textContent = state.cameraOff ? 'Camera on' : 'Camera off';
  $('call-state').textContent = !inCall ? '' : state.phase === 'joined' ? 'In call' : 'Joining...';
}

$('join').onclick = run(async () => {
  const roomId = $('room-list').value;
  if (!roomId) throw new UserError('Create or choose a room first.');
  state.roomId = roomId;
  state.micMuted = false;
  state.cameraOff = false;
  setCallButtons();
  try {
    await join(roomId);
  } catch (e) {
    if (state.roomId === roomId && !state.rejoining) {
      state.roomId = null;
      closeSocket();
      teardownMedia();
      state.phase = 'idle';
      setCallButtons();
    }
    throw e;
  }
});

$('leave').onclick = run(leave);

$('mute').onclick = run(async () => {
  const p = state.producers.audio;
  state.micMuted = !state.micMuted;
  setCallButtons();
  if (!p) {
    if (state.phase === 'joined' && !state.micMuted) {
      // No microphone yet (denied earlier): try again.
      const track = (await getMedia(true, false)).getAudioTracks()[0];
      if (!track) {
        state.micMuted = true;
        setCallButtons();
        return;
      }
      state.localStream?.addTrack(track);
      state.producers.audio = await state.sendTransport.produce({ track, appData: { kind: 'audio' } });
    }
    return;
  }
  if (state.micMuted) {
    p.pause(); // stops sending at once, and the server is told
    await request('pauseProducer', { producer_id: p.id });
  } else {
    await request('resumeProducer', { producer_id: p.id });
    p.resume();
  }
});

$('camera').onclick = run(async () => {
  state.cameraOff = !state.cameraOff;
  setCallButtons();
  const p = state.producers.video;
  if (state.cameraOff) {
    if (!p) return;
    delete state.producers.video;
    p.close();
    p.track?.stop();
    state.localStream?.getVideoTracks().forEach((t) => { t.stop(); state.localStream.removeTrack(t); });
    renderTiles();
    await request('closeProducer', { producer_id: p.id });
  } else if (state.phase === 'joined' && !p) {
    const track = (await getMedia(false, true)).getVideoTracks()[0];
    if (!track) {
      state.cameraOff = true;
      setCallButtons();
      return;
    }
    state.localStream?.addTrack(track);
    renderTiles(true);
    state.producers.video = await state.sendTransport.produce({ track, appData: { kind: 'video' } });
  }
});

$('toggle-window').onclick = () => {
  const w = $('window');
  w.hidden = !w.hidden;
  $('toggle-window').textContent = w.hidden ? 'Open video window' : 'Close video window';
};

// ---------------------------------------------------------------- video window

function tile(key, label, stream, muted) {
  let el = document.querySelector(`[data-tile="${key}"]`);
  if (!el) {
    el = document.createElement('div');
    el.className = 'tile';
    el.dataset.tile = key;
    el.dataset.testid = key === 'local' ? 'tile-local' : 'tile-peer';
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    v.muted = muted;
    const span = document.createElement('span');
    el.append(v, span);
  }
  el.querySelector('span').textContent = label;
  const v = el.querySelector('video');
  if (v.srcObject !== stream) {
    v.srcObject = stream;
    v.play().catch(() => {});
  }
  return el;
}

/** One tile for me and one per peer with at least one stream, labelled with the display name. */
function renderTiles(newLocalTrack = false) {
  const tiles = [];
  if (state.localStream) {
    const local = document.querySelector('[data-tile="local"] video');
    if (newLocalTrack && local) local.srcObject = null; // show the new camera track
    tiles.push(tile('local', `${state.user?.display_name || 'Me'} (me)${state.micMuted ? ' (muted)' : ''}`, state.localStream, true));
  }
  const byPeer = new Map();
  for (const { consumer, peer } of state.consumers.values()) {
    if (!byPeer.has(peer)) byPeer.set(peer, []);
    byPeer.get(peer).push(consumer);
  }
  for (const [peer, consumers] of byPeer) {
    const key = `peer-${peer}`;
    const tracks = consumers.map((c) => c.track);
    const existing = document.querySelector(`[data-tile="${key}"] video`)?.srcObject;
    const same = existing && existing.getTracks().length === tracks.length && tracks.every((t) => existing.getTracks().includes(t));
    const muted = consumers.some((c) => c.kind === 'audio' && state.pausedProducers.has(c.producerId));
    const name = state.peers.get(peer) || 'Guest';
    const el = tile(key, muted ? `${name} (muted)` : name, same ? existing : new MediaStream(tracks), false);
    el.dataset.peer = peer;
    el.dataset.name = name;
    tiles.push(el);
  }
  $('videos').replaceChildren(...tiles);
}

// ---------------------------------------------------------------- start

setCallButtons();
if (state.token) {
  api('GET', '/auth/me')
    .then((d) => afterLogin({ token: state.token, user: d.user }))
    .catch(() => loggedOut());
}
