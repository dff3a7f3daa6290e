//! VP8 payload descriptor (RFC 7741 §4.2): parsing, in-place rewriting, and the per-consumer
//! munger a simulcast consumer uses to keep picture ids and TL0PICIDX continuous across stream
//! switches and across the frames it drops (temporal layers above its target).

/// What one packet's descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_index: u8,
    pub picture_id: Option<PictureId>,
    pub tl0_pic_idx: Option<u8>,
    /// 0..=3 when T is set.
    pub tid: Option<u8>,
    /// Y (only when T is set).
    pub layer_sync: bool,
    pub key_idx: Option<u8>,
    /// Bytes of the descriptor (the VP8 payload starts here).
    pub header_len: usize,
    /// First packet of a keyframe (S=1, PID=0, P bit 0 in the payload header).
    pub keyframe: bool,
}

impl Vp8Descriptor {
    /// The first packet of a frame: S=1 and PID=0.
    pub fn frame_start(&self) -> bool {
        self.start_of_partition && self.partition_index == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    pub value: u16,
    /// 15-bit (M set) rather than 7-bit.
    pub long: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    #[error("VP8 payload descriptor truncated")]
    Truncated,
    #[error("VP8 packet has no payload after its descriptor")]
    NoPayload,
}

/// Parses the payload descriptor at the start of an RTP payload. Reserved bits are ignored.
pub fn parse(payload: &[u8]) -> Result<Vp8Descriptor, Vp8Error> {
    let byte = |i: usize| payload.get(i).copied().ok_or(Vp8Error::Truncated);
    let first = byte(0)?;
    let mut d = Vp8Descriptor {
        start_of_partition: first & 0x10 != 0,
        partition_index: first & 0x07,
        picture_id: None,
        tl0_pic_idx: None,
        tid: None,
        layer_sync: false,
        key_idx: None,
        header_len: 1,
        keyframe: false,
    };
    if first & 0x80 != 0 {
        let ext = byte(1)?;
        let mut i = 2;
        if ext & 0x80 != 0 {
            let b = byte(i)?;
            if b & 0x80 != 0 {
                d.picture_id = Some(PictureId { value: u16::from(b & 0x7f) << 8 | u16::from(byte(i + 1)?), long: true });
                i += 2;
            } else {
                d.picture_id = Some(PictureId { value: u16::from(b), long: false });
                i += 1;
            }
        }
        if ext & 0x40 != 0 {
            d.tl0_pic_idx = Some(byte(i)?);
            i += 1;
        }
        if ext & 0x30 != 0 {
            let b = byte(i)?;
            i += 1;
            if ext & 0x20 != 0 {
                d.tid = Some(b >> 6);
                d.layer_sync = b & 0x20 != 0;
            }
            if ext & 0x10 != 0 {
                d.key_idx = Some(b & 0x1f);
            }
        }
        d.header_len = i;
    }
    let tag = payload.get(d.header_len).ok_or(Vp8Error::NoPayload)?;
    d.keyframe = d.frame_start() && tag & 0x01 == 0;
    Ok(d)
}

/// Writes picture id / TL0PICIDX in place (same field sizes as the input: a 7-bit id is written
/// mod 128, 15-bit mod 32768); fields the packet lacks are left alone. `d` is `payload`'s parse.
pub fn write(payload: &mut [u8], d: &Vp8Descriptor, picture_id: u16, tl0_pic_idx: u8) {
    let mut tl0_at = 2;
    match d.picture_id {
        Some(PictureId { long: true, .. }) => {
            if let Some(field) = payload.get_mut(2..4) {
                field.copy_from_slice(&(picture_id & 0x7fff | 0x8000).to_be_bytes());
            }
            tl0_at = 4;
        }
        Some(PictureId { long: false, .. }) => {
            if let Some(field) = payload.get_mut(2) {
                *field = (picture_id & 0x7f) as u8;
            }
            tl0_at = 3;
        }
        None => {}
    }
    if let (Some(_), Some(field)) = (d.tl0_pic_idx, payload.get_mut(tl0_at)) {
        *field = tl0_pic_idx;
    }
}

/// Input frames remembered (by extended picture id) for late packets.
const HISTORY: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not seen yet (skipped over by a newer frame): this output id is kept for it.
    Missing(i64),
    Sent(i64),
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vp8Verdict {
    Forward,
    Drop,
}

/// Per consumer state: continuous picture ids and TL0PICIDX across spatial-layer switches (each
/// simulcast stream has its own encoder and numbering) and across frames it drops (temporal
/// layers above the target). Input frames that are missing (lost, perhaps retransmitted later)
/// keep their output ids, so a gap the publisher's stream has is kept; only dropped frames
/// close up.
#[derive(Debug, Clone)]
pub struct Vp8Munger {
    current: Option<u8>,
    /// The next packet with a picture id starts a stream.
    resync: bool,
    /// Extended input picture id of the newest frame.
    newest_in: i64,
    /// Output = extended input + offset, for frames newer than any seen.
    offset: i64,
    /// Newest output picture id sent (extended).
    last_out: Option<i64>,
    history: [Option<(i64, Fate)>; HISTORY],
    tl0_resync: bool,
    tl0_offset: u8,
    last_tl0: Option<u8>,
}

impl Default for Vp8Munger {
    fn default() -> Self {
        Self::new()
    }
}

impl Vp8Munger {
    pub fn new() -> Self {
        Vp8Munger {
            current: None,
            resync: true,
            newest_in: 0,
            offset: 0,
            last_out: None,
            history: [None; HISTORY],
            tl0_resync: true,
            tl0_offset: 0,
            last_tl0: None,
        }
    }

    /// The next packet starts a new stream (a spatial switch, on its keyframe): its picture id
    /// becomes the last sent + 1, its TL0PICIDX the last sent + 1 (or both kept as-is if nothing
    /// was sent yet).
    pub fn switch_stream(&mut self) {
        self.resync = true;
        self.tl0_resync = true;
    }

    pub fn current_temporal(&self) -> Option<u8> {
        self.current
    }

    /// One packet of the current stream: forwarded (rewritten in place) if its TID (0 without T)
    /// is within the temporal layer now forwarded, else dropped. That layer follows
    /// `max_temporal`: down at once at the next frame start (S=1, PID=0); up only at a frame start
    /// that is a keyframe (straight to `max_temporal`) or has Y set with a TID above the current
    /// layer and within `max_temporal` (to that TID). The first packet starts at `max_temporal`.
    /// A late packet gets its frame's fate; one older than the history (128 frames) is dropped,
    /// unless it is a keyframe (the publisher restarted its numbering: a new stream). Returns the
    /// verdict and the temporal layer now forwarded.
    pub fn process(&mut self, payload: &mut [u8], max_temporal: u8) -> Result<(Vp8Verdict, u8), Vp8Error> {
        let d = parse(payload)?;
        let tid = d.tid.unwrap_or(0);
        let Some(pic) = d.picture_id else {
            if d.frame_start() {
                self.update_layer(&d, max_temporal);
            }
            let layer = *self.current.get_or_insert(max_temporal);
            return Ok((if tid <= layer { Vp8Verdict::Forward } else { Vp8Verdict::Drop }, layer));
        };
        let fate = match self.classify(pic, d.keyframe) {
            Some((ext, None)) => {
                if d.frame_start() {
                    self.update_layer(&d, max_temporal);
                }
                let forward = tid <= *self.current.get_or_insert(max_temporal);
                self.record_new(ext, forward)
            }
            Some((ext, Some(Fate::Missing(out)))) => {
                let fate = if tid <= *self.current.get_or_insert(max_temporal) { Fate::Sent(out) } else { Fate::Dropped };
                self.history[slot(ext)] = Some((ext, fate));
                fate
            }
            Some((_, Some(fate))) => fate,
            None => Fate::Dropped,
        };
        let layer = *self.current.get_or_insert(max_temporal);
        let Fate::Sent(out) = fate else { return Ok((Vp8Verdict::Drop, layer)) };
        self.last_out = Some(self.last_out.map_or(out, |l| l.max(out)));
        let mut tl0_out = 0;
        if let Some(tl0) = d.tl0_pic_idx {
            if self.tl0_resync {
                self.tl0_offset = self.last_tl0.map_or(0, |l| l.wrapping_add(1).wrapping_sub(tl0));
                self.tl0_resync = false;
            }
            tl0_out = tl0.wrapping_add(self.tl0_offset);
            if self.last_tl0.is_none_or(|l| tl0_out.wrapping_sub(l) as i8 > 0) {
                self.last_tl0 = Some(tl0_out);
            }
        }
        write(payload, &d, out.rem_euclid(1 << 15) as u16, tl0_out);
        Ok((Vp8Verdict::Forward, layer))
    }

    /// At a frame start: down to `max_temporal` at once; up (towards it) on a keyframe, or on a
    /// layer sync (Y) frame whose TID is above the current layer and within `max_temporal`.
    fn update_layer(&mut self, d: &Vp8Descriptor, max_temporal: u8) {
        let current = self.current.get_or_insert(max_temporal);
        let tid = d.tid.unwrap_or(0);
        if max_temporal < *current || (max_temporal > *current && d.keyframe) {
            *current = max_temporal;
        } else if d.layer_sync && tid > *current && tid <= max_temporal {
            *current = tid;
        }
    }

    /// The extended input picture id and what became of that frame (None: a new frame), or None
    /// for a packet too old to place.
    fn classify(&mut self, pic: PictureId, keyframe: bool) -> Option<(i64, Option<Fate>)> {
        if !self.resync {
            let modulus: i64 = if pic.long { 1 << 15 } else { 1 << 7 };
            let mut diff = (i64::from(pic.value) - self.newest_in).rem_euclid(modulus);
            if diff >= modulus / 2 {
                diff -= modulus;
            }
            let ext = self.newest_in + diff;
            if diff > 0 {
                return Some((ext, None));
            }
            if let Some((seen, fate)) = self.history[slot(ext)] {
                if seen == ext {
                    return Some((ext, Some(fate)));
                }
            }
            if diff > -(HISTORY as i64) || !keyframe {
                return None;
            }
            // A keyframe from far behind anything remembered: the publisher restarted its numbering.
            self.switch_stream();
        }
        self.resync = false;
        self.history = [None; HISTORY];
        let ext = i64::from(pic.value);
        self.newest_in = ext - 1;
        self.offset = self.last_out.map_or(0, |l| l + 1 - ext);
        Some((ext, None))
    }

    fn record_new(&mut self, ext: i64, forward: bool) -> Fate {
        // Frames skipped over have not arrived (yet): keep their output ids for them.
        for missing in (self.newest_in + 1).max(ext - HISTORY as i64 + 1)..ext {
            self.history[slot(missing)] = Some((missing, Fate::Missing(missing + self.offset)));
        }
        let fate = if forward {
            Fate::Sent(ext + self.offset)
        } else {
            if self.last_out.is_some() {
                self.offset -= 1; // the next frame takes this one's output id
            }
            Fate::Dropped
        };
        self.history[slot(ext)] = Some((ext, fate));
        self.newest_in = ext;
        fate
    }
}

fn slot(ext: i64) -> usize {
    ext.rem_euclid(HISTORY as i64) as usize
}

#[cfg(test)]
#[path = "vp8_tests.rs"]
mod tests;
