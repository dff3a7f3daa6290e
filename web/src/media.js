// The local camera and microphone: what is captured, and how the camera is published.
import { state } from './ui.js';

const params = new URLSearchParams(location.search);
// Simulcast of the camera, on by default (`?simulcast=0`: one encoding): three encodings of a
// 1280x720 capture (320, 640 and 1280 px wide), as mediasoup-demo's, with lower bitrate caps
// (mediasoup-demo's are 0.5, 1 and 5 Mbit/s): 150 kbit/s for the smallest, so that it and the
// audio fit a 300 kbit/s downlink; 1.5 Mbit/s for 720p, which VP8 encodes well, so that a
// subscriber's downlink needs less than 2.5 Mbit/s for the top stream. Each subscriber gets one
// of them: the smallest that fills its tile (layers.js), and the server may go lower for its
// bandwidth.
const SIMULCAST = params.get('simulcast') !== '0';
const SIMULCAST_ENCODINGS = [
  { scaleResolutionDownBy: 4, maxBitrate: 150000, scalabilityMode: 'L1T3' },
  { scaleResolutionDownBy: 2, maxBitrate: 500000, scalabilityMode: 'L1T3' },
  { scaleResolutionDownBy: 1, maxBitrate: 1500000, scalabilityMode: 'L1T3' },
];
// The camera's codec, `?codec=h264` or `?codec=vp9` (the router's first video codec, VP8, if
// absent or not offered), and `?svc=L3T3` (or `L3T3_KEY`, `L1T3`): one encoding with that
// scalability mode instead of simulcast (SVC, with VP9). Used by the browser tests.
const CODEC = params.get('codec')?.toLowerCase();
const SVC = params.get('svc');

/** The router codec (device.rtpCapabilities) named by `?codec=`, if any. */
function cameraCodec() {
  if (!CODEC) return undefined;
  return state.device?.rtpCapabilities.codecs.find((c) => c.mimeType.toLowerCase() === `video/${CODEC}`);
}

/** produce() options of a camera track (a shared screen is published with one encoding). */
export function cameraOptions(track) {
  const codec = cameraCodec();
  const encodings = SVC ? [{ maxBitrate: 5000000, scalabilityMode: SVC }] : SIMULCAST ? SIMULCAST_ENCODINGS : undefined;
  return { track, appData: { source: 'camera' }, ...(encodings ? { encodings } : {}), ...(codec ? { codec } : {}) };
}

/** getUserMedia constraints of the chosen camera (`video`) or microphone. */
export function constraints(kind) {
  if (kind === 'video') {
    const size = SIMULCAST || SVC ? { width: 1280, height: 720 } : { width: 640, height: 480 };
    return { ...size, ...(state.cameraId ? { deviceId: { exact: state.cameraId } } : {}) };
  }
  return state.micId ? { deviceId: { exact: state.micId } } : true;
}

/** Camera and microphone as chosen (the camera only if it is on). */
export async function getMedia() {
  const wanted = { audio: constraints('audio'), video: state.cameraOff ? false : constraints('video') };
  try {
    return await navigator.mediaDevices.getUserMedia(wanted);
  } catch (e) {
    if (e.name === 'OverconstrainedError' || e.name === 'NotFoundError') {
      // The chosen device is gone: take the default one.
      state.cameraId = state.micId = '';
      return navigator.mediaDevices.getUserMedia({ audio: true, video: state.cameraOff ? false : constraints('video') });
    }
    throw new Error('Camera or microphone denied: allow them in the browser to be seen and heard.');
  }
}
