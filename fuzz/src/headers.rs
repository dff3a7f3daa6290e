//! The wire parsing and building the engine does itself, outside str0m. The first byte picks
//! the function; the rest is its input. Each is checked for panics and for a property:
//!
//! 0. `rtp_ssrc_seq`: reads only a version-2 non-RTCP datagram of 12 bytes or more, and reads
//!    what is there.
//! 1. `SeqGuard`: every packet admitted is passed, released, held or counted as kept away, once.
//! 2. `SeqRewriter`: one output number per input number between two resyncs, and outputs
//!    continue without a gap after a pause.
//! 3. VP8 keyframe detection (the plain consumer's): never true for an empty or too short
//!    payload; other codecs always true.
//! 4. The STUN demux: the same ufrags as str0m's own parser would give.
//! 5. RTCP the engine writes (empty RR, BYE): well-formed compound RTCP for any SSRC list.
//! 6. RTP the engine writes (plain consumers): read back by `rtp_ssrc_seq` and by str0m.
//! 7. H264 profile-level-id: parse, print, parse again gives the same.
//! 8. The transport-cc number the worker reads from the clear RTP header (for `TwccGuard`): the
//!    same as str0m's own parser reads, with the id given by the first byte.
//! 9. ICE-TCP deframing (RFC 4571): the same frames however the bytes are split into reads,
//!    each 1 to `MAX_TCP_FRAME` bytes; while the stream is good, the frames with their length
//!    prefixes followed by what is left are the bytes read.
use sfu::seq_guard::rtp_ssrc_seq;

pub use crate::public_headers::{profile_level_id, rtp_header, seq_guard, seq_rewriter};

pub fn run(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 10 {
        0 => rtp_header(rest),
        1 => seq_guard(rest),
        2 => seq_rewriter(rest),
        3 => vp8(rest),
        4 => stun(rest),
        5 => rtcp_built(rest),
        6 => rtp_built(rest),
        7 => profile_level_id(rest),
        9 => tcp_frames(rest),
        _ => {
            transport_cc(rest);
        }
    }
}

fn vp8(data: &[u8]) {
    let Some((&m, payload)) = data.split_first() else { return };
    let mime = ["video/VP8", "video/vp8", "VIDEO/VP8", "video/VP9", "audio/opus", "video/H264", ""][usize::from(m) % 7];
    let key = sfu::fuzzing::starts_keyframe(mime, payload);
    if mime.eq_ignore_ascii_case("video/vp8") {
        assert!(!key || payload.len() >= 2, "a keyframe needs a descriptor and a frame tag");
        assert!(!key || payload[0] & 0x10 != 0, "a keyframe starts a partition");
    } else if mime.eq_ignore_ascii_case("video/vp9") {
        let d = sfu::vp9::parse(payload);
        assert_eq!(key, d.is_ok_and(|d| d.keyframe()));
        if let Ok(d) = d {
            assert!(d.header_len < payload.len(), "a payload follows the descriptor");
        }
        assert!(!key || (payload[0] & 0x08 != 0 && payload[0] & 0x40 == 0), "a keyframe starts a frame, not predicted");
    } else if mime.eq_ignore_ascii_case("video/h264") {
        assert_eq!(key, sfu::h264::is_keyframe(payload));
        assert!(!key || payload[0] & 0x80 == 0, "a keyframe's NAL header has the forbidden bit clear");
    } else {
        assert!(key, "other codecs always count as keyframes");
    }
}

fn stun(data: &[u8]) {
    let ours = sfu::fuzzing::binding_request_ufrags(data);
    let theirs = str0m::ice::StunMessage::parse(data).ok().filter(|m| m.is_binding_request());
    let theirs = theirs.as_ref().and_then(|m| m.split_username());
    if data.len() >= 20 && data[0] < 2 {
        assert_eq!(ours, theirs, "the demux reads STUN as str0m does");
    } else {
        assert_eq!(ours, None);
    }
}

/// Walks a compound RTCP packet: each header's length must land on the next one, exactly.
fn well_formed_rtcp(data: &[u8]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while at < data.len() {
        assert!(data.len() - at >= 4, "a truncated RTCP header");
        assert_eq!(data[at] >> 6, 2, "RTCP version");
        assert!((200..=206).contains(&data[at + 1]), "RTCP packet type {}", data[at + 1]);
        let words = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]])) + 1;
        at += 4 * words;
        n += 1;
    }
    assert_eq!(at, data.len(), "the lengths cover the datagram exactly");
    n
}

fn rtcp_built(data: &[u8]) {
    let ssrcs: Vec<u32> = data.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes"))).collect();
    let first = ssrcs.first().copied().unwrap_or(0);
    assert_eq!(well_formed_rtcp(&sfu::fuzzing::rtcp_empty_rr(first)), 1);
    let bye = sfu::fuzzing::rtcp_bye(&ssrcs);
    assert_eq!(well_formed_rtcp(&bye), 2, "an RR then a BYE");
    assert_eq!(usize::from(bye[8] & 0x1f), ssrcs.len().min(31), "the BYE's source count");
}

fn rtp_built(data: &[u8]) {
    if data.len() < 12 {
        return;
    }
    let (pt, marker) = (data[0] & 0x7f, data[0] & 0x80 != 0);
    let seq = u16::from_be_bytes([data[1], data[2]]);
    let ts = u32::from_be_bytes(data[3..7].try_into().expect("4 bytes"));
    let ssrc = u32::from_be_bytes(data[7..11].try_into().expect("4 bytes"));
    let payload = &data[11..];
    let packet = sfu::fuzzing::rtp_packet(pt, seq, ts, ssrc, marker, payload);
    assert_eq!(packet.len(), 12 + payload.len());
    // RFC 5761: RTP payload types 64..=95 collide with RTCP once the marker is set.
    if !(marker && (64..=95).contains(&pt)) {
        assert_eq!(rtp_ssrc_seq(&packet), Some((ssrc, seq)));
    }
    let exts = str0m::rtp::ExtensionMap::empty();
    let header = str0m::rtp::RtpHeader::_parse(&packet, &exts).expect("str0m reads the header the engine wrote");
    assert_eq!((*header.ssrc, header.sequence_number, header.timestamp, header.marker), (ssrc, seq, ts, marker));
    assert_eq!((*header.payload_type, header.header_len), (pt, 12));
}

fn transport_cc(data: &[u8]) -> Option<()> {
    let (&id, packet) = data.split_first()?;
    let id = 1 + id % 14;
    let ours = sfu::seq_guard::transport_cc(packet, id);
    let mut exts = str0m::rtp::ExtensionMap::empty();
    exts.set(id, str0m::rtp::Extension::TransportSequenceNumber);
    let theirs = str0m::rtp::RtpHeader::_parse(packet, &exts).and_then(|h| h.ext_vals.transport_cc);
    assert_eq!(ours, theirs, "the guard reads transport-cc as str0m does (id {id})");
    Some(())
}

fn tcp_frames(data: &[u8]) {
    use sfu::fuzzing::{take_tcp_frames, MAX_TCP_FRAME};
    let Some((&cut, stream)) = data.split_first() else { return };
    let cut = usize::from(cut) * stream.len() / 256;
    let mut whole = stream.to_vec();
    let (frames, ok) = take_tcp_frames(&mut whole);
    let mut split = stream[..cut].to_vec();
    let (mut in_two, first_ok) = take_tcp_frames(&mut split);
    let mut second_ok = first_ok;
    if first_ok {
        split.extend_from_slice(&stream[cut..]);
        let (more, ok) = take_tcp_frames(&mut split);
        in_two.extend(more);
        second_ok = ok;
    }
    if first_ok {
        assert_eq!(in_two, frames, "frames do not depend on how reads split the stream");
        assert_eq!(second_ok, ok);
        assert_eq!(split, whole, "the same bytes are left");
    } else {
        assert!(!ok, "a bad frame in the first read is bad in the whole stream");
    }
    assert!(frames.iter().all(|f| !f.is_empty() && f.len() <= MAX_TCP_FRAME));
    let mut again = Vec::new();
    for f in &frames {
        again.extend_from_slice(&(f.len() as u16).to_be_bytes());
        again.extend_from_slice(f);
    }
    again.extend_from_slice(&whole);
    assert_eq!(again, stream, "frames and the rest are the bytes read, in order");
    if ok && whole.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([whole[0], whole[1]]));
        assert!(whole.len() < 2 + len, "a whole frame was left behind");
    }
}
