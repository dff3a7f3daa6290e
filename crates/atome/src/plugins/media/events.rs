//! What call rooms tell the components that follow them (recording): a call opened or closed, a
//! producer added or closed. Each subscriber gets every event of every room, in each room's order.
use std::sync::Arc;

use sfu::rtp_parameters::MediaKind;
use sfu::{ProducerId, RouterId};
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub room_id: Arc<str>,
    pub what: Happened,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// Someone joined and the call got its router.
    Opened {
        router: RouterId,
    },
    ProducerAdded {
        producer: ProducerId,
        kind: MediaKind,
        peer_user_id: String,
    },
    ProducerClosed {
        producer: ProducerId,
    },
    /// The call is over: its last peer left, or its media worker failed.
    Closed,
}

/// The subscribers' queues, fixed when the plugin starts. Unbounded: a room never waits on a
/// subscriber, and events are a few per producer.
#[derive(Clone, Default)]
pub struct RoomEvents(Arc<[mpsc::UnboundedSender<RoomEvent>]>);

impl RoomEvents {
    pub fn new(subscribers: Vec<mpsc::UnboundedSender<RoomEvent>>) -> RoomEvents {
        RoomEvents(subscribers.into())
    }

    pub fn publish(&self, room_id: &Arc<str>, what: Happened) {
        for subscriber in self.0.iter() {
            let _ = subscriber.send(RoomEvent { room_id: room_id.clone(), what: what.clone() });
        }
    }
}
