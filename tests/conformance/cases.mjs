// Conformance cases: signaling inputs whose answers the real mediasoup (shared/reference/mediasoup-ref)
// recorded into fixture.json, and which our server must answer the same way (conformance.test.mjs).
//
// A case is a list of steps, each one WebSocket message from a peer ('A', 'B', ...). Every peer of
// a case is a fresh user logged in, authenticated on its own socket, and allowed into one public room
// (HTTP join); it enters the room only with an explicit joinRoom step. Strings starting with `$` are
// placeholders: `$room`, `$joinToken`, `$routerCaps` (from the HTTP join), `$recvCaps` and
// `$sendCaps` (the peer's device.rtpCapabilities and device.sendRtpCapabilities, computed by
// mediasoup-client's own ortc functions from CHROME and the router's capabilities), and
// `$label.path` (a field of the reply to the step labelled `label`; a step whose label was refused
// is skipped). A step:
//   by       the peer sending it
//   msg      the message (requestId added by the runner), or raw: the exact text to send
//   as       a label for later placeholders and for the fixture (default: <type>#<index>)
//   keep     reply fields to record (default: runner.mjs KEEP for the reply's type)
//   refuse   our error code, required when the reference refuses the step (it says `internal`)
//   deliberate {code, reason}: the reference accepts, we refuse with `code` on purpose
//   literal  {type, requestId}: no reference answer exists; ours must be this (requestId: raw text)
// A peer's `recv`/`send` option transforms its device capabilities (a peer lacking RTX, ...).

export const URI = {
  mid: 'urn:ietf:params:rtp-hdrext:sdes:mid',
  rid: 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  rrid: 'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
  absSendTime: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  twcc: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  audioLevel: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  orientation: 'urn:3gpp:video-orientation',
  toffset: 'urn:ietf:params:rtp-hdrext:toffset',
  playoutDelay: 'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay',
  absCaptureTime: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time',
  framemarking07: 'http://tools.ietf.org/html/draft-ietf-avtext-framemarking-07',
  framemarking: 'urn:ietf:params:rtp-hdrext:framemarking',
  videoLayersAllocation: 'http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00',
};

const fb = (...list) => list.map((s) => {
  const [type, parameter] = s.split(' ');
  return parameter ? { type, parameter } : { type };
});
const VIDEO_FB = fb('goog-remb', 'transport-cc', 'ccm fir', 'nack', 'nack pli');
const cap = (kind, mime, pt, clockRate, parameters = {}, rtcpFeedback = [], channels) =>
  ({ kind, mimeType: `${kind}/${mime}`, preferredPayloadType: pt, clockRate, channels, parameters, rtcpFeedback });
const vcap = (mime, pt, parameters) => cap('video', mime, pt, 90000, parameters, VIDEO_FB);
const rtxcap = (pt, apt) => cap('video', 'rtx', pt, 90000, { apt });
const h264params = (plid, mode) => ({ 'level-asymmetry-allowed': 1, 'packetization-mode': mode, 'profile-level-id': plid });
const ext = (kind, uri, preferredId) => ({ kind, uri, preferredId });

/** Chrome's native capabilities (its SDP offer, as mediasoup-client's Chrome111 handler reads it). */
export const CHROME = {
  codecs: [
    cap('audio', 'opus', 111, 48000, { minptime: 10, useinbandfec: 1 }, fb('transport-cc'), 2),
    cap('audio', 'G722', 9, 8000, {}, [], 1),
    cap('audio', 'PCMU', 0, 8000, {}, [], 1),
    vcap('VP8', 96), rtxcap(97, 96),
    vcap('H264', 102, h264params('42001f', 1)), rtxcap(103, 102),
    vcap('H264', 104, h264params('42001f', 0)), rtxcap(105, 104),
    vcap('H264', 106, h264params('42e01f', 1)), rtxcap(107, 106),
    vcap('H264', 108, h264params('42e01f', 0)), rtxcap(109, 108),
    vcap('AV1', 45, { 'level-idx': 5, profile: 0, tier: 0 }), rtxcap(46, 45),
    vcap('VP9', 98, { 'profile-id': 0 }), rtxcap(99, 98),
    vcap('VP9', 100, { 'profile-id': 2 }), rtxcap(101, 100),
  ],
  headerExtensions: [
    ext('audio', URI.audioLevel, 1), ext('audio', URI.absSendTime, 2), ext('audio', URI.twcc, 3), ext('audio', URI.mid, 4),
    ext('video', URI.toffset, 14), ext('video', URI.absSendTime, 2), ext('video', URI.orientation, 13), ext('video', URI.twcc, 3),
    ext('video', URI.playoutDelay, 5), ext('video', 'http://www.webrtc.org/experiments/rtp-hdrext/video-content-type', 6),
    ext('video', 'http://www.webrtc.org/experiments/rtp-hdrext/video-timing', 7),
    ext('video', 'http://www.webrtc.org/experiments/rtp-hdrext/color-space', 8), ext('video', URI.mid, 4),
    ext('video', URI.rid, 10), ext('video', URI.rrid, 11),
  ],
};

// ---------- producer rtpParameters as mediasoup-client sends them from Chrome ----------

const hx = (uri, id) => ({ uri, id, encrypt: false, parameters: {} });
const AUDIO_EXTS = [hx(URI.mid, 4), hx(URI.absSendTime, 2), hx(URI.twcc, 3), hx(URI.audioLevel, 1)];
const VIDEO_EXTS = [hx(URI.mid, 4), hx(URI.rid, 10), hx(URI.rrid, 11), hx(URI.absSendTime, 2), hx(URI.twcc, 3),
  hx(URI.orientation, 13), hx(URI.toffset, 14)];
const codec = (mimeType, payloadType, clockRate, parameters = {}, rtcpFeedback = [], channels) =>
  ({ mimeType, payloadType, clockRate, channels, parameters, rtcpFeedback });
const OPUS = codec('audio/opus', 111, 48000, { minptime: 10, useinbandfec: 1 }, fb('transport-cc'), 2);
const video = (mime, pt, parameters) => codec(`video/${mime}`, pt, 90000, parameters, VIDEO_FB);
const rtx = (pt, apt) => codec('video/rtx', pt, 90000, { apt });
const VP8 = video('VP8', 96);
const VP9 = video('VP9', 98, { 'profile-id': 0 });
const H264 = video('H264', 106, h264params('42e01f', 1));
const CNAME = 'chrome-cname';

/** rtpParameters of one track: `codecs`, encodings (default one SSRC, with RTX when a codec is RTX). */
function rtp(kind, codecs, { mid = '0', encodings, cname = CNAME, ssrc = kind === 'audio' ? 11110001 : 22220001 } = {}) {
  const withRtx = codecs.some((c) => c.mimeType.endsWith('/rtx'));
  return {
    mid,
    codecs,
    headerExtensions: kind === 'audio' ? AUDIO_EXTS : VIDEO_EXTS,
    encodings: encodings ?? [withRtx ? { ssrc, rtx: { ssrc: ssrc + 1 } } : { ssrc }],
    rtcp: { cname, reducedSize: true },
  };
}
const opusParams = (parameters, more) => rtp('audio', [{ ...OPUS, parameters }], more);
const vp8Params = (parameters = {}, more) => rtp('video', [{ ...VP8, parameters }, rtx(97, 96)], more);
const h264Params = (parameters, more) => rtp('video', [{ ...H264, parameters }, rtx(107, 106)], more);

// ---------- device capability transforms (peers unlike Chrome) ----------

const isRtx = (c) => /\/rtx$/i.test(c.mimeType);
const mapCodecs = (f) => (caps) => ({ ...caps, codecs: caps.codecs.flatMap((c) => f(c) ?? []) });
const dropExtensions = (...uris) => (caps) => ({ ...caps, headerExtensions: caps.headerExtensions.filter((e) => !uris.includes(e.uri)) });
const dropFeedback = (type) => mapCodecs((c) => ({ ...c, rtcpFeedback: c.rtcpFeedback.filter((f) => f.type !== type) }));
const pipe = (...fs) => (caps) => fs.reduce((c, f) => f(c), caps);
const noRtx = mapCodecs((c) => (isRtx(c) ? null : c));
const noKind = (kind) => mapCodecs((c) => (c.kind === kind ? null : c));
const noH264 = (caps) => {
  const pts = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/h264').map((c) => c.preferredPayloadType);
  return mapCodecs((c) => (pts.includes(c.preferredPayloadType) || pts.includes(c.parameters?.apt) ? null : c))(caps);
};
const noTransportCc = pipe(dropFeedback('transport-cc'), dropExtensions(URI.twcc));
const noBweExtensions = dropExtensions(URI.twcc, URI.absSendTime);
const otherIds = (caps) => ({
  ...caps,
  headerExtensions: caps.headerExtensions.map((e) => ({ ...e, preferredId: { [URI.mid]: 9, [URI.twcc]: 7, [URI.absSendTime]: 8 }[e.uri] ?? e.preferredId })),
});
const h264ProfileInSendCaps = (plid) =>
  mapCodecs((c) => (c.mimeType === 'video/H264' ? { ...c, parameters: { ...c.parameters, 'profile-level-id': plid } } : c));

// ---------- steps ----------

const join = (by, keep) => ({ by, msg: { type: 'joinRoom', room_id: '$room', join_token: '$joinToken', rtpCapabilities: '$recvCaps' }, as: `join${by}`, keep });
const sendTransport = (by = 'A', as = 'send', more = {}) =>
  ({ by, msg: { type: 'createTransport', direction: 'send', rtpCapabilities: '$sendCaps' }, as, ...more });
const recvTransport = (by = 'B', as = 'recv', more = {}) => ({ by, msg: { type: 'createTransport', direction: 'recv' }, as, ...more });

function hexBytes(n) {
  return Array.from({ length: n }, (_, i) => ((i * 37 + 11) % 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
}
const BYTES = { 'sha-1': 20, 'sha-224': 28, 'sha-256': 32, 'sha-384': 48, 'sha-512': 64, md5: 16 };
/** dtlsParameters with a fake fingerprint per algorithm (nothing checks it before DTLS). */
const dtls = (role, ...algorithms) => ({
  ...(role === undefined ? {} : { role }),
  fingerprints: algorithms.map((algorithm) => ({ algorithm, value: hexBytes(BYTES[algorithm]) })),
});
const connect = (by, transport, dtlsParameters, more = {}) =>
  ({ by, msg: { type: 'connectTransport', transport_id: `$${transport}.transportOptions.id`, dtlsParameters }, ...more });
const produce = (kind, rtpParameters, more = {}, transport = 'send', by = 'A') =>
  ({ by, msg: { type: 'produce', transport_id: `$${transport}.transportOptions.id`, kind, rtpParameters, appData: {} }, ...more });
const consume = (producer, more = {}, transport = 'recv', by = 'B') =>
  ({ by, msg: { type: 'consume', transport_id: `$${transport}.transportOptions.id`, producer_id: `$${producer}.producer_id` }, ...more });

/**
 * A call: A joins, creates a send transport, connects it, produces each of `produce` (labels p0,
 * p1, ...); then B joins (with `recv` capabilities), creates a receive transport and consumes every
 * producer (labels c0, c1, ...; `consume` false: not consumed, a string: our code refusing each
 * consume). A `produce` entry is [kind, rtpParameters, step options].
 */
function call(name, about, { produce: list, recv, send, consume: consumed = true }) {
  const steps = [join('A'), sendTransport(), connect('A', 'send', dtls('client', 'sha-256'), { as: 'connect' })];
  list.forEach(([kind, params, more = {}], i) => steps.push(produce(kind, params, { as: `p${i}`, ...more })));
  if (consumed) {
    const refuse = typeof consumed === 'string' ? { refuse: consumed } : {};
    steps.push(join('B'), recvTransport());
    list.forEach((_, i) => steps.push(consume(`p${i}`, { as: `c${i}`, ...refuse })));
  }
  return { name, about, peers: { A: { send }, B: { recv } }, steps };
}

/** `steps` of A's after A joins and creates a send transport. */
const afterSendTransport = (name, about, steps) => ({ name, about, steps: [join('A'), sendTransport(), ...steps] });

const SIMULCAST_3 = (mode, rtxSsrc) => [0, 1, 2].map((l) => ({
  ...(rtxSsrc ? { ssrc: 7001 + 2 * l, rtx: { ssrc: 7002 + 2 * l } } : { rid: `r${l}` }),
  ...(mode ? { scalabilityMode: mode } : {}),
  maxBitrate: 150000 * (l + 1),
}));

// ---------- the cases ----------

export const CASES = [
  // Router capabilities and transports.
  { name: 'router/capabilities', about: "the router's rtpCapabilities as roomJoined gives them",
    steps: [join('A', ['rtpCapabilities', 'existingProducers'])] },
  { name: 'transport/send', about: 'createTransport send with device.sendRtpCapabilities',
    steps: [join('A'), sendTransport('A', 'send', { keep: ['direction', 'transportOptions'] })] },
  { name: 'transport/recv', about: 'createTransport recv',
    steps: [join('A'), recvTransport('A', 'recv', { keep: ['direction', 'transportOptions'] })] },
  afterSendTransport('transport/connect-role-client', 'the role a browser sends', [connect('A', 'send', dtls('client', 'sha-256'))]),
  afterSendTransport('transport/connect-role-server', 'the server becomes the DTLS client', [connect('A', 'send', dtls('server', 'sha-256'))]),
  afterSendTransport('issue11/6-connect-role-auto', 'mediasoup: anything but client makes the server the DTLS client',
    [connect('A', 'send', dtls('auto', 'sha-256'))]),
  afterSendTransport('issue11/6-connect-no-role', 'no role: as auto', [connect('A', 'send', dtls(undefined, 'sha-256'))]),
  afterSendTransport('transport/connect-sha-1', 'sha-1 only: str0m verifies sha-1 too', [connect('A', 'send', dtls('client', 'sha-1'))]),
  afterSendTransport('issue11/7-connect-sha-512', 'only a sha-512 fingerprint (pymediasoup sends this)', [connect('A', 'send', dtls('client', 'sha-512'), {
    deliberate: { code: 'unsupported_fingerprint', reason: 'str0m 0.25 verifies only sha-256 and sha-1 fingerprints: refused at connectTransport instead of a transport that dies at the DTLS handshake' },
  })]),
  afterSendTransport('issue11/7-connect-sha-384', 'only a sha-384 fingerprint', [connect('A', 'send', dtls('client', 'sha-384'), {
    deliberate: { code: 'unsupported_fingerprint', reason: 'str0m 0.25 verifies only sha-256 and sha-1 fingerprints' },
  })]),
  afterSendTransport('transport/connect-sha-512-and-sha-256', 'one verifiable fingerprint among others is enough',
    [connect('A', 'send', dtls('client', 'sha-512', 'sha-256'))]),
  afterSendTransport('transport/connect-unknown-algorithm', 'a fingerprint algorithm DTLS does not define',
    [connect('A', 'send', dtls('client', 'md5'), { refuse: 'invalid_parameters' })]),
  afterSendTransport('transport/connect-no-fingerprint', 'fingerprints: []',
    [connect('A', 'send', dtls('client'), { refuse: 'invalid_parameters' })]),
  afterSendTransport('transport/connect-twice', 'a second connectTransport on the same transport', [
    connect('A', 'send', dtls('client', 'sha-256'), { as: 'first' }),
    connect('A', 'send', dtls('client', 'sha-256'), { as: 'second', refuse: 'already_connected' }),
  ]),
  afterSendTransport('transport/connect-unknown-id', 'a transport id nobody was given', [
    { by: 'A', msg: { type: 'connectTransport', transport_id: 'no-such-transport', dtlsParameters: dtls('client', 'sha-256') }, refuse: 'not_found' },
  ]),
  { name: 'issue11/10-send-caps-empty', about: 'createTransport send with rtpCapabilities {}',
    steps: [join('A'), { by: 'A', msg: { type: 'createTransport', direction: 'send', rtpCapabilities: {} }, deliberate: {
      code: 'invalid_parameters', reason: 'the reference ignores createTransport capabilities; ours builds the send transport from them (docs/architecture.md: the PT table is fixed at createTransport), so capabilities without codecs are refused there, not at produce' } }] },
  { name: 'transport/bad-direction', about: 'direction is neither send nor recv',
    steps: [join('A'), { by: 'A', msg: { type: 'createTransport', direction: 'sideways' }, refuse: 'invalid_message' }] },

  // Signaling envelope.
  { name: 'signaling/before-join', about: 'createTransport before joinRoom',
    steps: [{ by: 'A', msg: { type: 'createTransport', direction: 'recv' }, refuse: 'not_in_room' }] },
  { name: 'signaling/unknown-type', about: 'a message type nobody defines',
    steps: [join('A'), { by: 'A', msg: { type: 'teleport' }, refuse: 'invalid_message' }] },
  { name: 'signaling/invalid-json', about: 'a frame that is not JSON',
    steps: [join('A'), { by: 'A', raw: '{"type":"createTransport",', refuse: 'invalid_message' }] },
  ...Object.entries({ '2^64': '18446744073709551616', 'minus-zero': '-0', 'one-point-zero': '1.0', string: '"x"', object: '{"a":[1]}' }).map(([what, id]) => ({
    name: `issue11/9-request-id-${what}`,
    about: 'requestId is echoed byte for byte (the reference has no ping: the expected answer is written here)',
    steps: [{ by: 'A', raw: `{"type":"ping","requestId":${id}}`, literal: { type: 'pong', requestId: id } }],
  })),

  // Opus.
  call('opus/chrome', "Chrome's Opus, consumed by Chrome", { produce: [['audio', opusParams({ minptime: 10, useinbandfec: 1 })]] }),
  call('opus/consumer-without-transport-cc', 'the consumer has neither transport-cc feedback nor its extension',
    { produce: [['audio', opusParams({ minptime: 10, useinbandfec: 1 })]], recv: noTransportCc }),
  call('issue11/3-opus-stereo-dtx', 'stereo parameters reach the consumer as the producer sent them',
    { produce: [['audio', opusParams({ stereo: 1, 'sprop-stereo': 1, usedtx: 1 })]] }),
  call('opus/string-parameter', 'useinbandfec given as a string is kept a string',
    { produce: [['audio', opusParams({ minptime: 10, useinbandfec: '1' })]] }),
  call('opus/mono', 'channels 1: the router has Opus 48000/2 only',
    { produce: [['audio', rtp('audio', [{ ...OPUS, channels: 1 }]), { refuse: 'unsupported_codec' }]] }),
  call('opus/no-channels', 'channels missing counts as 1 for audio (mediasoup)',
    { produce: [['audio', rtp('audio', [{ ...OPUS, channels: undefined }]), { refuse: 'unsupported_codec' }]] }),
  call('opus/dtx-encoding', 'encodings [{ssrc, dtx: true}]',
    { produce: [['audio', opusParams({ minptime: 10, useinbandfec: 1, usedtx: 1 }, { encodings: [{ ssrc: 11110001, dtx: true }] })]] }),
  call('opus/no-rtcp-cname', 'rtcp without cname: the consumer gets a generated one',
    { produce: [['audio', { ...opusParams({ minptime: 10, useinbandfec: 1 }), rtcp: {} }]] }),

  // VP8: accepted shapes, consumer variants.
  call('vp8/rtx', 'VP8 with RTX, consumed by Chrome', { produce: [['video', vp8Params()]] }),
  call('vp8/no-rtx', 'VP8 without RTX', { produce: [['video', rtp('video', [VP8])]] }),
  call('vp8/consumer-without-rtx', 'the consumer supports no RTX', { produce: [['video', vp8Params()]], recv: noRtx }),
  call('vp8/consumer-without-transport-cc', 'the consumer lacks transport-cc (feedback and extension)',
    { produce: [['video', vp8Params()]], recv: noTransportCc }),
  call('vp8/consumer-without-bwe-extensions', 'the consumer has neither transport-cc nor abs-send-time extensions',
    { produce: [['video', vp8Params()]], recv: noBweExtensions }),
  call('vp8/consumer-other-extension-ids', 'the consumer numbers mid, transport-cc and abs-send-time 9, 7, 8',
    { produce: [['video', vp8Params()]], recv: otherIds }),
  call('vp8/unknown-parameters', 'fmtp parameters the router does not know are carried to the consumer',
    { produce: [['video', vp8Params({ 'x-google-max-bitrate': 2000, foo: 'bar' })]] }),
  call('vp8/float-parameter', 'a fmtp value that is a non-integer number', { produce: [['video', vp8Params({ 'x-test': 1.5 })]] }),
  call('vp8/boolean-parameter', 'a fmtp value that is neither string nor number',
    { produce: [['video', vp8Params({ foo: true }), { refuse: 'invalid_message' }]] }),
  call('vp8/mime-case', 'mimeType VIDEO/vp8', { produce: [['video', rtp('video', [{ ...VP8, mimeType: 'VIDEO/vp8' }, rtx(97, 96)])]] }),
  call('vp8/scalability-mode-and-max-bitrate', 'encoding scalabilityMode L1T3 and maxBitrate',
    { produce: [['video', vp8Params({}, { encodings: [{ ssrc: 22220001, rtx: { ssrc: 22220002 }, scalabilityMode: 'L1T3', maxBitrate: 900000 }] })]] }),
  call('vp8/extension-unknown-to-str0m', 'the producer announces an extension str0m does not know',
    { produce: [['video', { ...vp8Params(), headerExtensions: [...VIDEO_EXTS, hx(URI.videoLayersAllocation, 12)] }]] }),
  call('vp8/extension-id-15', 'an extension id above 14 (two-byte header)',
    { produce: [['video', { ...vp8Params(), headerExtensions: VIDEO_EXTS.map((e) => (e.uri === URI.orientation ? { ...e, id: 15 } : e)) }]] }),
  call('vp8/two-producers-two-cnames', 'a second producer on the same transport with another cname', {
    produce: [['audio', opusParams({ minptime: 10, useinbandfec: 1 }, { cname: 'first-cname' })],
      ['video', vp8Params({}, { mid: '1', cname: 'second-cname' })]],
  }),

  // VP8: refused shapes.
  call('vp8/wrong-clock-rate', 'VP8 at 48000 Hz', { produce: [['video', rtp('video', [{ ...VP8, clockRate: 48000 }]), { refuse: 'unsupported_codec' }]] }),
  call('vp8/wrong-kind', 'kind audio with VP8 codecs', { produce: [['audio', vp8Params(), { deliberate: {
    code: 'invalid_parameters', reason: "mediasoup never compares kind with the codecs' MIME types and makes an audio consumer with VP8 codecs, which no client can receive" } }]] }),
  call('vp8/invalid-kind', 'kind "data"', { produce: [['data', vp8Params(), { refuse: 'invalid_message' }]] }),
  call('vp8/dangling-rtx-apt', 'RTX whose apt names no codec',
    { produce: [['video', rtp('video', [VP8, rtx(97, 50)]), { refuse: 'invalid_parameters' }]] }),
  call('vp8/duplicate-payload-type', 'VP8 and its RTX both on payload type 96',
    { produce: [['video', rtp('video', [VP8, rtx(96, 96)]), { refuse: 'invalid_parameters' }]] }),
  call('vp8/missing-clock-rate', 'a codec without clockRate',
    { produce: [['video', rtp('video', [{ ...VP8, clockRate: undefined }]), { refuse: 'invalid_message' }]] }),
  call('vp8/missing-codecs', 'rtpParameters without codecs',
    { produce: [['video', { ...vp8Params(), codecs: undefined }, { refuse: 'invalid_message' }]] }),
  call('vp8/no-encodings', 'encodings: []', { produce: [['video', vp8Params({}, { encodings: [] }), { deliberate: {
    code: 'invalid_parameters',
    reason: 'the engine maps a received stream by its SSRC, or (simulcast) by its rid; mediasoup also takes a single encoding with neither and learns the SSRC from the first packet by mid alone, which mediasoup-client never sends' } }]] }),
  call('vp8/rtx-ssrc-equals-ssrc', 'encoding {ssrc: 5000, rtx: {ssrc: 5000}}',
    { produce: [['video', vp8Params({}, { encodings: [{ ssrc: 5000, rtx: { ssrc: 5000 } }] }), { refuse: 'duplicate_ssrc' }]] }),
  call('produce/unsupported-codec-av1', 'AV1: the router does not have it',
    { produce: [['video', rtp('video', [video('AV1', 45, { 'level-idx': 5, profile: 0, tier: 0 }), rtx(46, 45)]), { refuse: 'unsupported_codec' }]] }),
  call('issue11/4-simulcast', 'three encodings, three SSRCs with RTX, no scalabilityMode: the consumer gets one L3T1 encoding',
    { produce: [['video', vp8Params({}, { encodings: SIMULCAST_3(undefined, true) })]] }),
  call('simulcast/rid-l1t3', 'three rid encodings (mediasoup-client in Chrome), L1T3: the consumer gets one L3T3 encoding with the largest maxBitrate',
    { produce: [['video', vp8Params({}, { encodings: SIMULCAST_3('L1T3', false) })]] }),
  call('simulcast/two-rids', 'two rid encodings, L1T2', { produce: [['video', vp8Params({}, { encodings: SIMULCAST_3('L1T2', false).slice(0, 2) })]] }),
  call('simulcast/audio', 'Opus with two encodings: no simulcast for audio',
    { produce: [['audio', opusParams({}, { encodings: [{ ssrc: 8001 }, { ssrc: 8002 }] }), { refuse: 'unsupported_simulcast' }]] }),
  call('simulcast/svc-layers', 'two encodings, one of them L3T3: simulcast and SVC spatial layers together',
    { produce: [['video', vp8Params({}, { encodings: [{ rid: 'a' }, { rid: 'b', scalabilityMode: 'L3T3' }] }), { refuse: 'invalid_parameters' }]] }),
  call('simulcast/no-id', 'two encodings, the second with neither ssrc nor rid',
    { produce: [['video', vp8Params({}, { encodings: [{ rid: 'a' }, { maxBitrate: 100000 }] }), { refuse: 'invalid_parameters' }]] }),
  call('simulcast/h264', 'H264 with three rid encodings', {
    produce: [['video', h264Params(h264params('42e01f', 1), { encodings: SIMULCAST_3('L1T3', false) })]],
    consume: false,
  }),

  // VP9.
  call('vp9/rtx', 'VP9 profile 0 with RTX', { produce: [['video', rtp('video', [VP9, rtx(99, 98)])]] }),
  call('vp9/profile-2', 'VP9 profile 2: the router has profile 0',
    { produce: [['video', rtp('video', [{ ...VP9, payloadType: 100, parameters: { 'profile-id': 2 } }, rtx(101, 100)]), { refuse: 'unsupported_codec' }]] }),
  call('vp9/profile-id-string', 'profile-id "0" (a string): mediasoup compares it with !== to the number 0',
    { produce: [['video', rtp('video', [{ ...VP9, parameters: { 'profile-id': '0' } }, rtx(99, 98)]), { refuse: 'unsupported_codec' }]] }),
  call('vp9/no-profile-id', 'VP9 without profile-id (means 0)', { produce: [['video', rtp('video', [{ ...VP9, parameters: {} }, rtx(99, 98)])]] }),

  // H264.
  call('h264/constrained-baseline', 'H264 42e01f, packetization-mode 1, with RTX', { produce: [['video', h264Params(h264params('42e01f', 1))]] }),
  call('h264/level-3.4-asymmetry', 'level 3.4 with level-asymmetry-allowed on both sides', { produce: [['video', h264Params(h264params('42e034', 1))]] }),
  call('h264/level-3.4-no-asymmetry', 'level 3.4 without level-asymmetry-allowed: the answer level is the lower one',
    { produce: [['video', h264Params({ 'packetization-mode': 1, 'profile-level-id': '42e034' })]] }),
  call('h264/no-profile-level-id', 'no profile-level-id (means 42e01f)', { produce: [['video', h264Params({ 'packetization-mode': 1 })]] }),
  call('h264/uppercase-profile-level-id', 'profile-level-id 42E01F', { produce: [['video', h264Params(h264params('42E01F', 1))]] }),
  call('h264/packetization-mode-0', 'packetization-mode 0: the router has 1',
    { produce: [['video', h264Params(h264params('42e01f', 0)), { refuse: 'unsupported_codec' }]] }),
  call('h264/packetization-mode-string', 'packetization-mode "1" (a string): mediasoup compares it with !== to the number 1',
    { produce: [['video', h264Params(h264params('42e01f', '1')), { refuse: 'unsupported_codec' }]] }),
  call('issue11/2-h264-number-640032', 'profile-level-id as the number 640032 (sdp-transform turns digits into numbers)',
    { produce: [['video', h264Params(h264params(640032, 1)), { refuse: 'unsupported_codec' }]] }),
  call('issue11/2-h264-baseline-42001f', 'profile-level-id 42001f: Baseline, not Constrained Baseline',
    { produce: [['video', h264Params(h264params('42001f', 1)), { refuse: 'unsupported_codec' }]] }),
  call('issue11/1-h264-a-acute', 'profile-level-id "aé" in the send capabilities and the producer; then VP8 on the same transport still works', {
    send: h264ProfileInSendCaps('aé'),
    produce: [['video', h264Params(h264params('aé', 1)), { refuse: 'unsupported_codec' }],
      ['video', vp8Params({}, { mid: '1', ssrc: 22230001 })]],
  }),
  call('h264/consumer-without-h264', 'the consumer supports no H264',
    { produce: [['video', h264Params(h264params('42e01f', 1))]], recv: noH264, consume: 'cannot_consume' }),

  // Several producers on one transport: SSRC and mid uniqueness (issue 11, item 5).
  afterSendTransport('issue11/5-rtx-ssrc-reused-by-audio', 'video {ssrc 1000, rtx 1001}, then audio on 1001', [
    produce('video', vp8Params({}, { encodings: [{ ssrc: 1000, rtx: { ssrc: 1001 } }] }), { as: 'video' }),
    produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }, { mid: '1', encodings: [{ ssrc: 1001 }] }), { as: 'audio', refuse: 'duplicate_ssrc' }),
  ]),
  afterSendTransport('issue11/5-same-mid', 'two producers with mid "0"', [
    produce('video', vp8Params({}, { mid: '0' }), { as: 'video' }),
    produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }, { mid: '0' }), { as: 'audio', refuse: 'duplicate_mid' }),
  ]),
  afterSendTransport('produce/same-ssrc-twice', 'audio on SSRC 2000, then video on SSRC 2000', [
    produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }, { encodings: [{ ssrc: 2000 }] }), { as: 'audio' }),
    produce('video', vp8Params({}, { mid: '1', encodings: [{ ssrc: 2000, rtx: { ssrc: 2001 } }] }), { as: 'video', refuse: 'duplicate_ssrc' }),
  ]),

  // Directions and consume edge cases.
  { name: 'produce/on-recv-transport', about: 'produce on a transport created with direction recv',
    steps: [join('A'), recvTransport('A', 'recv'), produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }), { deliberate: {
      code: 'wrong_direction', reason: 'our transports have one direction (docs/protocol.md createTransport); the reference, like mediasoup, lets any WebRtcTransport produce and consume' } }, 'recv')] },
  { name: 'consume/on-send-transport', about: 'consume on a transport created with direction send',
    steps: [join('A'), sendTransport(), produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }), { as: 'p' }),
      join('B'), sendTransport('B', 'bsend'), consume('p', { deliberate: {
        code: 'wrong_direction', reason: 'our transports have one direction (docs/protocol.md createTransport); mediasoup has none' } }, 'bsend')] },
  { name: 'consume/unknown-producer', about: 'producer_id that names no producer (a transport id)',
    steps: [join('A'), join('B'), recvTransport(), { by: 'B', msg: { type: 'consume', transport_id: '$recv.transportOptions.id', producer_id: '$recv.transportOptions.id' }, refuse: 'not_found' }] },
  call('consume/audio-without-audio-codecs', 'the consumer has no audio codec',
    { produce: [['audio', opusParams({ minptime: 10, useinbandfec: 1 })]], recv: noKind('audio'), consume: 'cannot_consume' }),
  { name: 'consume/twice', about: 'the same producer consumed twice on one transport: mediasoup gives mids 0 and 1',
    steps: [join('A'), sendTransport(), produce('video', vp8Params(), { as: 'p' }), join('B'), recvTransport(),
      consume('p', { as: 'c0' }), consume('p', { as: 'c1', deliberate: { code: 'already_consuming',
        reason: 'one consumer per producer and transport: a second one only multiplies the server egress (one subscriber took 250 consumers of one producer: 0.26 to 66.5 Mbit/s); a device plays one copy' } })] },
  { name: 'consume/own-producer', about: 'a peer consumes its own producer',
    steps: [join('A'), sendTransport(), produce('audio', opusParams({ minptime: 10, useinbandfec: 1 }), { as: 'p' }),
      recvTransport('A'), consume('p', {}, 'recv', 'A')] },
  { name: 'consume/resume-unknown', about: 'resumeConsumer of a consumer nobody has',
    steps: [join('A'), { by: 'A', msg: { type: 'resumeConsumer', consumer_id: 'no-such-consumer' }, refuse: 'not_found' }] },
];

/** A step's name in answers and in the fixture. */
export const labelOf = (step, i) => step.as ?? `${step.msg?.type ?? 'raw'}#${i}`;

/** Every deliberate difference: the paths below, then the steps marked `deliberate`. */
export function differences() {
  const steps = CASES.flatMap((c) => c.steps.flatMap((s, i) => (s.deliberate
    ? [{ case: c.name, step: labelOf(s, i), ours: s.deliberate.code, reason: s.deliberate.reason }] : [])));
  return [...PATHS, ...steps];
}

/** Reply fields where our answers differ from mediasoup's on purpose (paths as conformance.test.mjs prints them). */
const PATHS = [
  { path: 'rtpCapabilities.codecs[0].rtcpFeedback.nack',
    reason: "mediasoup 3.12 offers NACK for Opus; the engine keeps no audio for retransmission (a late Opus frame is useless to the receiver's jitter buffer), so the router does not offer it" },
  { path: 'rtpCapabilities.codecs[0].parameters.minptime',
    reason: "configuration, not an ORTC rule: our router's Opus carries minptime=10 (mediasoup copies a configured codec's parameters; the reference's configuration has none)" },
  { path: 'rtpCapabilities.codecs[0].parameters.useinbandfec',
    reason: "configuration: useinbandfec=1 reaches Chrome through mediasoup-client's SDP answer and turns its Opus FEC on" },
  { path: 'rtpCapabilities.codecs[*].parameters.x-google-start-bitrate',
    reason: "a parameter of the reference's router configuration (server.mjs MEDIA_CODECS), not of mediasoup's ORTC rules (it only reaches Chrome's start bitrate through mediasoup-client's SDP answer)" },
  { path: 'consumerOptions.type',
    reason: "an extra of the reference server (mediasoup's consumer.type): not in docs/protocol.md's consumerCreated, and mediasoup-client's transport.consume does not take it" },
  { path: 'consumerOptions.producerPaused',
    reason: "an extra of the reference server, not in docs/protocol.md's consumerCreated: adding it is a protocol decision, not an ORTC answer" },
  { path: 'transportOptions.dtlsParameters.fingerprints',
    reason: "mediasoup lists its certificate's fingerprint in five algorithms (sha-1 to sha-512); str0m gives sha-256, which every browser verifies" },
  { path: `rtpCapabilities.headerExtensions[video ${URI.playoutDelay}]`,
    reason: 'mediasoup supports playout-delay since 3.14 (versatica/mediasoup#1412, 2024), after the 3.12.16 recorded here; str0m supports it' },
  { path: `consumerOptions.rtpParameters.headerExtensions[${URI.playoutDelay}]`,
    reason: 'playout-delay is in our router capabilities (see above), so consumers whose device has it get it' },
  { path: `rtpCapabilities.headerExtensions[video ${URI.framemarking07}]`,
    reason: 'frame marking (mediasoup 3.12 lists two drafts of it) is not implemented by str0m; no browser sends it' },
  { path: `rtpCapabilities.headerExtensions[video ${URI.framemarking}]`,
    reason: 'frame marking is not implemented by str0m; no browser sends it' },
];
