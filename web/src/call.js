// The call: the signaling socket and what it tells (its requests: signaling.js), mediasoup-client's
// transports, and every way back into the call (a lost socket or media path, a server restart, a
// page reload).
import { Device } from 'mediasoup-client';
import { api, renderTiles, showError, showInfo, state } from './ui.js';
import { watchLayers } from './layers.js';
import { cameraOptions, constraints, getMedia } from './media.js';
import { answer, rejectPending, request, requestOn } from './signaling.js';

const params = new URLSearchParams(location.search);
// Test knob: which track to publish first (`audio-first` or the default video first).
const ORDER = params.get('order') === 'audio-first' ? ['audio', 'video'] : ['video', 'audio'];
// Which ICE candidates the transports may use: `all` (default) or `relay` (TURN only; tests, and
// networks where only a relay works).
const ICE_TRANSPORT_POLICY = params.get('iceTransportPolicy') === 'relay' ? 'relay' : 'all';
// How long an ICE restart may take before the call is joined again from scratch.
const ICE_RESTART_GRACE_MS = 12000;
// How long a request may go unanswered before the signaling socket is taken for dead (after a
// network change, its TCP connection is bound to an address that is gone: nothing comes back and
// the browser does not notice for minutes). Short: a live socket wrongly taken for dead costs one
// resume on a new socket, which replaces it.
const ANSWER_MS = 1500;
// Waits between attempts to get back into the call: 1, 2, 4 s, then every 5 s.
const RETRY_MS = [1000, 2000, 4000, 5000];

let retryTimer = null;
// Bumped by leave(): a join still on its way when the user left gives up instead of entering.
let generation = 0;
export let onCallChange = () => {};
export function setOnCallChange(fn) { onCallChange = fn; }

// ---------------------------------------------------------------- choices kept across reloads

const SAVED = 'atome.call';
export function saveCall() {
  if (!state.roomId) return sessionStorage.removeItem(SAVED);
  const { roomId, muted, cameraOff, cameraId, micId } = state;
  sessionStorage.setItem(SAVED, JSON.stringify({ roomId, muted, cameraOff, cameraId, micId }));
}
export function savedCall() {
  try {
    return JSON.parse(sessionStorage.getItem(SAVED) || 'null');
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- signaling

function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('Cannot reach the server.'));
    ws.onmessage = (ev) => onMessage(ws, JSON.parse(ev.data));
    ws.onclose = () => onSocketClosed(ws);
  });
}

function onMessage(ws, msg) {
  if (answer(msg) || ws !== state.ws) return;
  switch (msg.type) {
    case 'newProducer':
      consume(msg.producer_id, msg.peer_user_id, msg.appData?.source).catch((e) => console.warn('consume failed', e));
      break;
    case 'producerClosed':
      if (Object.values(state.producers).some((p) => p.id === msg.producer_id)) {
        // The server lost our media connection (closed, or silent too long): join again.
        rejoin('Media connection lost: reconnecting...');
        break;
      }
      state.closedProducers.add(msg.producer_id);
      for (const [id, c] of state.consumers) {
        if (c.consumer.producerId === msg.producer_id) {
          c.consumer.close();
          state.consumers.delete(id);
        }
      }
      renderTiles();
      break;
    case 'roomClosed':
      // The media worker of this call failed: join again (the server places the call anew).
      rejoin('The call was interrupted: reconnecting...');
      break;
    case 'sessionReplaced':
      // `resumed`: this page took its own session onto a new socket; this old one just closes.
      if (msg.reason === 'resumed') break;
      // This user joined the call again elsewhere (a reload, another tab): the server closes this
      // socket; leave quietly instead of joining back, which would in turn replace the other.
      state.leaving = true;
      state.roomId = null;
      saveCall();
      teardownMedia();
      onCallChange();
      showInfo('This call continues in another window.');
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
  rejectPending(ws);
  if (ws !== state.ws) return;
  state.ws = null;
  if (!state.roomId || state.leaving) return;
  if (!state.sendTransport || !state.resumeToken) {
    teardownMedia();
    reconnect(0);
    return;
  }
  // The signaling socket went away but the media may still flow: take the session back on a new
  // socket; only if the server no longer has it (a restart, too long away), join from scratch.
  showInfo('Connection lost: reconnecting...');
  resume()
    .then(() => {
      showInfo('Back in the call.');
      for (const t of [state.sendTransport, state.recvTransport]) if (t && t.connectionState !== 'connected') restartIce(t);
    })
    .catch((e) => {
      console.warn('resume failed', e);
      if (state.ws || !state.roomId || state.leaving) return;
      teardownMedia();
      reconnect(0);
    });
}

/** Gives the session up and joins the call again from scratch (new socket, new transports). */
function rejoin(message) {
  showInfo(message);
  const ws = state.ws;
  state.ws = null;
  if (ws) {
    rejectPending(ws);
    ws.close();
  }
  if (state.roomId && !state.leaving) {
    teardownMedia();
    reconnect(0);
  }
}

let resuming = null;
/** Takes this call's session back on a new socket (`resumeSession`), once at a time. */
function resume() {
  resuming ??= takeBack().finally(() => { resuming = null; });
  return resuming;
}

async function takeBack() {
  console.info('taking the session back on a new socket');
  const old = state.ws;
  const ws = await openSocket();
  let r;
  try {
    await requestOn(ws, 'auth', { token: state.token }, 5000);
    r = await requestOn(ws, 'resumeSession', { room_id: state.roomId, resume_token: state.resumeToken }, 5000);
  } catch (e) {
    ws.close();
    throw e;
  }
  if (!state.roomId || state.leaving || !state.sendTransport) {
    ws.close();
    throw new Error('You left the call.');
  }
  state.ws = ws;
  state.resumes += 1;
  if (old) {
    rejectPending(old);
    old.close();
  }
  if (r.iceServers?.length) state.iceServers = r.iceServers;
  // What was said to the lost socket is lost: the room as it is now.
  state.peers = new Map(r.peers.map((p) => [p.peer_user_id, p.display_name]));
  const live = new Map(r.existingProducers.map((p) => [p.producer_id, p]));
  for (const [id, c] of state.consumers) {
    if (!live.has(c.consumer.producerId)) {
      c.consumer.close();
      state.consumers.delete(id);
    }
  }
  const consumed = new Set([...state.consumers.values()].map((c) => c.consumer.producerId));
  for (const p of live.values()) {
    if (!consumed.has(p.producer_id)) consume(p.producer_id, p.peer_user_id, p.appData?.source).catch((e) => console.warn('consume failed', e));
  }
  renderTiles();
  onCallChange();
  return r;
}

/** Back into the call, retrying with growing waits (said on screen) until it works or we leave. */
function reconnect(attempt) {
  clearTimeout(retryTimer);
  state.reconnecting = true;
  onCallChange();
  const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
  showInfo(`Connection lost: reconnecting in ${wait / 1000} s${attempt ? ` (attempt ${attempt + 1})` : ''}...`);
  retryTimer = setTimeout(async () => {
    if (!state.roomId || state.leaving) return;
    try {
      await join(state.roomId);
      showInfo('Back in the call.');
    } catch (e) {
      console.warn('rejoin failed', e);
      teardownSocket();
      if (!state.roomId || state.leaving) return; // the user left meanwhile
      // Refusals that retrying cannot fix end the attempts.
      if (['not_allowed', 'not_found', 'unauthorized'].includes(e.code) || e.status === 401 || e.status === 403 || e.status === 404) {
        state.roomId = null;
        state.reconnecting = false;
        saveCall();
        onCallChange();
        showError(e.message);
        return;
      }
      reconnect(attempt + 1);
    }
  }, wait);
}

function teardownSocket() {
  const ws = state.ws;
  state.ws = null;
  ws?.close();
  teardownMedia();
}

// ---------------------------------------------------------------- the call

function wire(transport) {
  transport.on('connect', ({ dtlsParameters }, ok, fail) => {
    request('connectTransport', { transport_id: transport.id, dtlsParameters }).then(() => ok(), fail);
  });
  transport.on('connectionstatechange', (connectionState) => {
    console.info(`${transport.direction} transport ${connectionState}`);
    if (connectionState === 'disconnected' || connectionState === 'failed') restartIce(transport);
  });
}

// The network changed or the media path broke: new ICE parameters from the server, then
// RTCPeerConnection.restartIce(). If the transport is not connected again soon, rejoin.
async function restartIce(transport) {
  if (transport.closed || transport.restarting) return;
  transport.restarting = true;
  // Armed before asking: when the address changed, the signaling socket is as dead as the media
  // path (still OPEN, its TCP connection bound to the old address), and the request never answers.
  setTimeout(() => {
    transport.restarting = false;
    if (!transport.closed && transport.connectionState !== 'connected' && [state.sendTransport, state.recvTransport].includes(transport)) {
      rejoin('Media connection lost: reconnecting...');
    }
  }, ICE_RESTART_GRACE_MS);
  try {
    let r;
    try {
      r = await request('restartIce', { transport_id: transport.id }, { timeoutMs: ANSWER_MS });
    } catch (e) {
      if (!e.lost) throw e;
      // No answer: the signaling socket is as dead as the media path. Take the session back on
      // a new socket (from the new address) and ask there.
      await resume();
      if (transport.closed) return;
      r = await request('restartIce', { transport_id: transport.id }, { timeoutMs: ANSWER_MS });
    }
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

// A new network (Wi-Fi to mobile, a cable plugged in): restart ICE on both transports.
function onNetworkChange() {
  for (const t of [state.sendTransport, state.recvTransport]) if (t) restartIce(t);
}
window.addEventListener('online', onNetworkChange);
navigator.connection?.addEventListener?.('change', onNetworkChange);

export async function join(roomId) {
  if (!roomId) throw new Error('Create or choose a room first.');
  clearTimeout(retryTimer);
  const gen = generation;
  const joined = await api('POST', `/rooms/${roomId}/join`, {});
  if (gen !== generation) throw new Error('You left the call.');
  state.ws = await openSocket();
  await request('auth', { token: state.token });
  const device = new Device();
  await device.load({ routerRtpCapabilities: joined.rtpCapabilities });
  state.device = device;
  const room = await request('joinRoom', {
    room_id: roomId,
    join_token: joined.join_token,
    rtpCapabilities: device.rtpCapabilities,
  });
  if (gen !== generation) {
    const ws = state.ws;
    state.ws = null;
    ws?.close();
    throw new Error('You left the call.');
  }
  state.roomId = roomId;
  state.leaving = false;
  state.reconnecting = false;
  saveCall();
  state.peers = new Map(room.peers.map((p) => [p.peer_user_id, p.display_name]));
  state.iceServers = room.iceServers || [];
  state.resumeToken = room.resume_token;
  state.closedProducers = new Set();
  const ice = { iceServers: state.iceServers, iceTransportPolicy: ICE_TRANSPORT_POLICY };

  const send = await request('createTransport', { direction: 'send', rtpCapabilities: device.sendRtpCapabilities });
  const sendTransport = device.createSendTransport({ ...send.transportOptions, ...ice });
  state.sendTransport = sendTransport;
  wire(sendTransport);
  sendTransport.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
    request('produce', { transport_id: sendTransport.id, kind, rtpParameters, appData })
      .then((r) => ok({ id: r.producer_id }), fail);
  });
  const recv = await request('createTransport', { direction: 'recv' });
  state.recvTransport = device.createRecvTransport({ ...recv.transportOptions, ...ice });
  wire(state.recvTransport);

  onCallChange();
  renderTiles();
  for (const p of room.existingProducers) {
    // A producer may close before we consume it (its owner joining again at the same moment):
    // that is no reason to give up our own join.
    await consume(p.producer_id, p.peer_user_id, p.appData?.source).catch((e) => console.warn('producer gone before consumed', e));
  }
  const stream = await getMedia();
  state.localStream = stream;
  renderTiles();
  for (const kind of ORDER) {
    const track = kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    if (track) state.producers[kind] = await sendTransport.produce(kind === 'video' ? cameraOptions(track) : { track, appData: { source: 'mic' } });
  }
  if (state.muted && state.producers.audio) await setMuted(true);
  state.published = true;
  onCallChange();
}

async function consume(producerId, peerUserId, source) {
  if (!state.recvTransport) return;
  const transport = state.recvTransport;
  const r = await request('consume', { transport_id: transport.id, producer_id: producerId });
  const consumer = await transport.consume(r.consumerOptions);
  // The transport was replaced meanwhile, or the producer closed while we consumed it (its
  // producerClosed can come before our consume's answer): nothing to show.
  if (transport !== state.recvTransport || state.closedProducers.has(producerId)) return consumer.close();
  const entry = { consumer, peer: peerUserId, source };
  state.consumers.set(consumer.id, entry);
  renderTiles();
  watchLayers(entry, (spatialLayer) => request('setConsumerPreferredLayers', { consumer_id: consumer.id, spatialLayer }));
  await request('resumeConsumer', { consumer_id: consumer.id });
}

export function teardownMedia() {
  for (const c of state.consumers.values()) c.consumer.close();
  state.consumers.clear();
  for (const p of Object.values(state.producers)) {
    p.close();
    p.track?.stop();
  }
  state.producers = {};
  state.sendTransport?.close();
  state.recvTransport?.close();
  state.sendTransport = state.recvTransport = null;
  state.localStream?.getTracks().forEach((t) => t.stop());
  state.localStream = null;
  state.published = false;
  renderTiles();
}

export async function leave() {
  clearTimeout(retryTimer);
  generation += 1;
  if (!state.roomId) return;
  state.leaving = true;
  const roomId = state.roomId;
  // Forgotten at once: a reload right after the click (before the server answers) stays out.
  sessionStorage.removeItem(SAVED);
  await request('leaveRoom', { room_id: roomId }).catch(() => {});
  state.roomId = null;
  state.resumeToken = null;
  state.reconnecting = false;
  saveCall();
  teardownMedia();
  state.ws?.close();
  state.ws = null;
  showInfo('');
}

// ---------------------------------------------------------------- mute, camera, screen, devices

export async function setMuted(muted) {
  const p = state.producers.audio;
  if (!p) throw new Error('No microphone is published.');
  await request(muted ? 'pauseProducer' : 'resumeProducer', { producer_id: p.id });
  if (muted) p.pause();
  else p.resume();
  state.muted = muted;
  saveCall();
}

export async function setCameraOff(off) {
  const p = state.producers.video;
  if (off && p) {
    await request('closeProducer', { producer_id: p.id });
    p.close();
    p.track?.stop();
    delete state.producers.video;
    state.localStream?.getVideoTracks().forEach((t) => state.localStream.removeTrack(t));
  } else if (!off && !p) {
    const stream = await navigator.mediaDevices.getUserMedia({ video: constraints('video') });
    const track = stream.getVideoTracks()[0];
    state.localStream?.getVideoTracks().forEach((t) => { t.stop(); state.localStream.removeTrack(t); });
    state.localStream?.addTrack(track);
    state.producers.video = await state.sendTransport.produce(cameraOptions(track));
  }
  state.cameraOff = off;
  saveCall();
  renderTiles();
}

/** Shares the screen as a second video producer (appData.source = "screen"), or stops it. */
export async function toggleScreen() {
  if (state.producers.screen) return stopScreen();
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  const track = stream.getVideoTracks()[0];
  if (!state.sendTransport) {
    track.stop();
    return;
  }
  const producer = await state.sendTransport.produce({ track, appData: { source: 'screen' } });
  state.producers.screen = producer;
  // The browser's own "Stop sharing" ends the track.
  track.addEventListener('ended', () => { if (state.producers.screen === producer) stopScreen().catch(() => {}); });
  renderTiles();
  onCallChange();
}

async function stopScreen() {
  const p = state.producers.screen;
  if (!p) return;
  delete state.producers.screen;
  p.close();
  p.track?.stop();
  renderTiles();
  onCallChange();
  await request('closeProducer', { producer_id: p.id }).catch(() => {});
}

/** The camera or microphone to use, switched in the call with replaceTrack (no renegotiation). */
export async function switchDevice(kind, deviceId) {
  if (kind === 'video') state.cameraId = deviceId;
  else state.micId = deviceId;
  saveCall();
  const p = state.producers[kind];
  if (!p) return;
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints(kind) });
  const track = stream.getTracks()[0];
  const old = p.track;
  await p.replaceTrack({ track });
  if (kind === 'audio' && state.muted) track.enabled = false;
  state.localStream?.removeTrack(old);
  state.localStream?.addTrack(track);
  old?.stop();
  renderTiles();
}
