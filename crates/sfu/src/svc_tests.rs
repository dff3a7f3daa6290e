use super::*;
use crate::vp9::tests::packet;

/// TIDs of an L3T3 picture sequence.
const TIDS: [u8; 4] = [0, 2, 1, 2];

/// Picture `n` of an L3T3 stream, one packet per layer frame (B and E), lowest layer first;
/// full SVC: upper layers refer to the lower one (D) in every picture; `key`: picture n is a
/// keyframe. Returns (sid, tid, payload, marker): the RTP marker on the last packet only.
fn picture(n: u16, key: bool, layers: u8) -> Vec<(u8, u8, Vec<u8>, bool)> {
    let tid = if key { 0 } else { TIDS[usize::from(n) % 4] };
    (0..layers).map(|sid| (sid, tid, packet(n, tid, tid > 0, sid, sid > 0, !key, true, true), sid + 1 == layers)).collect()
}

/// Runs pictures through the selector: the (sid, tid, marker) of each packet forwarded.
fn run(s: &mut SvcSelector, pictures: impl IntoIterator<Item = Vec<(u8, u8, Vec<u8>, bool)>>) -> Vec<(u8, u8, bool)> {
    let mut out = Vec::new();
    for pic in pictures {
        for (sid, tid, p, marker) in pic {
            if let SvcVerdict::Forward { marker } = s.packet(&p, marker) {
                out.push((sid, tid, marker));
            }
        }
    }
    out
}

#[test]
fn it_starts_on_a_keyframe_with_every_layer() {
    let mut s = SvcSelector::new(3, 3, false);
    let p = &picture(1, false, 3)[0];
    assert_eq!(s.packet(&p.2, false), SvcVerdict::WantKeyframe);
    assert_eq!(s.take_layers_changed(), None);
    let got = run(&mut s, [picture(2, true, 3), picture(3, false, 3)]);
    assert_eq!(got, vec![(0, 0, false), (1, 0, false), (2, 0, true), (0, 2, false), (1, 2, false), (2, 2, true)]);
    assert_eq!(s.take_layers_changed(), Some((2, 2)));
    assert_eq!(s.take_layers_changed(), None, "told once");
}

#[test]
fn preferring_spatial_layer_0_forwards_layer_0_with_the_marker_on_it() {
    let mut s = SvcSelector::new(3, 3, false);
    s.set_preferred(0, None);
    let got = run(&mut s, (0..8).map(|n| picture(n, n == 0, 3)));
    assert_eq!(got.len(), 8, "one packet a picture: {got:?}");
    assert!(got.iter().all(|&(sid, _, marker)| sid == 0 && marker), "{got:?}");
}

#[test]
fn full_svc_goes_down_at_once_and_up_on_a_keyframe() {
    let mut s = SvcSelector::new(3, 3, false);
    run(&mut s, [picture(0, true, 3)]);
    s.set_preferred(0, None);
    let got = run(&mut s, [picture(1, false, 3)]);
    assert_eq!(got, vec![(0, 2, true)], "down at the end of the layer-0 frame, no keyframe needed");
    assert!(!s.wants_keyframe(), "full SVC goes down without one");
    s.set_preferred(2, None);
    let got = run(&mut s, (2..6).map(|n| picture(n, false, 3)));
    assert!(got.iter().all(|&(sid, ..)| sid == 0), "inter-predicted upper layers cannot start: {got:?}");
    assert!(s.wants_keyframe(), "going up waits for a keyframe: ask for one");
    let got = run(&mut s, [picture(6, true, 3)]);
    assert!(!s.wants_keyframe());
    assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2], "up on the keyframe");
    assert_eq!(s.take_layers_changed(), Some((2, 2)));
}

#[test]
fn a_frame_without_inter_picture_prediction_is_a_spatial_switch_point() {
    let mut s = SvcSelector::new(3, 1, false);
    s.set_preferred(0, None);
    run(&mut s, [picture(0, true, 3)]);
    s.set_preferred(1, None);
    // Picture 1: layer 1 refers only to layer 0 of the same picture (P clear, D set).
    let switch = packet(1, 0, false, 1, true, false, true, true);
    assert_eq!(s.packet(&packet(1, 0, false, 0, false, true, true, true), false), SvcVerdict::Forward { marker: true });
    assert_eq!(s.packet(&switch, false), SvcVerdict::Forward { marker: true });
    assert_eq!(s.take_layers_changed(), Some((1, 0)));
}

#[test]
fn temporal_layers_drop_and_come_back_on_a_switching_up_point() {
    let mut s = SvcSelector::new(1, 3, false);
    run(&mut s, [picture(0, true, 1)]);
    s.set_preferred(0, Some(0));
    let got = run(&mut s, (1..9).map(|n| picture(n, false, 1)));
    assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0, 0], "TID 0 only from the next picture");
    s.set_preferred(0, None);
    let got = run(&mut s, (9..13).map(|n| picture(n, false, 1)));
    assert_eq!(got.iter().map(|p| p.1).collect::<Vec<_>>(), vec![2, 1, 2, 0], "back up at the first U frame");
}

#[test]
fn k_svc_waits_for_a_keyframe_to_go_down() {
    let mut s = SvcSelector::new(3, 3, true);
    let got = run(&mut s, [picture(0, true, 3), picture(1, false, 3)]);
    assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2], "every layer up to the current one");
    s.set_preferred(0, None);
    let got = run(&mut s, [picture(2, false, 3)]);
    assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2], "no switch down between keyframes");
    assert!(s.wants_keyframe(), "K-SVC goes down on a keyframe: ask for one");
    let got = run(&mut s, [picture(3, true, 3), picture(4, false, 3)]);
    assert_eq!(got, vec![(0, 0, true), (0, 0, true)], "down on the keyframe");
}

#[test]
fn the_allocation_caps_the_temporal_layers_only() {
    let mut s = SvcSelector::new(3, 3, false);
    // The allocation prices the one stream by temporal layer, as its spatial layer 0.
    s.set_allowed(Some((0, 1)));
    assert_eq!(s.target(), (2, 1));
    assert_eq!(s.allowed(), Some((0, 1)), "what was given, for the next allocation");
    s.set_preferred(0, Some(2));
    assert_eq!(s.target(), (0, 1));
    s.set_preferred(2, Some(0));
    assert_eq!(s.target(), (2, 0), "the preferred temporal layer holds too");
    s.set_allowed(None);
    assert_eq!(s.target(), (2, 0));
}

#[test]
fn unreadable_and_out_of_range_packets_are_dropped() {
    let mut s = SvcSelector::new(2, 1, false);
    assert_eq!(s.packet(&[], false), SvcVerdict::Drop { skip: false }, "before any keyframe: no gap to close");
    run(&mut s, [picture(0, true, 2)]);
    assert_eq!(s.packet(&[0x80], true), SvcVerdict::Drop { skip: true });
    assert_eq!(s.packet(&packet(1, 0, false, 2, true, true, true, true), true), SvcVerdict::Drop { skip: true }, "SID 2 of 2 layers");
    assert_eq!(s.packet(&packet(1, 1, false, 0, false, true, true, true), true), SvcVerdict::Drop { skip: true }, "TID 1 of 1");
}
