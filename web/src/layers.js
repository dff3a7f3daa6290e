// The small-tile rule: a remote camera sent as several streams (simulcast) is asked for the
// smallest stream that fills its tile, with no button. The tile's video element is watched
// (ResizeObserver); once its size has settled for 300 ms, its width in device pixels chooses the
// spatial layer (up to 320 -> 0, up to 640 -> 1, wider -> the top one), and
// setConsumerPreferredLayers is sent when that choice changes (a consumer starts at the top layer).
// The server may still send a lower stream than the one asked for, for the subscriber's bandwidth.

const SETTLE_MS = 300;

/** How many streams (spatial layers) a consumer's producer sends: the `L<n>` of its scalabilityMode. */
export function spatialLayers(rtpParameters) {
  const m = /^L(\d+)/.exec(rtpParameters?.encodings?.[0]?.scalabilityMode ?? '');
  return m ? Number(m[1]) : 1;
}

/** The spatial layer, of `layers`, that a tile `px` device pixels wide needs. */
export function layerForWidth(px, layers) {
  const wanted = px <= 320 ? 0 : px <= 640 ? 1 : layers - 1;
  return Math.max(0, Math.min(wanted, layers - 1));
}

/**
 * Applies the rule to a consumer of state.consumers (`entry`: {consumer, ...}) shown in a tile:
 * `send(layer)` asks the server. The entry then says what was chosen (tests read it):
 * `entry.layer` (the spatial layer asked for) and `entry.tilePx` (the width that chose it).
 */
export function watchLayers(entry, send) {
  const { consumer } = entry;
  const layers = spatialLayers(consumer.rtpParameters);
  if (consumer.kind !== 'video' || layers < 2 || typeof ResizeObserver === 'undefined') return;
  const video = [...document.querySelectorAll('video')].find((v) => v.srcObject?.getTracks().includes(consumer.track));
  if (!video) return;
  entry.layer = layers - 1;
  let timer;
  const check = () => {
    if (consumer.closed) return;
    const px = Math.round(video.getBoundingClientRect().width * (window.devicePixelRatio || 1));
    const layer = layerForWidth(px, layers);
    entry.tilePx = px;
    if (layer === entry.layer) return;
    const before = entry.layer;
    entry.layer = layer;
    send(layer).catch((e) => {
      console.warn('setConsumerPreferredLayers failed', e);
      if (entry.layer === layer) entry.layer = before; // asked again at the next change of size
    });
  };
  const settle = () => {
    clearTimeout(timer);
    timer = setTimeout(check, SETTLE_MS);
  };
  const observer = new ResizeObserver(settle);
  observer.observe(video);
  settle();
  consumer.observer.once('close', () => {
    clearTimeout(timer);
    observer.disconnect();
  });
}
