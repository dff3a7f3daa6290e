use std::time::{Duration, Instant};

use super::*;
use crate::codec::VideoCodec;

/// A VP8 packet: descriptor with a 15-bit picture id, TL0PICIDX and TID (RFC 7741 §4.2), then
/// one payload header byte (bit 0 clear: a keyframe, when it starts the frame).
fn vp8(picture_id: u16, tl0: u8, tid: u8, sync: bool, keyframe: bool) -> Vec<u8> {
    let [hi, lo] = (picture_id & 0x7fff).to_be_bytes();
    vec![0x90, 0xe0, 0x80 | hi, lo, tl0, (tid << 6) | (u8::from(sync) << 5), u8::from(!keyframe), 0, 0]
}

fn picture_id(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2] & 0x7f, p[3]])
}

const ALL: fn(u8) -> bool = |_| true;

#[test]
fn starts_on_a_keyframe_of_the_highest_active_stream() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(3, 3, VideoCodec::Vp8);
    assert_eq!(s.target(ALL), 2);
    assert_eq!(s.target(|l| l < 2), 1, "the top stream is not sending");
    assert_eq!(s.packet(0, ALL, 1000, &mut vp8(10, 1, 0, true, true), t0), LayerVerdict::Drop { skip: false }, "not the target");
    assert_eq!(s.packet(2, ALL, 5000, &mut vp8(70, 1, 0, false, false), t0), LayerVerdict::WantKeyframe { layer: 2 });
    assert_eq!(s.take_layers_changed(), None, "nothing forwarded yet");
    let mut key = vp8(71, 1, 0, true, true);
    assert_eq!(s.packet(2, ALL, 5000, &mut key, t0), LayerVerdict::Forward { timestamp: 5000, switched: true });
    assert_eq!(s.take_layers_changed(), Some((2, 2)), "a keyframe starts every temporal layer");
    assert_eq!(s.packet(2, ALL, 8000, &mut vp8(72, 1, 2, true, false), t0), LayerVerdict::Forward { timestamp: 8000, switched: false });
    assert_eq!(s.take_layers_changed(), None, "no change, told once");
}

#[test]
fn a_consumer_preferring_layer_0_gets_only_layer_0() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(3, 1, VideoCodec::Vp8);
    s.set_preferred(0, None);
    assert_eq!(s.preferred(), (0, 0));
    let mut sent = Vec::new();
    for i in 0..30u16 {
        let layer = (i % 3) as u8;
        let mut p = vp8(100 * u16::from(layer) + i, 0, 0, false, i < 3);
        if let LayerVerdict::Forward { .. } = s.packet(layer, ALL, u32::from(i) * 3000, &mut p, t0) {
            sent.push(layer);
        }
    }
    assert_eq!(sent, vec![0; 10], "every layer-0 packet, nothing else");
}

#[test]
fn switching_down_waits_for_the_lower_keyframe_and_keeps_time_and_picture_ids_continuous() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(3, 1, VideoCodec::Vp8);
    let mut key = vp8(500, 7, 0, true, true);
    assert!(matches!(s.packet(2, ALL, 90_000, &mut key, t0), LayerVerdict::Forward { switched: true, .. }));
    let mut next = vp8(501, 8, 0, false, false);
    assert!(matches!(s.packet(2, ALL, 93_000, &mut next, t0 + Duration::from_millis(33)), LayerVerdict::Forward { .. }));
    s.set_preferred(0, None);
    // Until layer 0 sends a keyframe, layer 2 goes on (no freeze) and layer 0 is asked for one.
    let at = t0 + Duration::from_millis(66);
    assert_eq!(s.packet(0, ALL, 400, &mut vp8(20, 3, 0, false, false), at), LayerVerdict::WantKeyframe { layer: 0 });
    assert!(matches!(s.packet(2, ALL, 96_000, &mut vp8(502, 9, 0, false, false), at), LayerVerdict::Forward { switched: false, .. }));
    let at = t0 + Duration::from_millis(100);
    let mut low_key = vp8(21, 4, 0, true, true);
    let LayerVerdict::Forward { timestamp, switched: true } = s.packet(0, ALL, 3400, &mut low_key, at) else { panic!("switched") };
    assert_eq!(timestamp, 96_000 + 34 * 90, "the last timestamp sent plus 34 ms at 90 kHz");
    assert_eq!(picture_id(&low_key), picture_id(&next) + 2, "picture ids go on from the last sent");
    assert_eq!(low_key[4], 10, "TL0PICIDX too");
    assert_eq!(
        s.packet(2, ALL, 99_000, &mut vp8(503, 10, 0, false, false), at),
        LayerVerdict::Drop { skip: false },
        "the old stream stops"
    );
    let LayerVerdict::Forward { timestamp: t2, .. } = s.packet(0, ALL, 6400, &mut vp8(22, 5, 0, false, false), at) else { panic!() };
    assert_eq!(t2, timestamp + 3000, "the new stream keeps its own spacing");
    assert_eq!(s.take_layers_changed(), Some((0, 0)));
}

#[test]
fn a_stream_that_stops_makes_the_consumer_fall_back() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(2, 1, VideoCodec::Vp8);
    assert!(matches!(s.packet(1, ALL, 0, &mut vp8(1, 0, 0, true, true), t0), LayerVerdict::Forward { .. }));
    let only_low = |l: u8| l == 0;
    assert_eq!(s.target(only_low), 0);
    assert_eq!(s.packet(0, only_low, 0, &mut vp8(9, 0, 0, false, false), t0), LayerVerdict::WantKeyframe { layer: 0 });
    assert!(matches!(s.packet(0, only_low, 0, &mut vp8(10, 0, 0, true, true), t0), LayerVerdict::Forward { switched: true, .. }));
    s.reset();
    assert_eq!(s.current_spatial(), None);
    assert_eq!(
        s.packet(1, ALL, 0, &mut vp8(11, 0, 0, false, false), t0),
        LayerVerdict::WantKeyframe { layer: 1 },
        "after a pause: a keyframe first"
    );
}

#[test]
fn temporal_layers_above_the_preferred_one_are_skipped_without_a_gap() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(1, 3, VideoCodec::Vp8);
    s.set_preferred(0, Some(0));
    let tids = [0u8, 2, 1, 2, 0, 2, 1, 2, 0];
    let mut verdicts = Vec::new();
    for (i, tid) in tids.iter().enumerate() {
        let mut p = vp8(300 + i as u16, (i / 4) as u8, *tid, false, i == 0);
        verdicts.push(s.packet(0, ALL, i as u32 * 3000, &mut p, t0));
    }
    let sent = verdicts.iter().filter(|v| matches!(v, LayerVerdict::Forward { .. })).count();
    assert_eq!(sent, 3, "TID 0 only: {verdicts:?}");
    assert!(verdicts.iter().all(|v| matches!(v, LayerVerdict::Forward { .. } | LayerVerdict::Drop { skip: true })), "{verdicts:?}");
}

#[test]
fn the_allowed_layer_caps_the_preferred_one_and_an_inactive_preference_goes_up() {
    let mut s = LayerSelector::new(3, 3, VideoCodec::Vp8);
    s.set_allowed(Some((1, 2)));
    assert_eq!(s.target(ALL), 1, "the downlink allows layer 1 only");
    s.set_preferred(0, None);
    assert_eq!(s.target(ALL), 0, "the preference is lower still");
    assert_eq!(s.target(|l| l > 0), 1, "layer 0 silent: the lowest active one above it");
    s.set_preferred(2, None);
    s.set_allowed(None);
    assert_eq!(s.target(ALL), 2, "no limit");
    assert_eq!(s.target(|_| false), 0, "nothing active: the lowest");
}

#[test]
fn the_allowed_temporal_layer_drops_frames_of_the_allowed_stream_only() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(3, 3, VideoCodec::Vp8);
    s.set_allowed(Some((0, 0)));
    assert_eq!(s.target(ALL), 0);
    assert!(matches!(s.packet(0, ALL, 0, &mut vp8(1, 1, 0, false, true), t0), LayerVerdict::Forward { .. }), "the keyframe");
    assert_eq!(s.packet(0, ALL, 3000, &mut vp8(2, 1, 2, true, false), t0), LayerVerdict::Drop { skip: true }, "TID 2 is above the limit");
    assert_eq!(s.packet(0, ALL, 6000, &mut vp8(3, 1, 1, true, false), t0), LayerVerdict::Drop { skip: true }, "TID 1 too");
    assert!(matches!(s.packet(0, ALL, 9000, &mut vp8(4, 2, 0, false, false), t0), LayerVerdict::Forward { .. }), "TID 0 goes");
    // Stream 0 allowed up to TID 0, but stream 0 is silent: stream 1 is forwarded whole.
    let mut s = LayerSelector::new(3, 3, VideoCodec::Vp8);
    s.set_allowed(Some((0, 0)));
    let only_1 = |l: u8| l == 1;
    assert_eq!(s.target(only_1), 1);
    assert!(matches!(s.packet(1, only_1, 0, &mut vp8(1, 1, 0, false, true), t0), LayerVerdict::Forward { .. }));
    assert!(matches!(s.packet(1, only_1, 3000, &mut vp8(2, 1, 2, true, false), t0), LayerVerdict::Forward { .. }), "whole");
}

/// An H264 packet: a STAP-A with SPS and PPS (a keyframe's start), or a non-IDR slice.
fn h264(keyframe: bool, marker_byte: u8) -> Vec<u8> {
    if keyframe {
        vec![0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, marker_byte]
    } else {
        vec![0x41, 0x9a, marker_byte]
    }
}

#[test]
fn h264_streams_switch_on_an_sps_and_go_out_unchanged() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(3, 3, VideoCodec::H264);
    assert_eq!(s.preferred(), (2, 0), "no temporal layers told apart in H264");
    assert_eq!(s.packet(2, ALL, 1000, &mut h264(false, 1), t0), LayerVerdict::WantKeyframe { layer: 2 });
    let mut key = h264(true, 2);
    assert_eq!(s.packet(2, ALL, 1000, &mut key, t0), LayerVerdict::Forward { timestamp: 1000, switched: true });
    assert_eq!(key, h264(true, 2), "the payload is not rewritten");
    assert_eq!(s.take_layers_changed(), Some((2, 0)));
    for i in 0..6u8 {
        let mut p = h264(false, i);
        assert!(matches!(s.packet(2, ALL, 1000 + 3000 * u32::from(i), &mut p, t0), LayerVerdict::Forward { switched: false, .. }));
    }
    s.set_preferred(0, Some(2));
    assert_eq!(s.preferred(), (0, 0));
    assert_eq!(s.packet(0, ALL, 50, &mut h264(false, 9), t0), LayerVerdict::WantKeyframe { layer: 0 }, "layer 0 needs a keyframe");
    assert!(matches!(s.packet(2, ALL, 19_000, &mut h264(false, 9), t0), LayerVerdict::Forward { .. }), "layer 2 goes on meanwhile");
    let later = t0 + Duration::from_millis(33);
    let LayerVerdict::Forward { timestamp, switched: true } = s.packet(0, ALL, 50, &mut h264(true, 9), later) else {
        panic!("the switch on layer 0's SPS")
    };
    assert_eq!(timestamp, 19_000 + 2970, "the timestamp goes on by the wall clock");
    assert_eq!(s.packet(2, ALL, 22_000, &mut h264(false, 9), later), LayerVerdict::Drop { skip: false });
    assert_eq!(s.take_layers_changed(), Some((0, 0)));
}

#[test]
fn malformed_h264_never_switches_and_never_panics() {
    let t0 = Instant::now();
    let mut s = LayerSelector::new(2, 1, VideoCodec::H264);
    for bad in [&[][..], &[0x80], &[0x7c], &[0x78, 0, 9, 0x67], &[0x79, 0, 1]] {
        assert_eq!(s.packet(1, ALL, 0, &mut bad.to_vec(), t0), LayerVerdict::WantKeyframe { layer: 1 }, "{bad:?}");
    }
}
