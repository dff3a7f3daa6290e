//! The engine handle: starts the workers, routes each call to the worker named in the id and
//! awaits its reply.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::error::{ConsumeError, ProduceError, RouterError, StartError, TransportError, WorkerGone};
use crate::events::EngineEvent;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::ortc;
use crate::rtp_parameters::{DtlsParameters, MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use crate::worker::{Command, Worker};
use crate::{ConsumerOptions, ConsumerStats, Direction, EngineStats, ProducerStats, TransportStats, WebRtcTransportOptions};

/// Events buffered for the server before new ones are dropped (and counted).
const EVENT_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads (at least one is started).
    pub workers: usize,
    pub listen_ip: IpAddr,
    /// The address put in ICE candidates (the public one behind NAT).
    pub announced_ip: IpAddr,
    /// Worker i binds `base_port + i`; 0 binds free ports.
    pub base_port: u16,
    pub media_codecs: Vec<RtpCodecCapability>,
}

struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    addr: SocketAddr,
    routers: AtomicUsize,
}

/// Handle to the media engine; cheap to clone, `Send + Sync`. Workers stop when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Engine {
    workers: Arc<Vec<WorkerHandle>>,
    caps: Arc<RtpCapabilities>,
    events: Arc<Mutex<Option<mpsc::Receiver<EngineEvent>>>>,
}

impl Engine {
    /// Binds one UDP socket per worker and starts the worker threads.
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        let caps = Arc::new(ortc::router_rtp_capabilities(&config.media_codecs)?);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let mut workers = Vec::new();
        for index in 0..config.workers.max(1) {
            let port = match config.base_port {
                0 => 0,
                base => u16::try_from(index).ok().and_then(|i| base.checked_add(i)).ok_or_else(|| StartError::Bind {
                    addr: SocketAddr::new(config.listen_ip, base),
                    source: std::io::Error::other("worker port above 65535"),
                })?,
            };
            let addr = SocketAddr::new(config.listen_ip, port);
            let socket = UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
            let local = socket.local_addr().map_err(|source| StartError::Bind { addr, source })?;
            let announced = SocketAddr::new(config.announced_ip, local.port());
            let (tx, rx) = std_mpsc::channel();
            let worker = Worker::new(index, socket, announced, caps.clone(), events_tx.clone());
            std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || worker.run(rx))
                .map_err(StartError::Spawn)?;
            tracing::info!(worker = index, %local, %announced, "media worker started");
            workers.push(WorkerHandle { commands: tx, addr: local, routers: AtomicUsize::new(0) });
        }
        Ok(Engine { workers: Arc::new(workers), caps, events: Arc::new(Mutex::new(Some(events_rx))) })
    }

    /// The router rtpCapabilities (the same for every router: from the configured codecs).
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

    /// The stream of [`EngineEvent`]s of all workers. The first call takes it; later calls get
    /// None. Unread events are buffered up to a bound, then dropped (and counted in stats).
    pub fn take_events(&self) -> Option<mpsc::Receiver<EngineEvent>> {
        // A poisoned lock only means another thread panicked while taking: the slot is intact.
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    async fn call<T, E: From<WorkerGone>>(
        &self,
        worker: Option<usize>,
        unknown: E,
        make: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Command,
    ) -> Result<T, E> {
        let Some(handle) = worker.and_then(|i| self.workers.get(i)) else { return Err(unknown) };
        let (tx, rx) = oneshot::channel();
        handle.commands.send(make(tx)).map_err(|_| E::from(WorkerGone))?;
        rx.await.map_err(|_| E::from(WorkerGone))?
    }

    /// A new router on the least loaded worker.
    pub async fn create_router(&self) -> Result<RouterId, RouterError> {
        let (index, handle) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.routers.load(Ordering::Relaxed))
            .ok_or(WorkerGone)?;
        let id = self.call(Some(index), RouterError::from(WorkerGone), |reply| Command::CreateRouter { reply }).await?;
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

    /// A WebRTC transport in `router`. A `Send` transport (the client sends) needs the
    /// client's `device.sendRtpCapabilities`: its payload types are fixed at creation.
    pub async fn create_webrtc_transport(
        &self,
        router: RouterId,
        direction: Direction,
        send_rtp_capabilities: Option<RtpCapabilities>,
    ) -> Result<WebRtcTransportOptions, TransportError> {
        self.call(router.worker(), TransportError::UnknownRouter, |reply| Command::CreateWebRtcTransport {
            router,
            direction,
            send_caps: send_rtp_capabilities,
            reply,
        })
        .await
    }

    /// A plain RTP transport that sends to `remote` (a local recorder such as FFmpeg); consume
    /// producers on it like on a WebRTC transport.
    pub async fn create_plain_transport(&self, router: RouterId, remote: SocketAddr) -> Result<TransportId, TransportError> {
        self.call(router.worker(), TransportError::UnknownRouter, |reply| Command::CreatePlainTransport { router, remote, reply })
            .await
    }

    /// The client's DTLS parameters (`transport.on('connect')`).
    pub async fn connect_transport(&self, id: TransportId, dtls: DtlsParameters) -> Result<(), TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::ConnectTransport { id, dtls, reply }).await
    }

    /// Closes a transport with its producers and consumers.
    pub async fn close_transport(&self, id: TransportId) -> Result<(), TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::CloseTransport { id, reply }).await
    }

    pub async fn transport_stats(&self, id: TransportId) -> Result<TransportStats, TransportError> {
        self.call(id.worker(), TransportError::UnknownTransport, |reply| Command::TransportStats { id, reply }).await
    }

    /// A producer for the client's `rtpParameters` (`transport.on('produce')`).
    pub async fn produce(
        &self,
        transport: TransportId,
        kind: MediaKind,
        rtp_parameters: RtpParameters,
    ) -> Result<ProducerId, ProduceError> {
        self.call(transport.worker(), ProduceError::UnknownTransport, |reply| Command::Produce {
            transport,
            kind,
            params: rtp_parameters,
            reply,
        })
        .await
    }

    pub async fn pause_producer(&self, id: ProducerId) -> Result<(), ProduceError> {
        self.call(id.worker(), ProduceError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: true, reply })
            .await
    }

    pub async fn resume_producer(&self, id: ProducerId) -> Result<(), ProduceError> {
        self.call(id.worker(), ProduceError::UnknownProducer, |reply| Command::SetProducerPaused { id, paused: false, reply })
            .await
    }

    /// Closes a producer; its consumers close with [`EngineEvent::ConsumerClosed`].
    pub async fn close_producer(&self, id: ProducerId) -> Result<(), ProduceError> {
        self.call(id.worker(), ProduceError::UnknownProducer, |reply| Command::CloseProducer { id, reply }).await
    }

    /// Asks a video producer for a keyframe (throttled to one request per second).
    pub async fn request_keyframe(&self, id: ProducerId) -> Result<(), ProduceError> {
        self.call(id.worker(), ProduceError::UnknownProducer, |reply| Command::RequestKeyframe { id, reply }).await
    }

    pub async fn producer_stats(&self, id: ProducerId) -> Result<ProducerStats, ProduceError> {
        self.call(id.worker(), ProduceError::UnknownProducer, |reply| Command::ProducerStats { id, reply }).await
    }

    /// A consumer of `producer` on `transport` for a peer with `rtp_capabilities` (its
    /// device's receive capabilities); starts paused. A producer of another router is refused.
    pub async fn consume(
        &self,
        transport: TransportId,
        producer: ProducerId,
        rtp_capabilities: RtpCapabilities,
    ) -> Result<ConsumerOptions, ConsumeError> {
        match (transport.worker(), producer.worker()) {
            (Some(t), Some(p)) if t != p => return Err(ConsumeError::OtherRouter),
            (_, None) => return Err(ConsumeError::UnknownProducer),
            _ => {}
        }
        self.call(transport.worker(), ConsumeError::UnknownTransport, |reply| Command::Consume {
            transport,
            producer,
            caps: rtp_capabilities,
            reply,
        })
        .await
    }

    pub async fn resume_consumer(&self, id: ConsumerId) -> Result<(), ConsumeError> {
        self.call(id.worker(), ConsumeError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: false, reply })
            .await
    }

    pub async fn pause_consumer(&self, id: ConsumerId) -> Result<(), ConsumeError> {
        self.call(id.worker(), ConsumeError::UnknownConsumer, |reply| Command::SetConsumerPaused { id, paused: true, reply })
            .await
    }

    pub async fn close_consumer(&self, id: ConsumerId) -> Result<(), ConsumeError> {
        self.call(id.worker(), ConsumeError::UnknownConsumer, |reply| Command::CloseConsumer { id, reply }).await
    }

    pub async fn consumer_stats(&self, id: ConsumerId) -> Result<ConsumerStats, ConsumeError> {
        self.call(id.worker(), ConsumeError::UnknownConsumer, |reply| Command::ConsumerStats { id, reply }).await
    }

    /// Counters summed over all workers.
    pub async fn stats(&self) -> Result<EngineStats, WorkerGone> {
        let mut total = EngineStats { workers: self.workers.len(), ..Default::default() };
        for i in 0..self.workers.len() {
            let s = self.call(Some(i), WorkerGone, |reply| Command::Stats { reply }).await?;
            total.add(&s);
        }
        Ok(total)
    }
}
