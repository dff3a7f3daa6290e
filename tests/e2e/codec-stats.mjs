// getStats helpers of the codec tests (h264-simulcast, vp9-svc, simulcast): what a user's video streams
// carry (codec, frame width) and how to ask for a spatial layer.

/** The user's video streams from getStats: inbound (received) and outbound (sent), each with
 * {codec, width, height, frames, bytes, ssrc, scalabilityMode}. */
export async function videoStreams(user) {
  return user.page.evaluate(async () => {
    const out = { inbound: [], outbound: [] };
    const collect = async (t) => {
      if (!t) return;
      const stats = await t.getStats();
      const codecs = new Map();
      stats.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
      stats.forEach((s) => {
        if (s.kind !== 'video' || (s.type !== 'inbound-rtp' && s.type !== 'outbound-rtp')) return;
        const row = {
          codec: codecs.get(s.codecId), width: s.frameWidth || 0, height: s.frameHeight || 0, ssrc: s.ssrc,
          frames: s.framesDecoded ?? s.framesEncoded ?? 0, bytes: s.bytesReceived ?? s.bytesSent ?? 0,
          scalabilityMode: s.scalabilityMode, decoder: s.decoderImplementation, encoder: s.encoderImplementation,
        };
        (s.type === 'inbound-rtp' ? out.inbound : out.outbound).push(row);
      });
    };
    await collect(window.atome.recvTransport);
    await collect(window.atome.sendTransport);
    return out;
  });
}

/** The frame width of the video the user receives (inbound-rtp frameWidth; 0 before a frame). */
export async function receivedWidth(user) {
  const s = await videoStreams(user);
  return s.inbound.find((x) => x.frames > 0)?.width ?? 0;
}

/** setConsumerPreferredLayers for the user's (only) video consumer. */
export async function preferSpatial(user, spatialLayer) {
  return user.page.evaluate(async (layer) => {
    const c = [...window.atome.consumers.values()].find((x) => x.consumer.kind === 'video');
    return window.atomeRequest('setConsumerPreferredLayers', { consumer_id: c.consumer.id, spatialLayer: layer });
  }, spatialLayer);
}

/** The rtpParameters encoding of the user's video consumer. */
export async function consumerEncoding(user) {
  return user.page.evaluate(() => [...window.atome.consumers.values()].find((x) => x.consumer.kind === 'video').consumer.rtpParameters.encodings[0]);
}

/** The codec of the user's video consumer (its first codec's mimeType). */
export async function consumerCodec(user) {
  return user.page.evaluate(() => [...window.atome.consumers.values()].find((x) => x.consumer.kind === 'video').consumer.rtpParameters.codecs[0].mimeType);
}
