//! H264 RTP payloads (RFC 6184): what a simulcast consumer needs to know of a packet, which is
//! only whether it starts a keyframe (as mediasoup's `Codecs::H264`). H264 has no payload
//! descriptor: there are no picture ids to rewrite, and temporal layers are not told apart
//! (they would need the frame-marking header extension), so every packet of the forwarded
//! stream goes out.
//!
//! A packet starts a keyframe when it carries an SPS (type 7) or the start of an IDR slice
//! (type 5): as a single NAL unit, inside a STAP-A aggregate (24), or as the first fragment of
//! an FU-A (28). libwebrtc sends the SPS and PPS ahead of each IDR, in the same STAP-A or as
//! packets of their own before it, so the first such packet of a keyframe is its SPS.

/// NAL unit types (RFC 6184 §5.2, H.264 table 7-1).
const IDR: u8 = 5;
const SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    #[error("empty H264 payload")]
    Empty,
    #[error("H264 NAL unit header has the forbidden bit set")]
    ForbiddenBit,
    #[error("H264 STAP-A or FU-A truncated")]
    Truncated,
    #[error("H264 packetization type {0} is not supported (STAP-B, MTAP, FU-B)")]
    Unsupported(u8),
}

/// What one packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Descriptor {
    /// The NAL unit type of the packet's header (24 for STAP-A, 28 for FU-A, else the unit's).
    pub nal_type: u8,
    /// It carries an SPS or the start of an IDR slice.
    pub keyframe: bool,
}

/// Reads an RTP payload of packetization mode 0 or 1 (single NAL units, STAP-A, FU-A).
pub fn parse(payload: &[u8]) -> Result<H264Descriptor, H264Error> {
    let first = *payload.first().ok_or(H264Error::Empty)?;
    if first & 0x80 != 0 {
        return Err(H264Error::ForbiddenBit);
    }
    let nal_type = first & 0x1f;
    let keyframe = match nal_type {
        1..=23 => nal_type == IDR || nal_type == SPS,
        STAP_A => stap_a_has_keyframe(&payload[1..])?,
        FU_A => {
            let fu = *payload.get(1).ok_or(H264Error::Truncated)?;
            let start = fu & 0x80 != 0;
            start && matches!(fu & 0x1f, IDR | SPS)
        }
        0 | 25..=27 | 29..=31 => return Err(H264Error::Unsupported(nal_type)),
        _ => unreachable!("a 5-bit value"), // first & 0x1f is at most 31
    };
    Ok(H264Descriptor { nal_type, keyframe })
}

/// Whether a STAP-A's units (16-bit size, then the unit) hold an SPS or an IDR slice.
fn stap_a_has_keyframe(mut units: &[u8]) -> Result<bool, H264Error> {
    if units.is_empty() {
        return Err(H264Error::Truncated);
    }
    let mut keyframe = false;
    while !units.is_empty() {
        let [hi, lo, rest @ ..] = units else { return Err(H264Error::Truncated) };
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        if size == 0 || size > rest.len() {
            return Err(H264Error::Truncated);
        }
        keyframe |= matches!(rest[0] & 0x1f, IDR | SPS); // size >= 1
        units = &rest[size..];
    }
    Ok(keyframe)
}

/// Whether a payload starts a keyframe; false for anything unreadable.
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse(payload).is_ok_and(|d| d.keyframe)
}

#[cfg(test)]
#[path = "h264_tests.rs"]
mod tests;
