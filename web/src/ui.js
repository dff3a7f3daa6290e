// Shared state, the message lines, the HTTP helper and the video window.
export const $ = (id) => document.getElementById(id);

export const state = {
  token: localStorage.getItem('atome.token'),
  user: null,
  roomId: null, // the room we are in, or rejoining
  ws: null,
  device: null,
  sendTransport: null,
  recvTransport: null,
  producers: {}, // 'audio' | 'video' | 'screen' -> Producer
  consumers: new Map(), // consumer id -> { consumer, peer, source }
  peers: new Map(), // user id -> display name
  iceServers: [], // TURN servers and credentials from roomJoined / iceRestarted
  resumeToken: null, // from roomJoined: takes the session back on a new socket (resumeSession)
  closedProducers: new Set(), // producers heard closed in this call (a consume may still be on its way)
  resumes: 0, // sessions taken back on a new socket (tests read it)
  leaving: false,
  reconnecting: false,
  // What the user chose, kept across reconnects and reloads (sessionStorage, this tab only).
  muted: false,
  cameraOff: false,
  cameraId: '',
  micId: '',
  errors: [],
  infos: [],
};
window.atome = state; // for tests and debugging

/** The red line: what went wrong (empty clears it). */
export function showError(message) {
  $('error').textContent = message || '';
  if (message) {
    state.errors.push(message);
    $('info').textContent = '';
  }
}

/** The plain line: what happened, or what is being done. */
export function showInfo(message) {
  $('info').textContent = message || '';
  if (message) {
    state.infos.push(message);
    $('error').textContent = '';
  }
}

export async function api(method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    const err = new Error('Cannot reach the server.');
    err.code = 'unreachable';
    throw err;
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok || data.success === false) {
    const err = new Error(friendly(data.code, data.error, res.status));
    err.code = data.code;
    err.status = res.status;
    throw err;
  }
  return data;
}

const FRIENDLY = {
  not_connected: 'You can only invite your connections: send them a contact request first.',
  not_found: 'Not found (the room may not exist or you may not be invited).',
  not_allowed: 'You are not invited to this room.',
  not_participant: 'Only the room\'s owner or its participants may invite.',
  not_recipient: 'Only the person asked may answer this request.',
  not_owner: 'Only the room\'s owner may do that.',
  invalid_phone: 'That phone number is not valid.',
  invalid_code: 'Wrong code.',
  code_expired: 'The code has expired: ask for a new one.',
  rate_limited: 'Too many attempts: wait a little and try again.',
  unauthorized: 'Your session has ended: log in again.',
  too_many_sockets: 'Too many open windows or devices: close one and try again.',
  too_many_transports: 'Too many calls open at once: leave one first.',
  too_many_producers: 'You share too many things at once: stop one first.',
  worker_unavailable: 'The call was interrupted on the server: join again.',
  unsupported_codec: 'Your browser offers no video or audio format this server can carry.',
  otp_unavailable: 'Login codes are turned off on this server: ask its administrator.',
  invalid_join_token: 'Joining took too long: try again.',
  not_in_room: 'You are not in the call any more: join again.',
};

/** A sentence for the user: ours for the codes we know, else a plain one by status. */
export function friendly(code, fallback, status) {
  if (FRIENDLY[code]) return FRIENDLY[code];
  if (status === 401) return FRIENDLY.unauthorized;
  if (status === 403) return 'You are not allowed to do that.';
  if (status === 404) return 'Not found.';
  if (status === 429) return FRIENDLY.rate_limited;
  if (status >= 500) return 'The server failed: try again in a moment.';
  return fallback ? `${fallback.charAt(0).toUpperCase()}${fallback.slice(1)}.`.replace(/\.\.$/, '.') : 'Something went wrong.';
}

/**
 * Runs a button's action once at a time: the button is disabled while its request is in flight
 * (a double click is one action), errors go to the red line. `after` sets the buttons' states.
 */
export function action(button, fn, after = () => {}) {
  const el = typeof button === 'string' ? $(button) : button;
  el.onclick = async (ev) => {
    if (el.dataset.busy) return;
    el.dataset.busy = '1';
    el.disabled = true;
    try {
      await fn(ev);
    } catch (e) {
      showError(e.message || String(e));
    } finally {
      delete el.dataset.busy;
      el.disabled = false;
      after();
    }
  };
  return el;
}

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
    const name = document.createElement('b');
    const span = document.createElement('span');
    el.append(v, name, span);
  }
  el.querySelector('span').textContent = label;
  el.querySelector('b').textContent = label;
  const hasVideo = !!stream?.getVideoTracks().some((t) => t.readyState === 'live');
  el.classList.toggle('novideo', !hasVideo);
  const v = el.querySelector('video');
  if (v.srcObject !== stream) {
    v.srcObject = stream;
    v.play().catch(() => {});
  }
  return el;
}

function sameTracks(video, tracks) {
  const s = video?.srcObject;
  return s && s.getTracks().length === tracks.length && tracks.every((t) => s.getTracks().includes(t));
}

/** One tile per person (their camera and microphone, or their name), one per shared screen. */
export function renderTiles() {
  const tiles = [];
  const me = state.user?.display_name || 'Me';
  if (state.localStream) {
    const local = new MediaStream(state.localStream.getVideoTracks().filter(() => !state.cameraOff));
    const existing = document.querySelector('[data-tile="local"] video');
    tiles.push(tile('local', `${me} (me)`, sameTracks(existing, local.getTracks()) ? existing.srcObject : local, true));
  }
  if (state.producers.screen) {
    tiles.push(tile('local-screen', `${me} (screen)`, new MediaStream([state.producers.screen.track]), true));
  }
  const byKey = new Map();
  for (const id of state.peers.keys()) byKey.set(`peer-${id}`, { peer: id, screen: false, tracks: [] });
  for (const { consumer, peer, source } of state.consumers.values()) {
    const screen = source === 'screen';
    const key = screen ? `screen-${consumer.producerId}` : `peer-${peer}`;
    if (!byKey.has(key)) byKey.set(key, { peer, screen, tracks: [] });
    byKey.get(key).tracks.push(consumer.track);
  }
  for (const [key, { peer, screen, tracks }] of byKey) {
    const existing = document.querySelector(`[data-tile="${key}"] video`);
    const stream = sameTracks(existing, tracks) ? existing.srcObject : new MediaStream(tracks);
    const name = state.peers.get(peer) || 'Guest';
    const el = tile(key, screen ? `${name} (screen)` : name, stream, false);
    el.dataset.peer = peer;
    if (screen) el.dataset.screen = '1';
    tiles.push(el);
  }
  $('videos').replaceChildren(...tiles);
}
