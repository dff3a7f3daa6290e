use super::*;

/// A non-flexible VP9 packet as libwebrtc sends for L3T3: I with a 15-bit picture id, L (TID,
/// U, SID, D, TL0PICIDX), then one payload byte.
#[allow(clippy::too_many_arguments)]
pub(crate) fn packet(pid: u16, tid: u8, u: bool, sid: u8, d: bool, p: bool, b: bool, e: bool) -> Vec<u8> {
    let first = 0x80 | 0x20 | (u8::from(p) << 6) | (u8::from(b) << 3) | (u8::from(e) << 2);
    let [hi, lo] = (pid & 0x7fff).to_be_bytes();
    vec![first, 0x80 | hi, lo, (tid << 5) | (u8::from(u) << 4) | (sid << 1) | u8::from(d), 7, 0xaa]
}

#[test]
fn non_flexible_descriptors_give_layers_and_keyframes() {
    let d = parse(&packet(0x1234, 0, false, 0, false, false, true, false)).unwrap();
    assert!(d.keyframe());
    assert_eq!((d.picture_id, d.tid, d.sid, d.tl0_pic_idx, d.header_len), (Some(0x1234), 0, 0, Some(7), 5));
    let d = parse(&packet(9, 2, true, 1, true, true, false, true)).unwrap();
    assert!(!d.keyframe() && d.switching_up_point && d.inter_layer_dependency && d.end_of_frame && !d.start_of_frame);
    assert_eq!((d.tid, d.sid), (2, 1));
    assert!(!parse(&packet(9, 0, false, 1, true, false, true, false)).unwrap().keyframe(), "an upper layer of a keyframe");
}

#[test]
fn flexible_mode_reads_reference_indices() {
    // I (7-bit), P, L, F, B: picture 5, TID 1 SID 0; two P_DIFFs (N set on the first).
    let d = parse(&[0xf8, 0x05, 0x20, (1 << 1) | 1, 2 << 1, 0xaa]).unwrap();
    assert!(d.flexible && d.inter_picture_predicted && d.start_of_frame);
    assert_eq!((d.picture_id, d.tid, d.tl0_pic_idx), (Some(5), 1, None));
    assert_eq!((d.reference_count, d.p_diffs), (2, [1, 2, 0]));
    assert_eq!(parse(&[0xd0, 0x05, 0x03, 0x03, 0x03, 0x02, 0xaa]), Err(Vp9Error::TooManyReferences));
}

#[test]
fn the_scalability_structure_gives_resolutions() {
    // B, V (no I, no L): N_S = 2, Y, G with one picture (TID 0, U 0, R 1, one P_DIFF).
    let mut p = vec![0x0a, (2 << 5) | 0x10 | 0x08];
    for (w, h) in [(320u16, 180u16), (640, 360), (1280, 720)] {
        p.extend_from_slice(&w.to_be_bytes());
        p.extend_from_slice(&h.to_be_bytes());
    }
    p.extend_from_slice(&[1, 0x04, 1, 0xaa]);
    let d = parse(&p).unwrap();
    let ss = d.ss.unwrap();
    assert_eq!((ss.spatial_layers, ss.pictures_in_group), (3, 1));
    assert_eq!(ss.resolutions[..3], [(320, 180), (640, 360), (1280, 720)]);
    assert_eq!(d.header_len, p.len() - 1);
    assert!(d.keyframe());
}

#[test]
fn malformed_descriptors_are_errors_not_panics() {
    assert_eq!(parse(&[]), Err(Vp9Error::Truncated));
    assert_eq!(parse(&[0x80]), Err(Vp9Error::Truncated), "I without a picture id");
    assert_eq!(parse(&[0x80, 0x80]), Err(Vp9Error::Truncated), "half a 15-bit picture id");
    assert_eq!(parse(&[0x20, 0x00]), Err(Vp9Error::Truncated), "L without TL0PICIDX");
    assert_eq!(parse(&[0x50, 0x01]), Err(Vp9Error::Truncated), "a P_DIFF with N and nothing after");
    assert_eq!(parse(&[0x02, 0x10, 0x01]), Err(Vp9Error::Truncated), "SS resolutions cut short");
    assert_eq!(parse(&[0x08]), Err(Vp9Error::NoPayload));
    for bytes in crate::random_payloads::random_payloads(0x9e37_79b9_7f4a_7c15, 0..80, 300) {
        if let Ok(d) = parse(&bytes) {
            assert!(d.header_len < bytes.len());
        }
    }
}
