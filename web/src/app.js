// Atome's minimal browser client: login by phone, contacts, rooms, and one video window.
// Plain JavaScript over the server's HTTP API and WebSocket signaling, with mediasoup-client.
import { $, action, api, renderTiles, showError, showInfo, state } from './ui.js';
import {
  join, leave, saveCall, savedCall, setCameraOff, setMuted, setOnCallChange, switchDevice, teardownMedia, toggleScreen,
} from './call.js';
import { request } from './signaling.js';

// ---------------------------------------------------------------- login

async function afterLogin(data) {
  state.token = data.token;
  state.user = data.user;
  localStorage.setItem('atome.token', data.token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('me').textContent = `${data.user.display_name} (${data.user.phone_e164})`;
  showInfo('');
  await refresh();
}

function loginBody() {
  const body = { phone_e164: $('phone').value };
  if ($('name').value.trim()) body.display_name = $('name').value.trim();
  return body;
}

action('send-code', async () => {
  await api('POST', '/auth/otp/request', { phone_e164: $('phone').value });
  showInfo('Code sent: type it below. (On a development server the code is in the server\'s log, '
    + 'or in sms_outbox.jsonl in its data folder.)');
  $('code').focus();
});

action('verify', async () => {
  await afterLogin(await api('POST', '/auth/otp/verify', { ...loginBody(), code: $('code').value.trim() }));
  await rejoinAfterReload();
});

action('dev-login', async () => {
  await afterLogin(await api('POST', '/auth/dev-login', loginBody()));
  await rejoinAfterReload();
});

action('logout', async () => {
  await leave();
  await api('POST', '/auth/logout', {}).catch(() => {});
  localStorage.removeItem('atome.token');
  location.reload();
});

// Enter submits: the field's own button.
const ENTER = { phone: 'send-code', name: 'send-code', code: 'verify', 'contact-phone': 'add-contact', 'room-name': 'create-room' };
for (const [field, button] of Object.entries(ENTER)) {
  $(field).addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      $(button).click();
    }
  });
}

// ---------------------------------------------------------------- contacts and rooms

function item(text, ...children) {
  const li = document.createElement('li');
  li.append(text, ...children);
  return li;
}

async function refresh() {
  const [requests, contacts, rooms] = await Promise.all([
    api('GET', '/contacts/requests'),
    api('GET', '/contacts'),
    api('GET', '/rooms'),
  ]);
  $('incoming').replaceChildren(...requests.incoming.map((r) => {
    const li = item(`${r.from.display_name} (${r.from.phone_e164}) wants to connect `);
    li.dataset.requestId = r.request_id;
    for (const [label, decision] of [['Accept', 'accepted'], ['Reject', 'rejected']]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.className = decision;
      action(b, async () => {
        await api('POST', '/contacts/respond', { request_id: r.request_id, decision });
        await refresh();
      });
      li.append(b);
    }
    return li;
  }));
  $('outgoing').replaceChildren(...requests.outgoing.map((r) => item(`Waiting for ${r.to.phone_e164} to accept`)));
  $('connections').replaceChildren(...contacts.contacts.map((c) => {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = c.phone_e164;
    box.dataset.phone = c.phone_e164;
    return item(box, ` ${c.display_name} (${c.phone_e164})`);
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
  if (state.roomId && rooms.rooms.some((r) => r.room_id === state.roomId)) select.value = state.roomId;
}
setInterval(() => { if (state.token && state.user) refresh().catch(() => {}); }, 2000);

action('add-contact', async () => {
  const r = await api('POST', '/contacts/request', { to_phone_e164: $('contact-phone').value });
  $('contact-phone').value = '';
  showInfo(r.status === 'accepted' ? 'Connected.' : 'Request sent: they will see it when they log in.');
  await refresh();
});

action('create-room', async () => {
  const name = $('room-name').value.trim();
  const r = await api('POST', '/rooms', name ? { name } : {});
  $('room-name').value = '';
  await refresh();
  $('room-list').value = r.room_id;
  showInfo('Room created: tick connections and invite them.');
});

action('invite', async () => {
  const roomId = $('room-list').value;
  if (!roomId) throw new Error('Create or choose a room first.');
  const phones = [...document.querySelectorAll('#connections input:checked')].map((b) => b.value);
  if (!phones.length) throw new Error('Tick the connections to invite.');
  for (const p of phones) await api('POST', `/rooms/${roomId}/invite`, { to_phone_e164: p });
  showInfo(`Invited ${phones.length}.`);
});

// ---------------------------------------------------------------- the call's buttons

/** Every call button from the state: in a call, rejoining, or out. */
function setCallButtons() {
  const inCall = !!state.roomId;
  const live = inCall && !state.reconnecting && !!state.sendTransport;
  const busy = (id) => !!$(id).dataset.busy;
  $('join').disabled = inCall || busy('join');
  $('leave').disabled = !inCall || busy('leave');
  for (const id of ['mute', 'camera', 'screen']) $(id).disabled = !live || busy(id);
  $('mute').textContent = state.muted ? 'Unmute' : 'Mute';
  $('camera').textContent = state.cameraOff ? 'Camera on' : 'Camera off';
  $('screen').textContent = state.producers.screen ? 'Stop sharing' : 'Share screen';
  $('toggle-window').hidden = !inCall;
}
setOnCallChange(setCallButtons);

action('join', async () => {
  try {
    await join($('room-list').value);
    showInfo('');
  } catch (e) {
    if (!state.reconnecting) {
      // A first join that failed leaves nothing behind (no socket, no half call).
      const ws = state.ws;
      state.ws = null;
      state.roomId = null;
      saveCall(); // a reload does not try it again
      ws?.close();
      teardownMedia();
    }
    throw e;
  }
}, setCallButtons);
action('leave', leave, setCallButtons);
action('mute', () => setMuted(!state.producers.audio?.paused), setCallButtons);
action('camera', () => setCameraOff(!state.cameraOff), setCallButtons);
action('screen', toggleScreen, setCallButtons);

$('toggle-window').onclick = () => {
  const w = $('window');
  w.hidden = !w.hidden;
  $('toggle-window').textContent = w.hidden ? 'Open video window' : 'Close video window';
};

// ---------------------------------------------------------------- devices

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  for (const [kind, id, chosen] of [['videoinput', 'camera-select', state.cameraId], ['audioinput', 'mic-select', state.micId]]) {
    const select = $(id);
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren(...list.map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
      return o;
    }));
    if (chosen && list.some((d) => d.deviceId === chosen)) select.value = chosen;
    select.disabled = list.length === 0;
  }
}
navigator.mediaDevices?.addEventListener?.('devicechange', listDevices);

for (const [id, kind] of [['camera-select', 'video'], ['mic-select', 'audio']]) {
  $(id).addEventListener('change', async (ev) => {
    const select = ev.target;
    select.disabled = true;
    try {
      await switchDevice(kind, select.value);
    } catch (e) {
      showError(e.message || String(e));
    } finally {
      select.disabled = false;
    }
  });
}

// ---------------------------------------------------------------- start

/** After a reload mid-call (this tab's sessionStorage remembers it), back into that call. */
async function rejoinAfterReload() {
  const saved = savedCall();
  if (!saved?.roomId || state.roomId) return;
  Object.assign(state, { muted: !!saved.muted, cameraOff: !!saved.cameraOff, cameraId: saved.cameraId || '', micId: saved.micId || '' });
  $('room-list').value = saved.roomId;
  showInfo('Joining the call you were in...');
  $('join').click();
}

// After joining, the browser has given access: the devices now have their labels.
const joinButton = $('join');
const joinClick = joinButton.onclick;
joinButton.onclick = async (ev) => {
  await joinClick(ev);
  if (state.roomId) listDevices();
};
listDevices();
setCallButtons();
renderTiles();
window.atomeRequest = request; // for tests and debugging

if (state.token) {
  api('GET', '/auth/me')
    .then((d) => afterLogin({ token: state.token, user: d.user }))
    .then(rejoinAfterReload)
    .catch((e) => {
      if (e.status === 401) {
        localStorage.removeItem('atome.token');
        state.token = null;
      } else {
        showError(e.message);
      }
    });
}
