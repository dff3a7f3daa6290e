//! VP9 payload descriptor (RFC 9628, "RTP Payload Format for VP9", formerly
//! draft-ietf-payload-vp9), which an SVC consumer reads to drop spatial and temporal layers:
//!
//! ```text
//!       +-+-+-+-+-+-+-+-+
//!       |I|P|L|F|B|E|V|Z|   I: picture id, P: inter-picture predicted, L: layer indices,
//!       +-+-+-+-+-+-+-+-+   F: flexible mode, B/E: start/end of a layer frame,
//!  I:   |M| PICTURE ID  |   V: scalability structure, Z: not a reference for upper layers
//!  M:   | EXTENDED PID  |
//!  L:   | TID |U| SID |D|   U: switching up point, D: inter-layer dependency
//!       |   TL0PICIDX   |   (non-flexible mode only)
//!  P,F: | P_DIFF      |N|   up to 3 times
//!  V:   | SS ...        |
//! ```
//!
//! A keyframe starts with a packet that is not inter-picture predicted, starts a layer frame
//! and belongs to spatial layer 0 (`!P && B && SID == 0`, as mediasoup's `Codecs::VP9`).

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp9Error {
    #[error("VP9 payload descriptor truncated")]
    Truncated,
    #[error("VP9 payload descriptor has more than 3 reference indices")]
    TooManyReferences,
    #[error("VP9 packet has no payload after its descriptor")]
    NoPayload,
}

/// What one packet's descriptor says (absent fields as mediasoup reads them: layer 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp9Descriptor {
    /// P: inter-picture predicted (refers to an earlier picture of its layer).
    pub inter_picture_predicted: bool,
    /// F: flexible mode (references listed as P_DIFFs, no TL0PICIDX).
    pub flexible: bool,
    /// B: the packet starts a layer frame.
    pub start_of_frame: bool,
    /// E: the packet ends a layer frame.
    pub end_of_frame: bool,
    /// Z: the frame is not used for inter-layer prediction by upper layers.
    pub not_upper_reference: bool,
    /// 7- or 15-bit picture id (I).
    pub picture_id: Option<u16>,
    /// TID (0 without layer indices).
    pub tid: u8,
    /// U: a switching up point (a higher temporal layer may start here).
    pub switching_up_point: bool,
    /// SID (0 without layer indices).
    pub sid: u8,
    /// D: inter-layer dependency (the frame refers to the layer below, same picture).
    pub inter_layer_dependency: bool,
    pub tl0_pic_idx: Option<u8>,
    /// P_DIFFs of flexible mode (up to 3), 0 where absent.
    pub p_diffs: [u8; 3],
    pub reference_count: u8,
    /// The scalability structure, when V is set.
    pub ss: Option<ScalabilityStructure>,
    /// Bytes of the descriptor (the VP9 payload starts here).
    pub header_len: usize,
}

impl Vp9Descriptor {
    /// The first packet of a keyframe (`!P && B && SID == 0`).
    pub fn keyframe(&self) -> bool {
        !self.inter_picture_predicted && self.start_of_frame && self.sid == 0
    }
}

/// What the scalability structure (V) says: spatial layers and, if given, their resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScalabilityStructure {
    /// N_S + 1.
    pub spatial_layers: u8,
    /// (width, height) per spatial layer, lowest first (Y set), else zeros.
    pub resolutions: [(u16, u16); 8],
    pub has_resolutions: bool,
    /// N_G: pictures in the group of frames described (G set), else 0.
    pub pictures_in_group: u8,
}

/// Parses the payload descriptor at the start of an RTP payload; never panics.
pub fn parse(payload: &[u8]) -> Result<Vp9Descriptor, Vp9Error> {
    let mut r = Reader { bytes: payload, at: 0 };
    let first = r.byte()?;
    let mut d = Vp9Descriptor {
        inter_picture_predicted: first & 0x40 != 0,
        flexible: first & 0x10 != 0,
        start_of_frame: first & 0x08 != 0,
        end_of_frame: first & 0x04 != 0,
        not_upper_reference: first & 0x01 != 0,
        ..Default::default()
    };
    if first & 0x80 != 0 {
        let b = r.byte()?;
        d.picture_id = Some(if b & 0x80 != 0 { u16::from(b & 0x7f) << 8 | u16::from(r.byte()?) } else { u16::from(b) });
    }
    if first & 0x20 != 0 {
        let b = r.byte()?;
        d.tid = b >> 5;
        d.switching_up_point = b & 0x10 != 0;
        d.sid = (b >> 1) & 0x07;
        d.inter_layer_dependency = b & 0x01 != 0;
        if !d.flexible {
            d.tl0_pic_idx = Some(r.byte()?);
        }
    }
    if d.flexible && d.inter_picture_predicted {
        loop {
            if usize::from(d.reference_count) == d.p_diffs.len() {
                return Err(Vp9Error::TooManyReferences);
            }
            let b = r.byte()?;
            d.p_diffs[usize::from(d.reference_count)] = b >> 1;
            d.reference_count += 1;
            if b & 0x01 == 0 {
                break;
            }
        }
    }
    if first & 0x02 != 0 {
        d.ss = Some(scalability_structure(&mut r)?);
    }
    d.header_len = r.at;
    if payload.len() <= d.header_len {
        return Err(Vp9Error::NoPayload);
    }
    Ok(d)
}

/// The SS data: N_S|Y|G|-|-|-, then Y: N_S+1 x (WIDTH, HEIGHT), then G: N_G and per picture
/// TID|U|R|-|- and R x P_DIFF.
fn scalability_structure(r: &mut Reader<'_>) -> Result<ScalabilityStructure, Vp9Error> {
    let b = r.byte()?;
    let mut ss = ScalabilityStructure { spatial_layers: (b >> 5) + 1, has_resolutions: b & 0x10 != 0, ..Default::default() };
    if ss.has_resolutions {
        for i in 0..usize::from(ss.spatial_layers) {
            let w = u16::from_be_bytes([r.byte()?, r.byte()?]);
            let h = u16::from_be_bytes([r.byte()?, r.byte()?]);
            ss.resolutions[i] = (w, h); // spatial_layers <= 8 (3 bits + 1)
        }
    }
    if b & 0x08 != 0 {
        ss.pictures_in_group = r.byte()?;
        for _ in 0..ss.pictures_in_group {
            let refs = (r.byte()? >> 2) & 0x03;
            for _ in 0..refs {
                r.byte()?;
            }
        }
    }
    Ok(ss)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Vp9Error> {
        let b = *self.bytes.get(self.at).ok_or(Vp9Error::Truncated)?;
        self.at += 1;
        Ok(b)
    }
}

#[cfg(test)]
#[path = "vp9_tests.rs"]
pub(crate) mod tests;
