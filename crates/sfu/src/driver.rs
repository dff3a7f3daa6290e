//! The driver: one OS thread per worker, owning its UDP socket and the clock. Each turn it runs
//! the commands queued, hands the datagrams received to the worker, lets time move, sends what
//! the worker produced in one batch, passes its events on, then sleeps until the next datagram,
//! command ([`crate::wake`]), the worker's next timeout or [`MAX_SLEEP`]. No locks and no async
//! runtime on the media path.
use std::net::UdpSocket;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::tcp::TcpMux;
use crate::transmit::Protocol;
use crate::udp::{self, RecvBatch, SendBatch};
use crate::wake::Wakeups;
use crate::worker::{Command, Worker};
use crate::EngineEvent;

/// Longest sleep of the loop (a command wakes it at once: [`crate::wake`]).
const MAX_SLEEP: Duration = Duration::from_millis(5);
/// Shortest sleep when the socket is idle, so a timeout str0m keeps at "now" cannot make us spin.
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// Faults in consecutive turns after which the worker gives up.
const MAX_FAULTS_IN_A_ROW: u32 = 3;
/// How often the thread's CPU time is read for [`crate::WorkerStats::cpu_seconds`] (one system
/// call; every turn would cost a measurable share under load).
const CPU_EVERY: Duration = Duration::from_millis(100);

/// How a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    EngineDropped,
    Failed,
}

pub(crate) struct Driver {
    worker: Worker,
    socket: UdpSocket,
    /// ICE-TCP on the same port, when on.
    tcp: Option<TcpMux>,
    commands: Receiver<Command>,
    /// Readable when a command was queued.
    wakeups: Wakeups,
    events: UnboundedSender<EngineEvent>,
    rx: RecvBatch,
    tx: SendBatch,
    /// The descriptors waited on (kept for its allocation).
    fds: Vec<std::os::fd::RawFd>,
    /// CPU time of this thread (user + system), in nanoseconds, read every [`CPU_EVERY`].
    cpu_ns: Arc<AtomicU64>,
    /// When `cpu_ns` was last read.
    cpu_read: Instant,
}

impl Driver {
    pub fn new(
        worker: Worker,
        socket: UdpSocket,
        tcp: Option<TcpMux>,
        commands: Receiver<Command>,
        wakeups: Wakeups,
        events: UnboundedSender<EngineEvent>,
        cpu_ns: Arc<AtomicU64>,
    ) -> Driver {
        let cpu_read = Instant::now();
        Driver {
            worker,
            socket,
            tcp,
            commands,
            wakeups,
            events,
            rx: RecvBatch::new(),
            tx: SendBatch::default(),
            fds: Vec::new(),
            cpu_ns,
            cpu_read,
        }
    }

    /// Runs until the engine is dropped (`Exit::EngineDropped`) or faults repeat past recovery
    /// (`Exit::Failed`). A panic while handling one datagram or command closes the transport
    /// involved (see [`Worker::recover`]) and the worker goes on.
    pub fn run(mut self) -> Exit {
        let exit = self.run_turns();
        self.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        exit
    }

    fn run_turns(&mut self) -> Exit {
        let index = self.worker.index();
        let mut faults_in_a_row = 0;
        loop {
            match panic::catch_unwind(AssertUnwindSafe(|| self.turn())) {
                Ok(true) => faults_in_a_row = 0,
                Ok(false) => {
                    tracing::info!(worker = index, "engine dropped; worker stops");
                    return Exit::EngineDropped;
                }
                Err(payload) => {
                    faults_in_a_row += 1;
                    self.rx.clear();
                    if faults_in_a_row > MAX_FAULTS_IN_A_ROW {
                        tracing::error!(worker = index, "worker keeps failing; it stops");
                        return Exit::Failed;
                    }
                    self.worker.recover(&panic_message(payload.as_ref()));
                }
            }
        }
    }

    /// One turn; false once the engine is gone.
    fn turn(&mut self) -> bool {
        let now = Instant::now();
        if now.saturating_duration_since(self.cpu_read) >= CPU_EVERY {
            self.cpu_read = now;
            self.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        }
        // Before the commands: a command queued after this wakes the next sleep.
        self.wakeups.drain();
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => self.worker.handle_command(now, cmd),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        for (src, data) in self.rx.datagrams() {
            self.worker.handle_datagram(now, src, data);
        }
        self.rx.clear();
        if let Some(tcp) = &mut self.tcp {
            for (src, frame) in tcp.receive(now) {
                self.worker.handle_receive(now, Protocol::Tcp, *src, frame);
            }
        }
        self.worker.handle_timeout(now);
        while let Some(t) = self.worker.poll_transmit() {
            match (t.proto, &mut self.tcp) {
                (Protocol::Tcp, Some(tcp)) => tcp.send(t.destination, &t.contents),
                _ => self.tx.push(t.destination, t.contents),
            }
        }
        self.tx.send(&self.socket);
        if let Some(tcp) = &mut self.tcp {
            tcp.flush();
        }
        while let Some(event) = self.worker.poll_event() {
            // No receiver (nobody took the events) is fine: the event is dropped.
            let _ = self.events.send(event);
        }
        self.receive();
        true
    }

    /// Takes the datagrams waiting on the socket; if there are none, sleeps until one arrives
    /// (or a TCP connection has something, or a command), the worker's next timeout or MAX_SLEEP.
    fn receive(&mut self) {
        if self.rx.recv(&self.socket) > 0 {
            return;
        }
        let wait = self.worker.poll_timeout().saturating_duration_since(Instant::now()).clamp(MIN_SLEEP, MAX_SLEEP);
        self.fds.clear();
        self.fds.push(std::os::fd::AsRawFd::as_raw_fd(&self.socket));
        self.fds.push(self.wakeups.fd());
        if let Some(tcp) = &self.tcp {
            tcp.fds(&mut self.fds);
        }
        if udp::wait_any(&self.fds, wait) {
            self.rx.recv(&self.socket);
        }
    }
}

/// CPU time the calling thread has used (user + system), in nanoseconds; 0 if unreadable.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
