// Atome's minimal browser client: login by phone, contacts, rooms, and one video window.
// Plain JavaScript over the server's HTTP API and WebSocket signaling, with mediasoup-client.
import { Device } from 'mediasoup-client';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// Test knob: which track to publish first (`audio-first` or the default video first).
const ORDER = params.get('order') === 'audio-first' ? ['audio', 'video'] : ['video', 'audio'];
// Which ICE candidates the transports may use: `all` (default) or `relay` (TURN only; tests, and
// networks where only a relay works).
const ICE_TRANSPORT_POLICY = params.get('iceTransportPolicy') === 'relay' ? 'relay' : 'all';

const state = {
  token: localStorage.getItem('atome.token'),
  user: null,
  roomId: null,
  ws: null,
  device: null,
  sendTransport: null,
  recvTransport: null,
  producers: {}, // kind -> Producer
  consumers: new Map(), // consumer id -> { consumer, peer }
  peers: new Map(), // user id -> display name
  iceServers: [], // TURN servers and credentials from roomJoined / iceRestarted
  leaving: false,
  errors: [],
};
window.atome = state; // for tests and debugging

function showError(message) {
  $('error').textContent = message || '';
  if (message) state.errors.push(message);
}

// ---------------------------------------------------------------- HTTP

async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok || data.success === false) {
    const err = new Error(friendly(data.code, data.error || res.statusText));
    err.code = data.code;
    throw err;
  }
  return data;
}

function friendly(code, fallback) {
  return {
    not_connected: 'You can only invite your connections: send them a contact request first.',
    not_found: 'Not found (the room may not exist or you may not be invited).',
    not_allowed: 'You are not invited to this room.',
    invalid_phone: 'That phone number is not valid.',
    invalid_code: 'Wrong code.',
    code_expired: 'The code has expired: ask for a new one.',
    rate_limited: 'Too many attempts: wait a little and try again.',
    unauthorized: 'Your session has ended: log in again.',
    too_many_sockets: 'Too many open windows or devices: close one and try again.',
    too_many_transports: 'Too many calls open at once: leave one first.',
    worker_unavailable: 'The call was interrupted on the server: join again.',
    unsupported_codec: 'Your browser offers no video or audio format this server can carry.',
    otp_unavailable: 'Login codes are turned off on this server: ask its administrator.',
  }[code] || fallback;
}

const run = (fn) => async (...args) => {
  try {
    showError('');
    await fn(...args);
  } catch (e) {
    showError(e.message || String(e));
  }
};

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

$('send-code').onclick = run(async () => {
  await api('POST', '/auth/otp/request', { phone_e164: $('phone').value });
  showError('');
  $('code').focus();
});

$('verify').onclick = run(async () => {
  const body = { phone_e164: $('phone').value, code: $('code').value.trim() };
  if ($('name').value.trim()) body.display_name = $('name').value.trim();
  await afterLogin(await api('POST', '/auth/otp/verify', body));
});

$('dev-login').onclick = run(async () => {
  const body = { phone_e164: $('phone').value };
  if ($('name').value.trim()) body.display_name = $('name').value.trim();
  await afterLogin(await api('POST', '/auth/dev-login', body));
});

$('logout').onclick = run(async () => {
  await leave();
  await api('POST', '/auth/logout', {}).catch(() => {});
  localStorage.removeItem('atome.token');
  location.reload();
});

// ---------------------------------------------------------------- contacts and rooms

async function refresh() {
  const [requests, contacts, rooms] = await Promise.all([
    api('GET', '/contacts/requests'),
    api('GET', '/contacts'),
    api('GET', '/rooms'),
  ]);
  const incoming = $('incoming');
  incoming.replaceChildren(...requests.incoming.map((r) => {
    const li = document.createElement('li');
    li.dataset.requestId = r.request_id;
    li.append(`${r.from.display_name} (${r.from.phone_e164}) wants to connect `);
    for (const [label, decision] of [['Accept', 'accepted'], ['Reject', 'rejected']]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.className = decision;
      b.onclick = run(async () => {
        await api('POST', '/contacts/respond', { request_id: r.request_id, decision });
        await refresh();
      });
      li.append(b);
    }
    return li;
  }));
  $('connections').replaceChildren(...contacts.contacts.map((c) => {
    const li = document.createElement('li');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = c.phone_e164;
    box.dataset.phone = c.phone_e164;
    li.append(box, ` ${c.display_name} (${c.phone_e164})`);
    return li;
  }));
  const select = $('room-list');
  const current = select.value;
  select.replaceChildren(...rooms.rooms.map((r) => {
    const o = document.createElement('option');
    o.value = r.room_id;
    o.textContent = `${r.name} (${r.role})`;
    return o;
  }));
  if (current && rooms.rooms.some((r) => r.room_id === current)) select.value = current;
}
setInterval(() => { if (state.token && state.user) refresh().catch(() => {}); }, 2000);

$('add-contact').onclick = run(async () => {
  const r = await api('POST', '/contacts/request', { to_phone_e164: $('contact-phone').value });
  $('contact-phone').value = '';
  showError(r.status === 'accepted' ? '' : 'Request sent.');
  await refresh();
});

$('create-room').onclick = run(async () => {
  const r = await api('POST', '/rooms', {});
  await refresh();
  $('room-list').value = r.room_id;
});

$('invite').onclick = run(async () => {
  const roomId = $('room-list').value;
  if (!roomId) throw new Error('Create or choose a room first.');
  const phones = [...document.querySelectorAll('#connections input:checked')].map((b) => b.value);
  if (!phones.length) throw new Error('Tick the connections to invite.');
  for (const p of phones) await api('POST', `/rooms/${roomId}/invite`, { to_phone_e164: p });
  showError(`Invited ${phones.length}.`);
});

// ---------------------------------------------------------------- signaling

let requestId = 0;
const pending = new Map();

function request(type, data = {}) {
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return reject(new Error('Connection lost.'));
    const id = ++requestId;
    pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ type, requestId: id, ...data }));
  });
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('Cannot reach the server.'));
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = () => onSocketClosed(ws);
  });
}

function onMessage(msg) {
  if (msg.requestId && pending.has(msg.requestId)) {
    const p = pending.get(msg.requestId);
    pending.delete(msg.requestId);
    if (msg.type === 'error' || msg.type === 'authError') p.reject(new Error(friendly(msg.code, msg.error)));
    else p.resolve(msg);
    return;
  }
  switch (msg.type) {
    case 'newProducer':
      consume(msg.producer_id, msg.peer_user_id).catch((e) => showError(e.message));
      break;
    case 'producerClosed':
      if (Object.values(state.producers).some((p) => p.id === msg.producer_id)) {
        // The server lost our media connection (closed, or silent too long): join again.
        showError('Media connection lost: reconnecting...');
        state.ws?.close();
        break;
      }
      for (const [id, c] of state.consumers) {
        if (c.consumer.producerId === msg.producer_id) {
          c.consumer.close();
          state.consumers.delete(id);
          renderTiles();
        }
      }
      break;
    case 'roomClosed':
      // The media worker of this call failed: join again (the server places the call anew).
      showError('The call was interrupted: reconnecting...');
      state.ws?.close();
      break;
    case 'sessionReplaced':
      // This user joined the call again elsewhere (a reload, another tab): the server closes this
      // socket; leave quietly instead of joining back, which would in turn replace the other.
      state.leaving = true;
      state.roomId = null;
      teardownMedia();
      setCallButtons(false);
      showError('This call continues in another window.');
      break;
    case 'participantJoined':
      state.peers.set(msg.peer_user_id, msg.display_name);
      renderTiles();
      break;
    case 'participantLeft':
      state.peers.delete(msg.peer_user_id);
      renderTiles();
      break;
    default:
      break;
  }
}

function onSocketClosed(ws) {
  if (ws !== state.ws) return;
  for (const p of pending.values()) p.reject(new Error('Connection lost.'));
  pending.clear();
  state.ws = null;
  if (state.roomId && !state.leaving) {
    showError('Connection lost: reconnecting...');
    const roomId = state.roomId;
    teardownMedia();
    setTimeout(() => join(roomId).then(() => showError(''), (e) => showError(`Connection lost: ${e.message}`)), 1000);
  }
}

// ---------------------------------------------------------------- the call

function wire(transport) {
  transport.on('connect', ({ dtlsParameters }, ok, fail) => {
    request('connectTransport', { transport_id: transport.id, dtlsParameters }).then(() => ok(), fail);
  });
  transport.on('connectionstatechange', (connectionState) => {
    if (connectionState === 'disconnected' || connectionState === 'failed') restartIce(transport);
  });
}

// How long an ICE restart may take before the call is joined again from scratch.
const ICE_RESTART_GRACE_MS = 10000;

// The network changed or the media path broke: new ICE parameters from the server, then
// RTCPeerConnection.restartIce(). If the transport is not connected again soon, rejoin.
async function restartIce(transport) {
  if (transport.closed || transport.restarting) return;
  transport.restarting = true;
  // Armed before asking: when the address changed, the signaling socket is as dead as the media
  // path (still OPEN, its TCP connection bound to the old address), and the request never answers.
  setTimeout(() => {
    transport.restarting = false;
    if (!transport.closed && transport.connectionState !== 'connected' && transport === currentTransport(transport)) {
      showError('Media connection lost: reconnecting...');
      const ws = state.ws;
      ws?.close();
      if (ws) onSocketClosed(ws); // joins the call again (now: a dead socket's close event may come late)
    }
  }, ICE_RESTART_GRACE_MS);
  try {
    const r = await request('restartIce', { transport_id: transport.id });
    // Fresh TURN credentials: the old ones may have expired during a long call.
    if (r.iceServers?.length) {
      state.iceServers = r.iceServers;
      await transport.updateIceServers({ iceServers: r.iceServers });
    }
    await transport.restartIce({ iceParameters: r.iceParameters });
  } catch (e) {
    console.warn('ICE restart failed', e);
  }
}

function currentTransport(transport) {
  return [state.sendTransport, state.recvTransport].find((t) => t === transport);
}

// A new network (Wi-Fi to mobile, a cable plugged in): restart ICE on both transports.
function onNetworkChange() {
  for (const t of [state.sendTransport, state.recvTransport]) if (t) restartIce(t);
}
window.addEventListener('online', onNetworkChange);
navigator.connection?.addEventListener?.('change', onNetworkChange);

async function join(roomId) {
  if (!roomId) throw new Error('Create or choose a room first.');
  const joined = await api('POST', `/rooms/${roomId}/join`, {});
  state.ws = await openSocket();
  await request('auth', { token: state.token });
  state.device = new Device();
  await state.device.load({ routerRtpCapabilities: joined.rtpCapabilities });
  const room = await request('joinRoom', {
    room_id: roomId,
    join_token: joined.join_token,
    rtpCapabilities: state.device.rtpCapabilities,
  });
  state.roomId = roomId;
  state.leaving = false;
  state.peers = new Map(room.peers.map((p) => [p.peer_user_id, p.display_name]));
  state.iceServers = room.iceServers || [];
  const ice = { iceServers: state.iceServers, iceTransportPolicy: ICE_TRANSPORT_POLICY };

  const send = await request('createTransport', { direction: 'send', rtpCapabilities: state.device.sendRtpCapabilities });
  state.sendTransport = state.device.createSendTransport({ ...send.transportOptions, ...ice });
  wire(state.sendTransport);
  state.sendTransport.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
    request('produce', { transport_id: state.sendTransport.id, kind, rtpParameters, appData })
      .then((r) => ok({ id: r.producer_id }), fail);
  });
  const recv = await request('createTransport', { direction: 'recv' });
  state.recvTransport = state.device.createRecvTransport({ ...recv.transportOptions, ...ice });
  wire(state.recvTransport);

  setCallButtons(true);
  for (const p of room.existingProducers) {
    // A producer may close before we consume it (its owner joining again at the same moment):
    // that is no reason to give up our own join.
    await consume(p.producer_id, p.peer_user_id).catch((e) => console.warn('producer gone before consumed', e));
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (e) {
    throw new Error('Camera or microphone denied: allow them in the browser to be seen and heard.');
  }
  state.localStream = stream;
  renderTiles();
  for (const kind of ORDER) {
    const track = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    if (track) state.producers[kind] = await state.sendTransport.produce({ track });
  }
  state.published = true;
}

async function consume(producerId, peerUserId) {
  if (!state.recvTransport) return;
  const r = await request('consume', { transport_id: state.recvTransport.id, producer_id: producerId });
  const consumer = await state.recvTransport.consume(r.consumerOptions);
  state.consumers.set(consumer.id, { consumer, peer: peerUserId });
  renderTiles();
  await request('resumeConsumer', { consumer_id: consumer.id });
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
  state.published = false;
  renderTiles();
}

async function leave() {
  if (!state.roomId) return;
  state.leaving = true;
  const roomId = state.roomId;
  await request('leaveRoom', { room_id: roomId }).catch(() => {});
  state.roomId = null;
  teardownMedia();
  state.ws?.close();
  state.ws = null;
  setCallButtons(false);
}

function setCallButtons(inCall) {
  $('join').disabled = inCall;
  $('leave').disabled = !inCall;
  $('mute').disabled = !inCall;
  $('camera').disabled = !inCall;
  $('mute').textContent = 'Mute';
  $('camera').textContent = 'Camera off';
}

$('join').onclick = run(() => join($('room-list').value));
$('leave').onclick = run(leave);

$('mute').onclick = run(async () => {
  const p = state.producers.audio;
  if (!p) throw new Error('No microphone is published.');
  if (p.paused) {
    await request('resumeProducer', { producer_id: p.id });
    p.resume();
    $('mute').textContent = 'Mute';
  } else {
    await request('pauseProducer', { producer_id: p.id });
    p.pause();
    $('mute').textContent = 'Unmute';
  }
});

$('camera').onclick = run(async () => {
  const p = state.producers.video;
  if (p) {
    await request('closeProducer', { producer_id: p.id });
    p.close();
    p.track?.stop();
    delete state.producers.video;
    $('camera').textContent = 'Camera on';
  } else {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const track = stream.getVideoTracks()[0];
    state.localStream?.getVideoTracks().forEach((t) => { t.stop(); state.localStream.removeTrack(t); });
    state.localStream?.addTrack(track);
    state.producers.video = await state.sendTransport.produce({ track });
    $('camera').textContent = 'Camera off';
  }
  renderTiles();
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

function renderTiles() {
  const tiles = [];
  if (state.localStream) tiles.push(tile('local', `${state.user?.display_name || 'Me'} (me)`, state.localStream, true));
  const byPeer = new Map();
  for (const { consumer, peer } of state.consumers.values()) {
    if (!byPeer.has(peer)) byPeer.set(peer, []);
    byPeer.get(peer).push(consumer.track);
  }
  for (const [peer, tracks] of byPeer) {
    const key = `peer-${peer}`;
    const existing = document.querySelector(`[data-tile="${key}"] video`);
    const same = existing?.srcObject && existing.srcObject.getTracks().length === tracks.length &&
      tracks.every((t) => existing.srcObject.getTracks().includes(t));
    const stream = same ? existing.srcObject : new MediaStream(tracks);
    const el = tile(key, state.peers.get(peer) || 'Guest', stream, false);
    el.dataset.peer = peer;
    tiles.push(el);
  }
  $('videos').replaceChildren(...tiles);
}

// ---------------------------------------------------------------- start

if (state.token) {
  api('GET', '/auth/me')
    .then((d) => afterLogin({ token: state.token, user: d.user }))
    .catch(() => { localStorage.removeItem('atome.token'); state.token = null; });
}
