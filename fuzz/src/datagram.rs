//! The datagram target's input: a list of operations on a live [`World`], as bytes (a tag, then
//! fixed fields, then for data a 16-bit length and the bytes; a short input simply ends). The
//! seed corpus is written with [`encode`], so the format is plain enough for libFuzzer's
//! mutations and for reading a crash file by eye.
use std::net::SocketAddr;

use crate::stun::Binding;
use crate::world::{World, NEWCOMER};

/// The largest datagram the worker's socket layer reads (crates/sfu/src/udp.rs, MAX_DATAGRAM).
pub const MAX_DATAGRAM: usize = 2048;
/// Longest forward jump in time of one [`Op::Advance`].
pub const MAX_ADVANCE_MS: u16 = 2000;
/// Time one input may jump in all: well under the idle timeout (30 s), so the world's
/// transports are not closed for silence (which is legitimate, and rebuilds the world).
pub const ADVANCE_BUDGET_MS: u64 = 10_000;
/// Steps of the whole world one input may take (each pumps both clients).
pub const STEP_BUDGET: u32 = 64;
/// Inputs that may use the unconnected transport before it is made again.
pub const NEWCOMER_USES: u32 = 8;

/// Where a datagram comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Publisher,
    Subscriber,
    /// The address of the unconnected transport's would-be peer.
    Newcomer,
    /// A stranger at a fixed address.
    Stranger,
    /// Any of 65,536 other addresses (a spoofing or roaming peer).
    Spoofed(u16),
}

/// Whose keys encrypt an [`Op::Rtp`] or [`Op::Rtcp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Publisher,
    Subscriber,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A datagram as given.
    Raw { from: From, data: Vec<u8> },
    /// Plain RTP, encrypted with the peer's SRTP keys (rollover counter `roc`), from the peer.
    Rtp { who: Who, roc: u8, data: Vec<u8> },
    /// Plain (compound) RTCP, encrypted with the peer's SRTCP keys, from the peer.
    Rtcp { who: Who, data: Vec<u8> },
    /// A STUN binding request for transport `to` (0 publisher, 1 subscriber, 2 newcomer, 3 a
    /// ufrag nobody has); `flags`: bit 0 signed with the right password, else bit 1 with a wrong
    /// one; bit 2 USE-CANDIDATE; bit 3 ICE-CONTROLLING; bit 4 FINGERPRINT; bit 5 no remote ufrag.
    Stun { to: u8, from: From, flags: u8, priority: u32 },
    /// A datagram the clients sent while the world was built, with bytes xor-ed.
    Replay { index: u16, flips: Vec<(u16, u8)> },
    /// Time moves on by `ms` (at most [`MAX_ADVANCE_MS`]) without the clients.
    Advance { ms: u16 },
    /// `n` steps of the whole world (clients included), 1 ms each.
    Steps { n: u8 },
    /// 0/1 pause/resume a subscriber consumer, 2/3 pause/resume a producer, 4 keyframe request,
    /// 5 a new unconnected transport, 6/7 pause/resume a recording consumer.
    Control { what: u8, which: u8 },
}

const TAGS: u8 = 8;

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u16()?) << 16 | u32::from(self.u16()?))
    }
    /// A length-prefixed chunk; a length past the end takes what is left.
    fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?).min(MAX_DATAGRAM);
        let end = (self.at + len).min(self.data.len());
        let chunk = &self.data[self.at..end];
        self.at = end;
        Some(chunk)
    }
    fn from(&mut self) -> Option<From> {
        Some(match self.u8()? % 5 {
            0 => From::Publisher,
            1 => From::Subscriber,
            2 => From::Newcomer,
            3 => From::Stranger,
            _ => From::Spoofed(self.u16()?),
        })
    }
    fn who(&mut self) -> Option<Who> {
        Some(if self.u8()? % 2 == 0 { Who::Publisher } else { Who::Subscriber })
    }
}

/// The operations of an input (a truncated last one is dropped).
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut r = Reader { data, at: 0 };
    let mut ops = Vec::new();
    while let Some(op) = next(&mut r) {
        ops.push(op);
    }
    ops
}

fn next(r: &mut Reader) -> Option<Op> {
    Some(match r.u8()? % TAGS {
        0 => Op::Raw { from: r.from()?, data: r.chunk()?.to_vec() },
        1 => Op::Rtp { who: r.who()?, roc: r.u8()?, data: r.chunk()?.to_vec() },
        2 => Op::Rtcp { who: r.who()?, data: r.chunk()?.to_vec() },
        3 => Op::Stun { to: r.u8()?, from: r.from()?, flags: r.u8()?, priority: r.u32()? },
        4 => {
            let index = r.u16()?;
            let n = r.u8()? % 16;
            let flips = (0..n).map_while(|_| Some((r.u16()?, r.u8()?))).collect();
            Op::Replay { index, flips }
        }
        5 => Op::Advance { ms: r.u16()? },
        6 => Op::Steps { n: r.u8()? },
        _ => Op::Control { what: r.u8()?, which: r.u8()? },
    })
}

/// The bytes of `ops` ([`decode`] gives them back).
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    let from = |out: &mut Vec<u8>, f: From| match f {
        From::Publisher => out.push(0),
        From::Subscriber => out.push(1),
        From::Newcomer => out.push(2),
        From::Stranger => out.push(3),
        From::Spoofed(n) => {
            out.push(4);
            out.extend_from_slice(&n.to_be_bytes());
        }
    };
    let chunk = |out: &mut Vec<u8>, d: &[u8]| {
        let d = &d[..d.len().min(MAX_DATAGRAM)];
        out.extend_from_slice(&(d.len() as u16).to_be_bytes());
        out.extend_from_slice(d);
    };
    let who = |w: Who| if w == Who::Publisher { 0 } else { 1 };
    for op in ops {
        match op {
            Op::Raw { from: f, data } => {
                out.push(0);
                from(&mut out, *f);
                chunk(&mut out, data);
            }
            Op::Rtp { who: w, roc, data } => {
                out.extend_from_slice(&[1, who(*w), *roc]);
                chunk(&mut out, data);
            }
            Op::Rtcp { who: w, data } => {
                out.extend_from_slice(&[2, who(*w)]);
                chunk(&mut out, data);
            }
            Op::Stun { to, from: f, flags, priority } => {
                out.extend_from_slice(&[3, *to]);
                from(&mut out, *f);
                out.push(*flags);
                out.extend_from_slice(&priority.to_be_bytes());
            }
            Op::Replay { index, flips } => {
                out.push(4);
                out.extend_from_slice(&index.to_be_bytes());
                out.push(flips.len().min(15) as u8);
                for (at, x) in flips.iter().take(15) {
                    out.extend_from_slice(&at.to_be_bytes());
                    out.push(*x);
                }
            }
            Op::Advance { ms } => {
                out.push(5);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Op::Steps { n } => out.extend_from_slice(&[6, *n]),
            Op::Control { what, which } => out.extend_from_slice(&[7, *what, *which]),
        }
    }
    out
}

impl World {
    pub fn source(&self, from: From) -> SocketAddr {
        match from {
            From::Publisher => self.publisher.addr,
            From::Subscriber => self.subscriber.addr,
            From::Newcomer => NEWCOMER.parse().expect("a literal address"),
            From::Stranger => "203.0.113.7:4444".parse().expect("a literal address"),
            From::Spoofed(n) => SocketAddr::from(([198, 51, 100, (n >> 8) as u8], 10000 + (n & 0xff))),
        }
    }

    fn send(&mut self, from: SocketAddr, data: &[u8]) {
        self.worker.handle_datagram(self.now, from, data);
        self.drain();
    }

    /// Runs one operation.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Raw { from, data } => {
                self.newcomer.touched |= *from == From::Newcomer;
                self.send(self.source(*from), data);
            }
            Op::Rtp { who, roc, data } => {
                let peer = if *who == Who::Publisher { &mut self.publisher } else { &mut self.subscriber };
                let datagram = peer.srtp.protect_rtp(data, u32::from(*roc)).unwrap_or_else(|| data.clone());
                let from = peer.addr;
                self.send(from, &datagram);
            }
            Op::Rtcp { who, data } => {
                let peer = if *who == Who::Publisher { &mut self.publisher } else { &mut self.subscriber };
                let datagram = peer.srtp.protect_rtcp(data).unwrap_or_else(|| data.clone());
                let from = peer.addr;
                self.send(from, &datagram);
            }
            Op::Stun { to, from, flags, priority } => {
                let (ufrag, password) = match to % 4 {
                    0 => (self.publisher.ufrag.clone(), self.publisher.password.clone()),
                    1 => (self.subscriber.ufrag.clone(), self.subscriber.password.clone()),
                    2 => {
                        self.newcomer.touched = true;
                        (self.newcomer.ufrag.clone(), self.newcomer.password.clone())
                    }
                    _ => ("nobody".to_string(), "nothing".to_string()),
                };
                let username = if flags & 0x20 != 0 { format!("{ufrag}:") } else { format!("{ufrag}:fuzz") };
                let password = if flags & 1 != 0 {
                    Some(password.as_str())
                } else if flags & 2 != 0 {
                    Some("a wrong password")
                } else {
                    None
                };
                let mut transaction = [0u8; 12];
                transaction[..4].copy_from_slice(&priority.to_be_bytes());
                transaction[4] = *flags;
                let binding = Binding {
                    username: &username,
                    password,
                    transaction,
                    priority: *priority,
                    controlling: flags & 8 != 0,
                    tie_breaker: u64::from(*priority) << 8 | u64::from(*flags),
                    use_candidate: flags & 4 != 0,
                    fingerprint: flags & 0x10 != 0,
                };
                let data = binding.to_bytes();
                self.send(self.source(*from), &data);
            }
            Op::Replay { index, flips } => {
                if self.captured.is_empty() {
                    return;
                }
                let (from, mut data) = self.captured[usize::from(*index) % self.captured.len()].clone();
                for &(at, x) in flips {
                    if let Some(len) = std::num::NonZeroUsize::new(data.len()) {
                        data[usize::from(at) % len] ^= x;
                    }
                }
                self.send(from, &data);
            }
            Op::Advance { ms } => {
                let ms = u64::from(*ms % (MAX_ADVANCE_MS + 1)).min(self.budget.0);
                self.budget.0 -= ms;
                self.now += std::time::Duration::from_millis(ms);
                self.worker.handle_timeout(self.now);
                self.drain();
            }
            Op::Steps { n } => {
                let n = u32::from(n % 64).min(self.budget.1);
                self.budget.1 -= n;
                for _ in 0..n {
                    self.step();
                }
            }
            Op::Control { what, which } => self.control(*what, *which),
        }
    }

    fn control(&mut self, what: u8, which: u8) {
        let now = self.now;
        let consumer = &self.consumers[usize::from(which) % self.consumers.len()].0;
        let producer = &self.tracks[usize::from(which) % self.tracks.len()].1;
        let plain = &self.plain_consumers[usize::from(which) % self.plain_consumers.len()];
        // Every id is alive in an unbroken world: the operations cannot fail.
        let result = match what % 8 {
            0 => self.worker.set_consumer_paused(now, consumer, true).map_err(|e| e.to_string()),
            1 => self.worker.set_consumer_paused(now, consumer, false).map_err(|e| e.to_string()),
            2 => self.worker.set_producer_paused(now, producer, true).map_err(|e| e.to_string()),
            3 => self.worker.set_producer_paused(now, producer, false).map_err(|e| e.to_string()),
            4 => self.worker.request_keyframe(now, producer).map_err(|e| e.to_string()),
            5 => {
                self.renew_newcomer();
                Ok(())
            }
            6 => self.worker.set_consumer_paused(now, plain, true).map_err(|e| e.to_string()),
            _ => self.worker.set_consumer_paused(now, plain, false).map_err(|e| e.to_string()),
        };
        if !self.broken {
            result.expect("an operation on a live object");
        }
        self.drain();
    }

    /// One input: its operations, then a step of the whole world, then the checks.
    pub fn run_input(&mut self, data: &[u8]) {
        // A fresh unconnected transport every few inputs that used it (making one costs ~2 ms).
        if self.newcomer.touched {
            self.newcomer.uses += 1;
            self.newcomer.touched = false;
            if self.newcomer.uses >= NEWCOMER_USES {
                self.renew_newcomer();
            }
        }
        self.budget = (ADVANCE_BUDGET_MS, STEP_BUDGET);
        for op in decode(data) {
            self.apply(&op);
        }
        self.step();
        if self.newcomer.closed {
            self.renew_newcomer();
        }
        self.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode_agree() {
        let ops = vec![
            Op::Raw { from: From::Spoofed(513), data: vec![1, 2, 3] },
            Op::Rtp { who: Who::Subscriber, roc: 1, data: vec![0x80; 20] },
            Op::Rtcp { who: Who::Publisher, data: vec![] },
            Op::Stun { to: 2, from: From::Newcomer, flags: 0x15, priority: 77 },
            Op::Replay { index: 9, flips: vec![(3, 0xff), (700, 1)] },
            Op::Advance { ms: 1500 },
            Op::Steps { n: 3 },
            Op::Control { what: 4, which: 1 },
        ];
        assert_eq!(decode(&encode(&ops)), ops);
        assert_eq!(decode(&[0, 4, 1]), vec![], "a truncated op is dropped");
    }
}
