//! What a run builds (rooms x publishers x subscribers, the tracks' shape) and what a target
//! driver hands back once every peer is set up.
use std::any::Any;
use std::time::Duration;

use str0m::media::MediaKind;
use tokio::task::JoinHandle;

use crate::media::{PeerReport, SourceSpec};

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub rooms: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub video: SourceSpec,
    pub audio: SourceSpec,
    /// Publishers send their video in simulcast (three VP8 streams, the top one at the video
    /// bitrate; see [`crate::simulcast`]).
    pub simulcast: bool,
    /// The downlink cap of capped subscribers (kbit/s), and how many of each room's
    /// subscribers have it (the first ones).
    pub cap: Option<Cap>,
}

#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub kbps: u32,
    pub per_room: usize,
}

impl Plan {
    pub fn new(rooms: usize, publishers: usize, subscribers: usize, video_kbps: u32, audio_kbps: u32, packet_bytes: usize) -> Plan {
        let video = SourceSpec { kind: MediaKind::Video, kbps: video_kbps, packet_bytes, fps: 30, keyframe_every: Duration::from_secs(2) };
        let audio = SourceSpec { kind: MediaKind::Audio, kbps: audio_kbps, packet_bytes, fps: 50, keyframe_every: Duration::ZERO };
        Plan { rooms, publishers, subscribers, video, audio, simulcast: false, cap: None }
    }

    /// Whether subscriber `s` of a room has a capped downlink.
    pub fn capped(&self, s: usize) -> Option<u32> {
        self.cap.filter(|c| s < c.per_room).map(|c| c.kbps)
    }

    /// Streams forwarded to subscribers: each receives every publisher's audio and video.
    pub fn consumers(&self) -> usize {
        self.rooms * self.subscribers * self.publishers * 2
    }

    /// Test phone number of peer `i` in room `r` (valid French mobile numbers, never dialled).
    pub fn phone(room: usize, i: usize) -> String {
        format!("+3361{:03}{:04}", room % 1000, i % 10_000)
    }
}

/// A room set up by a target driver, as a later subscriber needs it (join storm).
#[derive(Debug, Clone)]
pub enum RoomRef {
    /// Atome or the mediasoup reference (the project's signaling contract): the room id.
    Signaling(String),
    /// Janus VideoRoom: the room number and its publishers' feed ids.
    Janus { room: u64, feeds: Vec<u64> },
}

/// Every peer running, with what must stay alive for the run (signaling sessions).
#[derive(Default)]
pub struct Setup {
    pub publishers: Vec<JoinHandle<PeerReport>>,
    pub subscribers: Vec<JoinHandle<PeerReport>>,
    pub keep: Vec<Box<dyn Any + Send>>,
    pub rooms: Vec<RoomRef>,
}

impl Setup {
    pub fn extend(&mut self, other: Setup) {
        self.publishers.extend(other.publishers);
        self.subscribers.extend(other.subscribers);
        self.keep.extend(other.keep);
        self.rooms.extend(other.rooms);
    }

    pub fn peers(&self) -> usize {
        self.publishers.len() + self.subscribers.len()
    }
}
