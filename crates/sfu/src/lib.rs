//! Atome media engine: a mediasoup-compatible SFU built on str0m (sans-IO WebRTC).
//!
//! Object model after mediasoup: an [`Engine`] owns worker threads; a worker owns one UDP socket
//! and every router, transport, producer and consumer placed on it. The handle sends commands
//! to the owning worker (the worker index is part of every id) and awaits the reply.
pub mod ids;
pub mod ortc;
mod plain;
pub mod rtp_parameters;
pub mod seq;
pub mod seq_guard;
mod transport;
mod udp;
mod worker;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use ids::{ConsumerId, ProducerId, RouterId, TransportId};
use rtp_parameters::{DtlsParameters, IceCandidate, IceParameters, MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use worker::Command;

/// What the engine decides on its own, for the signaling layer to pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// A transport was closed because its peer closed it (DTLS close) or went silent; its
    /// producers and consumers (listed) are closed too, and every consumer of those producers.
    TransportClosed { transport: TransportId, producers: Vec<ProducerId>, consumers: Vec<ConsumerId>, reason: CloseReason },
    /// A worker stopped for good (its faults repeated past recovery): every router on it and
    /// everything in them is gone, and no new router is placed on it.
    WorkerDied { worker: usize },
}

/// A worker's state, as `/health` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Running,
    Failed,
}

/// One worker as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub index: usize,
    pub state: WorkerState,
    pub routers: usize,
    pub addr: SocketAddr,
}

/// Marks its worker failed and says so on the event stream when dropped armed: when the worker
/// thread ends other than by the engine being dropped (a panic escaping, or faults repeating).
struct DeathNotice {
    index: usize,
    failed: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<EngineEvent>,
    armed: bool,
}

impl Drop for DeathNotice {
    fn drop(&mut self) {
        if self.armed {
            self.failed.store(true, Ordering::SeqCst);
            tracing::error!(worker = self.index, "media worker failed; its routers are gone");
            let _ = self.events.send(EngineEvent::WorkerDied { worker: self.index });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer ended DTLS, or its fingerprint did not match.
    PeerClosed,
    /// Nothing heard for the engine's idle timeout.
    Silent,
    /// The worker failed (panicked) while handling this transport; see the server log.
    Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub workers: usize,
    pub listen_ip: IpAddr,
    pub announced_ip: IpAddr,
    /// Worker i binds `base_port + i`; 0 binds free ports.
    pub base_port: u16,
    pub media_codecs: Vec<RtpCodecCapability>,
    /// How long a video consumer keeps what it sent, to answer the receiver's NACKs
    /// ([`EngineConfig::DEFAULT_NACK_HISTORY`]). The largest part of a consumer's memory:
    /// ~55 KiB per 1 Mbit/s of video at 500 ms.
    pub nack_history: Duration,
    /// A WebRTC transport that has heard from its peer and then hears nothing (no STUN consent,
    /// RTCP or media) for this long is closed, with an [`EngineEvent::TransportClosed`].
    /// Browsers send consent checks every few seconds even when no media flows.
    pub idle_timeout: Duration,
}

impl EngineConfig {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Enough for two retransmission rounds at 150 ms of round trip (Janus keeps 200 ms at
    /// least, growing with the round trip; libwebrtc about 1 s).
    pub const DEFAULT_NACK_HISTORY: Duration = Duration::from_millis(500);
}

/// Why an engine operation failed. [`EngineError::code`] is the stable signaling code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Ortc(#[from] ortc::OrtcError),
    #[error("unknown router")]
    UnknownRouter,
    #[error("unknown transport")]
    UnknownTransport,
    #[error("unknown producer")]
    UnknownProducer,
    #[error("unknown consumer")]
    UnknownConsumer,
    #[error("the producer belongs to another router")]
    OtherRouter,
    #[error("this operation needs a {0:?} transport")]
    WrongDirection(Direction),
    #[error("a send transport needs the client's rtpCapabilities (device.sendRtpCapabilities)")]
    MissingSendCapabilities,
    #[error("the transport is already connected")]
    AlreadyConnected,
    #[error("DTLS: {0}")]
    Dtls(String),
    #[error("invalid parameters: {0}")]
    Invalid(String),
    #[error("the media worker has stopped")]
    WorkerGone,
    /// mediasoup's RtpListener rule: an SSRC (media or RTX) is produced once per transport.
    #[error("ssrc {0} is already produced on this transport")]
    DuplicateSsrc(u32),
    /// mediasoup's RtpListener rule: a mid is produced once per transport.
    #[error("mid {0:?} is already produced on this transport")]
    DuplicateMid(String),
    /// str0m verifies DTLS fingerprints of these algorithms only (mediasoup also takes
    /// sha-224/384/512).
    #[error("DTLS fingerprint algorithm {0:?} is not supported: give a sha-256 or sha-1 fingerprint")]
    UnsupportedFingerprint(String),
    /// The worker failed while handling this operation; the objects it touched were closed.
    #[error("the media worker failed on this operation; the objects involved were closed")]
    Fault,
}

impl EngineError {
    /// The signaling error code for this error (documented in docs/signaling-errors.md).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Ortc(e) => e.code(),
            EngineError::UnknownRouter | EngineError::UnknownTransport | EngineError::UnknownProducer | EngineError::UnknownConsumer => {
                "not_found"
            }
            EngineError::OtherRouter => "not_found",
            EngineError::WrongDirection(_) => "wrong_direction",
            EngineError::MissingSendCapabilities | EngineError::Invalid(_) => "invalid_parameters",
            EngineError::AlreadyConnected => "already_connected",
            EngineError::DuplicateSsrc(_) => "duplicate_ssrc",
            EngineError::DuplicateMid(_) => "duplicate_mid",
            EngineError::UnsupportedFingerprint(_) => "unsupported_fingerprint",
            EngineError::Dtls(_) | EngineError::Bind { .. } | EngineError::Fault => "internal",
            EngineError::WorkerGone => "worker_unavailable",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebRtcTransportOptions {
    pub id: TransportId,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub dtls_parameters: DtlsParameters,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerOptions {
    pub id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
}

/// Counters of objects alive and traffic, summed over workers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EngineStats {
    pub workers: usize,
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub rtp_forwarded: u64,
    pub keyframe_requests: u64,
    pub datagrams_dropped: u64,
    /// RTP packets kept from str0m by the sequence guard (far behind, or a jump never confirmed).
    pub rtp_guarded: u64,
}

impl EngineStats {
    fn add(&mut self, o: &EngineStats) {
        self.routers += o.routers;
        self.transports += o.transports;
        self.producers += o.producers;
        self.consumers += o.consumers;
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.rtp_forwarded += o.rtp_forwarded;
        self.keyframe_requests += o.keyframe_requests;
        self.datagrams_dropped += o.datagrams_dropped;
        self.rtp_guarded += o.rtp_guarded;
    }
}

struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    addr: SocketAddr,
    routers: AtomicUsize,
    failed: Arc<AtomicBool>,
}

/// Handle to the media engine; cheap to clone. Workers stop when the last handle is dropped.
#[derive(Clone)]
pub struct Engine {
    workers: Arc<Vec<WorkerHandle>>,
    caps: Arc<RtpCapabilities>,
    /// Taken once by whoever passes engine events on (see [`Engine::take_events`]).
    events: Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<EngineEvent>>>>,
}

impl Engine {
    /// Binds one UDP socket per worker and starts the worker threads.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let caps = Arc::new(ortc::router_rtp_capabilities(&config.media_codecs)?);
        let mut workers = Vec::new();
        // Unbounded: a worker never waits on signaling. Events are rare (one per lost transport).
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        for index in 0..config.workers.max(1) {
            let port = if config.base_port == 0 { 0 } else { config.base_port.saturating_add(index as u16) };
            let addr = SocketAddr::new(config.listen_ip, port);
            let socket = UdpSocket::bind(addr).map_err(|source| EngineError::Bind { addr, source })?;
            let local = socket.local_addr().map_err(|source| EngineError::Bind { addr, source })?;
            let announced = SocketAddr::new(config.announced_ip, local.port());
            let (tx, rx) = std_mpsc::channel();
            let settings =
                worker::Settings { nack_history: config.nack_history, idle_timeout: config.idle_timeout, events: events_tx.clone() };
            let w = worker::Worker::new(index, socket, announced, caps.clone(), settings);
            let failed = Arc::new(AtomicBool::new(false));
            let notice = DeathNotice { index, failed: failed.clone(), events: events_tx.clone(), armed: true };
            std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || {
                    let mut notice = notice; // the whole guard moves into the thread
                    let exit = w.run(rx);
                    notice.armed = exit != worker::Exit::EngineDropped;
                })
                .map_err(|source| EngineError::Bind { addr, source })?;
            tracing::info!(worker = index, %local, "media worker started");
            workers.push(WorkerHandle { commands: tx, addr: local, routers: AtomicUsize::new(0), failed });
        }
        Ok(Engine { workers: Arc::new(workers), caps, events: Arc::new(std::sync::Mutex::new(Some(events_rx))) })
    }

    /// The engine's own decisions (transports closed for silence or by their peer). The first
    /// call gets the stream; later calls get `None`. Without a taker, events are dropped.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<EngineEvent>> {
        // A poisoned lock only means another taker panicked: the Option is still valid.
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn rtp_capabilities(&self) -> &RtpCapabilities {
        &self.caps
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// The UDP address each worker listens on.
    pub fn worker_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.addr).collect()
    }

    async fn call<T>(
        &self,
        worker: Option<usize>,
        not_found: EngineError,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let handle = worker.and_then(|i| self.workers.get(i)).ok_or(not_found)?;
        if handle.failed.load(Ordering::SeqCst) {
            return Err(EngineError::WorkerGone);
        }
        let (tx, rx) = oneshot::channel();
        handle.commands.send(make(tx)).map_err(|_| EngineError::WorkerGone)?;
        // A reply dropped unanswered: the worker panicked on this command (and closed what it
        // touched) or stopped altogether.
        rx.await.map_err(|_| if handle.failed.load(Ordering::SeqCst) { EngineError::WorkerGone } else { EngineError::Fault })?
    }

    /// Each worker's state, router count and UDP address.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .enumerate()
            .map(|(index, w)| WorkerInfo {
                index,
                state: if w.failed.load(Ordering::SeqCst) { WorkerState::Failed } else { WorkerState::Running },
                routers: w.routers.load(Ordering::Relaxed),
                addr: w.addr,
            })
            .collect()
    }

    /// Makes a worker panic: on `transport` (which is then closed), or for good (`None`).
    #[cfg(any(test, feature = "fault-injection"))]
    pub async fn inject_fault(&self, worker: usize, transport: Option<TransportId>) -> Result<(), EngineError> {
        self.call(Some(worker), EngineError::WorkerGone, |reply| Command::InjectFault { transport, reply }).await
    }

    /// A new router on the least loaded worker.
    pub async fn create_router(&self) -> Result<RouterId, EngineError> {
        let (index, handle) = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.failed.load(Ordering::SeqCst))
            .min_by_key(|(_, w)| w.routers.load(Ordering::Relaxed))
            .ok_or(EngineError::WorkerGone)?;
        let id = self.call(Some(index), EngineError::WorkerGone, |reply| Command::CreateRouter { reply }).await?;
        handle.routers.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Closes a router and everything in it.
    pub async fn close_router(&self, id: RouterId) -> Result<(), EngineError> {
        let worker = id.worker();
        self.call(worker, EngineError::UnknownRouter, |reply| Command::CloseRouter { id, reply }).await?;
        if let Some(w) = worker.and_then(|i| self.workers.get(i)) {
            let _ = w.routers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        Ok(())
    }

    pub async fn create_webrtc_transport(
        &self,
        router: RouterId,
        direction: Direction,
        send_rtp_capabilities: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, EngineError> {
        if let Some(caps) = &send_rtp_capabilities {
            ortc::validate_send_capabilities(&self.caps, caps)?;
        }
        self.call(router.worker(), EngineError::UnknownRouter, |reply| Command::CreateTransport {
            router,
            direction,
            send_caps: send_rtp_capabilities,
            reply,
        })
        .await
    }

    /// A plain RTP transport that sends to `remote` (a local recorder such as FFmpeg).
    pub async fn create_plain_transport(&self, router: RouterId, remote: SocketAddr) -> Result<TransportId, EngineError> {
        self.call(router.worker(), EngineError::UnknownRouter, |reply| Command::CreatePlainTransport { router, remote, reply }).await
    }

    /// Asks a video producer for a keyframe now (throttled to one per second).
    pub async fn request_keyframe(&self, id: ProducerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownProducer, |reply| Command::RequestKeyframe { id, reply }).await
    }

    pub async fn connect_transport(&self, id: TransportId, dtls: DtlsParameters) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownTransport, |reply| Command::ConnectTransport { id, dtls, reply }).await
    }

    pub async fn close_transport(&self, id: TransportId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownTransport, |reply| Command::CloseTransport { id, reply }).await
    }

    /// A producer of `kind` on a send transport. The parameters are validated here, on the
    /// caller's task, before the worker sees them.
    pub async fn produce(&self, transport: TransportId, kind: MediaKind, rtp_parameters: RtpParameters) -> Result<ProducerId, EngineError> {
        ortc::validate_rtp_parameters(kind, &rtp_parameters)?;
        self.call(transport.worker(), EngineError::UnknownTransport, |reply| Command::Produce {
            transport,
            kind,
            params: rtp_parameters,
            reply,
        })
        .await
    }

    /// A consumer of `producer` on `transport` for a peer with `rtp_capabilities`; starts paused.
    pub async fn consume(
        &self,
        transport: TransportId,
        producer: ProducerId,
        rtp_capabilities: RtpCapabilities,
    ) -> Result<ConsumerOptions, EngineError> {
        if producer.worker() != transport.worker() {
            return Err(EngineError::OtherRouter);
        }
        self.call(transport.worker(), EngineError::UnknownTransport, |reply| Command::Consume {
            transport,
            producer,
            caps: rtp_capabilities,
            reply,
        })
        .await
    }

    pub async fn resume_consumer(&self, id: ConsumerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: false, reply }).await
    }

    pub async fn pause_consumer(&self, id: ConsumerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: true, reply }).await
    }

    pub async fn pause_producer(&self, id: ProducerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: true, reply }).await
    }

    pub async fn resume_producer(&self, id: ProducerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: false, reply }).await
    }

    pub async fn close_producer(&self, id: ProducerId) -> Result<(), EngineError> {
        self.call(id.worker(), EngineError::UnknownProducer, |reply| Command::CloseProducer { id, reply }).await
    }

    /// Counters summed over all workers.
    pub async fn stats(&self) -> Result<EngineStats, EngineError> {
        let mut total = EngineStats { workers: self.workers.len(), ..Default::default() };
        for (i, w) in self.workers.iter().enumerate() {
            if w.failed.load(Ordering::SeqCst) {
                continue; // its objects are gone; /health lists it as failed
            }
            let s = self.call(Some(i), EngineError::WorkerGone, |reply| Command::Stats { reply }).await?;
            total.add(&s);
        }
        Ok(total)
    }
}
