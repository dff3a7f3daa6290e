//! The engine handle: starts one worker thread per UDP port ([`crate::driver`]) and sends each
//! operation to the worker its id names, awaiting the answer. Cheap to clone; the workers stop
//! when the last handle is dropped.
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Driver, Exit};
use crate::error::{
    CallError, ConnectError, ConsumeError, ConsumerError, CreateTransportError, ProduceError, ProducerError, RouterError, StartError,
    TransportError,
};
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::rtp_parameters::{DtlsParameters, IceParameters, MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use crate::stats::{RtpStreamStats, TransportQuality, TransportStats};
use crate::tcp::TcpMux;
use crate::wake::{self, Waker};
use crate::worker::{Command, Worker, WorkerConfig};
use crate::{ConsumerOptions, Direction, EngineEvent, EngineStats, WebRtcTransportOptions, WorkerStats};

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
    /// ICE over TCP: each worker also listens on TCP at its UDP port and offers a passive TCP
    /// candidate after the UDP one (RFC 6544), for clients whose UDP is blocked.
    pub tcp: bool,
    /// Downlink bandwidth estimation: each receive transport whose client sends transport-cc
    /// feedback estimates what it may send (the feedback into str0m's estimator, with its
    /// pacer) and its simulcast consumers get the best layers that fit ([`crate::allocator`]).
    /// Off (or without the client's feedback): every consumer forwards its preferred layer
    /// whatever the client's downlink.
    pub downlink_bwe: bool,
}

impl EngineConfig {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Enough for two retransmission rounds at 150 ms of round trip (Janus keeps 200 ms at
    /// least, growing with the round trip; libwebrtc about 1 s).
    pub const DEFAULT_NACK_HISTORY: Duration = Duration::from_millis(500);
}

/// Binds a worker's UDP socket and, with `tcp`, a TCP listener on the same port. On port 0 a
/// free UDP port whose TCP twin is taken is given back and another one tried.
fn bind(addr: SocketAddr, tcp: bool) -> Result<(UdpSocket, Option<TcpMux>), StartError> {
    const ATTEMPTS: usize = 20;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let socket = UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        crate::udp::grow_buffers(&socket);
        if !tcp {
            return Ok((socket, None));
        }
        let local = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        match TcpListener::bind(local).and_then(TcpMux::new) {
            Ok(mux) => return Ok((socket, Some(mux))),
            Err(source) if addr.port() == 0 => last = Some(source),
            Err(source) => return Err(StartError::Bind { addr: local, source }),
        }
    }
    let source = last.unwrap_or_else(|| std::io::Error::other("no free port pair")); // set by the loop above
    Err(StartError::Bind { addr, source })
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

struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    /// Wakes the worker's thread for a command queued.
    waker: Waker,
    addr: SocketAddr,
    routers: AtomicUsize,
    failed: Arc<AtomicBool>,
    /// CPU time of the worker's thread in nanoseconds, written by the thread (driver.rs).
    cpu_ns: Arc<AtomicU64>,
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
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        let caps = Arc::new(ortc::router_rtp_capabilities(&config.media_codecs)?);
        let mut workers = Vec::new();
        // Unbounded: a worker never waits on signaling. Events are rare (one per lost transport).
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        for index in 0..config.workers.max(1) {
            let port = if config.base_port == 0 { 0 } else { config.base_port.saturating_add(index as u16) };
            let addr = SocketAddr::new(config.listen_ip, port);
            let (socket, tcp) = bind(addr, config.tcp)?;
            let local = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            let worker_config = WorkerConfig {
                index,
                addr: SocketAddr::new(config.announced_ip, local.port()),
                caps: caps.clone(),
                nack_history: config.nack_history,
                idle_timeout: config.idle_timeout,
                tcp: config.tcp,
                downlink_bwe: config.downlink_bwe,
            };
            let (tx, rx) = std_mpsc::channel();
            let (waker, wakeups) = wake::pair().map_err(StartError::Spawn)?;
            let worker_events = events_tx.clone();
            let failed = Arc::new(AtomicBool::new(false));
            let notice = DeathNotice { index, failed: failed.clone(), events: events_tx.clone(), armed: true };
            let cpu_ns = Arc::new(AtomicU64::new(0));
            let thread_cpu_ns = cpu_ns.clone();
            std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || {
                    let mut notice = notice; // the whole guard moves into the thread
                    let worker = Worker::new(worker_config, Instant::now());
                    let exit = Driver::new(worker, socket, tcp, rx, wakeups, worker_events, thread_cpu_ns).run();
                    notice.armed = exit != Exit::EngineDropped;
                })
                .map_err(StartError::Spawn)?;
            tracing::info!(worker = index, %local, tcp = config.tcp, "media worker started");
            workers.push(WorkerHandle { commands: tx, waker, addr: local, routers: AtomicUsize::new(0), failed, cpu_ns });
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

    /// Sends a command to worker `worker` (None or out of range: `not_found`) and awaits its
    /// answer.
    async fn call<T, E: From<CallError>>(
        &self,
        worker: Option<usize>,
        not_found: E,
        make: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Command,
    ) -> Result<T, E> {
        let Some(handle) = worker.and_then(|i| self.workers.get(i)) else { return Err(not_found) };
        if handle.failed.load(Ordering::SeqCst) {
            return Err(CallError::WorkerGone.into());
        }
        let (tx, rx) = oneshot::channel();
        handle.commands.send(make(tx)).map_err(|_| E::from(CallError::WorkerGone))?;
        handle.waker.wake();
        // A reply dropped unanswered: the worker panicked on this command (and closed what it
        // touched) or stopped altogether.
        rx.await.map_err(|_| E::from(if handle.failed.load(Ordering::SeqCst) { CallError::WorkerGone } else { CallError::Fault }))?
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
    pub async fn inject_fault(&self, worker: usize, transport: Option<TransportId>) -> Result<(), CallError> {
        self.call(Some(worker), CallError::WorkerGone, |reply| Command::InjectFault { transport, reply }).await
    }

    /// A new router on the least loaded running worker.
    pub async fn create_router(&self) -> Result<RouterId, RouterError> {
        let (index, handle) = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.failed.load(Ordering::SeqCst))
            .min_by_key(|(_, w)| w.routers.load(Ordering::Relaxed))
            .ok_or(RouterError::Call(CallError::WorkerGone))?;
        let id = self.call(Some(index), RouterError::Call(CallError::WorkerGone), |reply| Command::CreateRouter { reply }).await?;
        handle.routers.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Closes a router and everything in it.
    pub async fn close_router(&self, id: RouterId) -> Result<(), RouterError> {
        let worker = id.worker();
        self.call(worker, RouterError::UnknownRouter, |reply| Command::CloseRouter { id, reply }).await?;
        if let Some(w) = worker.and_then(|i| self.workers.get(i)) {
            let _ = w.routers.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        Ok(())
    }

    /// A WebRTC transport. `caps`: the client's capabilities. A send transport needs its
    /// `sendRtpCapabilities` (the payload types and extension ids it sends with); for a receive
    /// transport they are optional (`device.rtpCapabilities`): when they lack transport-cc, the
    /// downlink is not estimated (see [`EngineConfig::downlink_bwe`]).
    pub async fn create_webrtc_transport(
        &self,
        router: RouterId,
        direction: Direction,
        caps: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, CreateTransportError> {
        self.call(router.worker(), CreateTransportError::UnknownRouter, |reply| Command::CreateWebRtcTransport {
            router,
            direction,
            caps,
            reply,
        })
        .await
    }

    /// A plain RTP transport that sends to `remote` (a local recorder such as FFmpeg).
    pub async fn create_plain_transport(&self, router: RouterId, remote: SocketAddr) -> Result<TransportId, CreateTransportError> {
        self.call(router.worker(), CreateTransportError::UnknownRouter, |reply| Command::CreatePlainTransport { router, remote, reply })
            .await
    }

    /// Asks a video producer for a keyframe now (throttled to one per second).
    pub async fn request_keyframe(&self, id: ProducerId) -> Result<(), ProducerError> {
        self.call(id.worker(), ProducerError::UnknownProducer, |reply| Command::RequestKeyframe { id, reply }).await
    }

    pub async fn connect_transport(&self, id: TransportId, dtls: DtlsParameters) -> Result<(), ConnectError> {
        self.call(id.worker(), ConnectError::UnknownTransport, |reply| Command::ConnectTransport { id, dtls, reply }).await
    }

    /// Closes a transport and everything on it (a plain transport's recorder hears RTCP BYE).
    pub async fn close_transport(&self, id: TransportId) -> Result<(), TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::CloseTransport { id, reply }).await
    }

    /// restartIce: new ICE parameters for a WebRTC transport (the client restarts ICE with them).
    pub async fn restart_ice(&self, id: TransportId) -> Result<IceParameters, TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::RestartIce { id, reply }).await
    }

    /// A producer of `kind` on a send transport.
    pub async fn produce(&self, transport: TransportId, kind: MediaKind, params: RtpParameters) -> Result<ProducerId, ProduceError> {
        self.call(transport.worker(), ProduceError::UnknownTransport, |reply| Command::Produce { transport, kind, params, reply }).await
    }

    /// A consumer of `producer` on `transport` for a peer with `caps`; starts paused.
    pub async fn consume(
        &self,
        transport: TransportId,
        producer: ProducerId,
        caps: RtpCapabilities,
    ) -> Result<ConsumerOptions, ConsumeError> {
        if producer.worker() != transport.worker() {
            return Err(ConsumeError::OtherRouter);
        }
        self.call(transport.worker(), ConsumeError::UnknownTransport, |reply| Command::Consume { transport, producer, caps, reply }).await
    }

    pub async fn resume_consumer(&self, id: ConsumerId) -> Result<(), ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: false, reply }).await
    }

    pub async fn pause_consumer(&self, id: ConsumerId) -> Result<(), ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: true, reply }).await
    }

    /// See [`Worker::set_consumer_preferred_layers`](crate::worker::Worker::set_consumer_preferred_layers).
    pub async fn set_consumer_preferred_layers(
        &self,
        id: ConsumerId,
        spatial: u8,
        temporal: Option<u8>,
    ) -> Result<Option<(u8, u8)>, ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::SetConsumerPreferredLayers { id, spatial, temporal, reply })
            .await
    }

    /// See [`Worker::set_consumer_priority`](crate::worker::Worker::set_consumer_priority).
    pub async fn set_consumer_priority(&self, id: ConsumerId, priority: u8) -> Result<u8, ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::SetConsumerPriority { id, priority, reply }).await
    }

    /// See [`Worker::request_consumer_keyframe`](crate::worker::Worker::request_consumer_keyframe).
    pub async fn request_consumer_keyframe(&self, id: ConsumerId) -> Result<(), ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::RequestConsumerKeyframe { id, reply }).await
    }

    pub async fn pause_producer(&self, id: ProducerId) -> Result<(), ProducerError> {
        self.call(id.worker(), ProducerError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: true, reply }).await
    }

    pub async fn resume_producer(&self, id: ProducerId) -> Result<(), ProducerError> {
        self.call(id.worker(), ProducerError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: false, reply }).await
    }

    pub async fn close_producer(&self, id: ProducerId) -> Result<(), ProducerError> {
        self.call(id.worker(), ProducerError::UnknownProducer, |reply| Command::CloseProducer { id, reply }).await
    }

    /// Counters summed over the running workers.
    pub async fn stats(&self) -> Result<EngineStats, CallError> {
        let mut total = EngineStats { workers: self.workers.len(), ..Default::default() };
        for (i, w) in self.workers.iter().enumerate() {
            if w.failed.load(Ordering::SeqCst) {
                continue; // its objects are gone; /health lists it as failed
            }
            let s = self.call(Some(i), CallError::WorkerGone, |reply| Command::Stats { reply }).await?;
            total.add(&s);
        }
        Ok(total)
    }

    /// `WebRtcTransport.getStats()`.
    pub async fn transport_stats(&self, id: TransportId) -> Result<TransportStats, TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::TransportStats { id, reply }).await
    }

    /// `Producer.getStats()`: its inbound stream.
    pub async fn producer_stats(&self, id: ProducerId) -> Result<Vec<RtpStreamStats>, ProducerError> {
        self.call(id.worker(), ProducerError::UnknownProducer, |reply| Command::ProducerStats { id, reply }).await
    }

    /// `Consumer.getStats()`: its outbound stream, then its producer's inbound one.
    pub async fn consumer_stats(&self, id: ConsumerId) -> Result<Vec<RtpStreamStats>, ConsumerError> {
        self.call(id.worker(), ConsumerError::UnknownConsumer, |reply| Command::ConsumerStats { id, reply }).await
    }

    /// Every WebRTC transport's figures, over the running workers (metrics).
    pub async fn transport_qualities(&self) -> Vec<TransportQuality> {
        let mut out = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            if w.failed.load(Ordering::SeqCst) {
                continue;
            }
            if let Ok(q) = self.call(Some(i), CallError::WorkerGone, |reply| Command::TransportQualities { reply }).await {
                out.extend(q);
            }
        }
        out
    }

    /// Each worker's figures, in worker order (for metrics): a worker that failed for good, or
    /// that does not answer, has `up: false` and no counters; its CPU time is still given.
    pub async fn worker_stats(&self) -> Vec<WorkerStats> {
        let mut out = Vec::with_capacity(self.workers.len());
        for (index, w) in self.workers.iter().enumerate() {
            let stats = if w.failed.load(Ordering::SeqCst) {
                None
            } else {
                self.call(Some(index), CallError::WorkerGone, |reply| Command::Stats { reply }).await.ok()
            };
            let cpu_seconds = w.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9;
            out.push(WorkerStats { index, up: stats.is_some(), cpu_seconds, stats });
        }
        out
    }
}
