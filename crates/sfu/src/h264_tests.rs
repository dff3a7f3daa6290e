use super::*;

#[test]
fn single_nal_units_start_a_keyframe_when_sps_or_idr() {
    // nal_ref_idc 3 (0x60) + type.
    assert_eq!(parse(&[0x67, 0x42, 0xe0, 0x1f]), Ok(H264Descriptor { nal_type: 7, keyframe: true }), "SPS");
    assert!(is_keyframe(&[0x65, 0x88, 0x84]), "IDR slice");
    assert!(!is_keyframe(&[0x68, 0xce, 0x3c]), "PPS alone");
    assert!(!is_keyframe(&[0x41, 0x9a, 0x02]), "non-IDR slice");
    assert!(!is_keyframe(&[0x06, 0x05]), "SEI");
}

#[test]
fn stap_a_holds_a_keyframe_when_one_of_its_units_is_sps_or_idr() {
    // STAP-A: SPS (3 bytes), PPS (2 bytes), IDR (2 bytes).
    let key = [0x78, 0, 3, 0x67, 0x42, 0xe0, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88];
    assert_eq!(parse(&key), Ok(H264Descriptor { nal_type: 24, keyframe: true }));
    let delta = [0x78, 0, 2, 0x06, 0x05, 0, 2, 0x41, 0x9a];
    assert_eq!(parse(&delta), Ok(H264Descriptor { nal_type: 24, keyframe: false }));
}

#[test]
fn fu_a_starts_a_keyframe_on_the_first_fragment_of_an_idr() {
    assert!(is_keyframe(&[0x7c, 0x85, 0x88]), "FU-A start (S) of an IDR");
    assert!(!is_keyframe(&[0x7c, 0x05, 0x88]), "a middle fragment");
    assert!(!is_keyframe(&[0x7c, 0x45, 0x88]), "the end fragment (E)");
    assert!(!is_keyframe(&[0x7c, 0x81, 0x9a]), "the start of a non-IDR slice");
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    assert_eq!(parse(&[]), Err(H264Error::Empty));
    assert_eq!(parse(&[0xe7]), Err(H264Error::ForbiddenBit));
    assert_eq!(parse(&[0x7c]), Err(H264Error::Truncated), "FU-A without its header");
    assert_eq!(parse(&[0x78]), Err(H264Error::Truncated), "empty STAP-A");
    assert_eq!(parse(&[0x78, 0]), Err(H264Error::Truncated), "half a size");
    assert_eq!(parse(&[0x78, 0, 9, 0x67]), Err(H264Error::Truncated), "a unit longer than the packet");
    assert_eq!(parse(&[0x78, 0, 0]), Err(H264Error::Truncated), "an empty unit");
    assert_eq!(parse(&[0x79, 1, 2]), Err(H264Error::Unsupported(25)), "STAP-B");
    assert_eq!(parse(&[0x7d, 0x85]), Err(H264Error::Unsupported(29)), "FU-B");
    assert_eq!(parse(&[0x60]), Err(H264Error::Unsupported(0)));
    // Every short payload, whatever its bytes: an answer, never a panic.
    for bytes in crate::random_payloads::random_payloads(0x2545_f491_4f6c_dd1d, 0..64, 200) {
        let _ = parse(&bytes);
        let _ = is_keyframe(&bytes);
    }
}
