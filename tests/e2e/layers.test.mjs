// The small-tile rule of the web client (web/src/layers.js) alone, without a browser: which
// spatial layer a tile's width asks for (simulcast.test.mjs checks it in Chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layerForWidth, spatialLayers } from '../../web/src/layers.js';

test('the spatial layer a tile needs, by its width in device pixels', () => {
  const cases = [[0, 0], [246, 0], [320, 0], [321, 1], [640, 1], [641, 2], [2560, 2]];
  for (const [px, layer] of cases) assert.equal(layerForWidth(px, 3), layer, `${px} px of 3 layers`);
  assert.equal(layerForWidth(1000, 2), 1, 'the top of two layers');
  assert.equal(layerForWidth(500, 2), 1);
  assert.equal(layerForWidth(500, 1), 0, 'a single stream');
  assert.equal(layerForWidth(5000, 4), 3, 'the top of four layers');
});

test('how many streams a consumer\'s producer sends, from its scalabilityMode', () => {
  assert.equal(spatialLayers({ encodings: [{ ssrc: 1, scalabilityMode: 'L3T3' }] }), 3);
  assert.equal(spatialLayers({ encodings: [{ ssrc: 1, scalabilityMode: 'L2T1' }] }), 2);
  assert.equal(spatialLayers({ encodings: [{ ssrc: 1, scalabilityMode: 'L1T3' }] }), 1);
  assert.equal(spatialLayers({ encodings: [{ ssrc: 1 }] }), 1);
  assert.equal(spatialLayers(undefined), 1);
});
