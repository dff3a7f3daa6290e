//! Commands: the worker's operations as messages, each with the channel its answer goes back
//! on (how [`crate::Engine`] reaches a worker on another thread). Answering is synchronous:
//! tests may call [`Worker::handle_command`] and read the answer at once.
use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Worker;
use crate::error::{
    CallError, ConnectError, ConsumeError, ConsumerError, CreateTransportError, ProduceError, ProducerError, RouterError, TransportError,
};
use crate::ids::{ConsumerId, Key, ProducerId, RouterId, TransportId};
use crate::rtp_parameters::{DtlsParameters, IceParameters, MediaKind, RtpCapabilities, RtpParameters};
use crate::stats::{RtpStreamStats, TransportQuality, TransportStats};
use crate::{ConsumerOptions, Direction, EngineStats, WebRtcTransportOptions};

/// Where an operation's answer goes.
pub type Reply<T, E> = oneshot::Sender<Result<T, E>>;

pub enum Command {
    CreateRouter {
        reply: Reply<RouterId, RouterError>,
    },
    CloseRouter {
        id: RouterId,
        reply: Reply<(), RouterError>,
    },
    CreateWebRtcTransport {
        router: RouterId,
        direction: Direction,
        caps: Option<RtpCapabilities>,
        reply: Reply<WebRtcTransportOptions, CreateTransportError>,
    },
    CreatePlainTransport {
        router: RouterId,
        remote: SocketAddr,
        reply: Reply<TransportId, CreateTransportError>,
    },
    ConnectTransport {
        id: TransportId,
        dtls: DtlsParameters,
        reply: Reply<(), ConnectError>,
    },
    CloseTransport {
        id: TransportId,
        reply: Reply<(), TransportError>,
    },
    RestartIce {
        id: TransportId,
        reply: Reply<IceParameters, TransportError>,
    },
    Produce {
        transport: TransportId,
        kind: MediaKind,
        params: RtpParameters,
        reply: Reply<ProducerId, ProduceError>,
    },
    Consume {
        transport: TransportId,
        producer: ProducerId,
        caps: RtpCapabilities,
        reply: Reply<ConsumerOptions, ConsumeError>,
    },
    SetConsumerPaused {
        id: ConsumerId,
        paused: bool,
        reply: Reply<(), ConsumerError>,
    },
    SetConsumerPreferredLayers {
        id: ConsumerId,
        spatial: u8,
        temporal: Option<u8>,
        reply: Reply<Option<(u8, u8)>, ConsumerError>,
    },
    RequestConsumerKeyframe {
        id: ConsumerId,
        reply: Reply<(), ConsumerError>,
    },
    SetConsumerPriority {
        id: ConsumerId,
        priority: u8,
        reply: Reply<u8, ConsumerError>,
    },
    SetProducerPaused {
        id: ProducerId,
        paused: bool,
        reply: Reply<(), ProducerError>,
    },
    CloseProducer {
        id: ProducerId,
        reply: Reply<(), ProducerError>,
    },
    RequestKeyframe {
        id: ProducerId,
        reply: Reply<(), ProducerError>,
    },
    Stats {
        reply: Reply<EngineStats, CallError>,
    },
    TransportStats {
        id: TransportId,
        reply: Reply<TransportStats, TransportError>,
    },
    ProducerStats {
        id: ProducerId,
        reply: Reply<Vec<RtpStreamStats>, ProducerError>,
    },
    ConsumerStats {
        id: ConsumerId,
        reply: Reply<Vec<RtpStreamStats>, ConsumerError>,
    },
    TransportQualities {
        reply: Reply<Vec<TransportQuality>, CallError>,
    },
    /// Panics while handling it: on `transport` (closed then), or for good when `None`.
    #[cfg(any(test, feature = "fault-injection"))]
    InjectFault {
        transport: Option<TransportId>,
        reply: Reply<(), CallError>,
    },
}

impl Worker {
    /// Runs one command and answers it. A caller gone before the answer is not an error.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.advance(now);
        self.current = self.transport_of(&cmd);
        match cmd {
            Command::CreateRouter { reply } => {
                let _ = reply.send(Ok(self.create_router()));
            }
            Command::CloseRouter { id, reply } => {
                let _ = reply.send(self.close_router(&id));
            }
            Command::CreateWebRtcTransport { router, direction, caps, reply } => {
                let _ = reply.send(self.create_webrtc_transport(now, &router, direction, caps));
            }
            Command::CreatePlainTransport { router, remote, reply } => {
                let _ = reply.send(self.create_plain_transport(&router, remote));
            }
            Command::ConnectTransport { id, dtls, reply } => {
                let _ = reply.send(self.connect_transport(&id, &dtls));
            }
            Command::CloseTransport { id, reply } => {
                let _ = reply.send(self.close_transport(&id));
            }
            Command::RestartIce { id, reply } => {
                let _ = reply.send(self.restart_ice(&id));
            }
            Command::Produce { transport, kind, params, reply } => {
                let _ = reply.send(self.produce(now, &transport, kind, params));
            }
            Command::Consume { transport, producer, caps, reply } => {
                let _ = reply.send(self.consume(&transport, &producer, &caps));
            }
            Command::SetConsumerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_consumer_paused(now, &id, paused));
            }
            Command::SetConsumerPreferredLayers { id, spatial, temporal, reply } => {
                let _ = reply.send(self.set_consumer_preferred_layers(&id, spatial, temporal));
            }
            Command::RequestConsumerKeyframe { id, reply } => {
                let _ = reply.send(self.request_consumer_keyframe(now, &id));
            }
            Command::SetConsumerPriority { id, priority, reply } => {
                let _ = reply.send(self.set_consumer_priority(&id, priority));
            }
            Command::SetProducerPaused { id, paused, reply } => {
                let _ = reply.send(self.set_producer_paused(now, &id, paused));
            }
            Command::CloseProducer { id, reply } => {
                let _ = reply.send(self.close_producer(&id));
            }
            Command::RequestKeyframe { id, reply } => {
                let _ = reply.send(self.request_keyframe(now, &id));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::TransportStats { id, reply } => {
                let _ = reply.send(self.transport_stats(&id));
            }
            Command::ProducerStats { id, reply } => {
                let _ = reply.send(self.producer_stats(&id));
            }
            Command::ConsumerStats { id, reply } => {
                let _ = reply.send(self.consumer_stats(&id));
            }
            Command::TransportQualities { reply } => {
                let _ = reply.send(Ok(self.transport_qualities()));
            }
            #[cfg(any(test, feature = "fault-injection"))]
            Command::InjectFault { transport, reply } => {
                drop(reply); // unanswered: the caller sees the fault
                match transport {
                    Some(_) => panic!("injected fault on a transport"),
                    None => {
                        self.current = None;
                        self.fail_always = true;
                        panic!("injected fault: the worker fails from now on")
                    }
                }
            }
        }
        self.current = None;
    }

    /// The transport a command acts on (closed if handling the command panics).
    fn transport_of(&self, cmd: &Command) -> Option<Key> {
        let of_producer = |id: &ProducerId| self.producer_key(id).and_then(|k| self.producers.get(&k)).map(|p| p.transport());
        match cmd {
            Command::ConnectTransport { id, .. } | Command::CloseTransport { id, .. } | Command::RestartIce { id, .. } => {
                self.transport_key(id)
            }
            Command::Produce { transport, .. } | Command::Consume { transport, .. } => self.transport_key(transport),
            Command::SetConsumerPaused { id, .. }
            | Command::SetConsumerPreferredLayers { id, .. }
            | Command::RequestConsumerKeyframe { id, .. }
            | Command::SetConsumerPriority { id, .. } => self.consumer_key(id).and_then(|k| self.consumers.get(&k)).map(|c| c.transport()),
            Command::SetProducerPaused { id, .. } | Command::CloseProducer { id, .. } | Command::RequestKeyframe { id, .. } => {
                of_producer(id)
            }
            #[cfg(any(test, feature = "fault-injection"))]
            Command::InjectFault { transport: Some(id), .. } => self.transport_key(id),
            _ => None,
        }
    }
}
