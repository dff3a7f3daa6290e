//! Call quality per peer for `GET /metrics`: each peer's transports' figures
//! ([`sfu::stats::TransportQuality`]) summed or worst-of by peer, labelled `peer` with the user
//! id (never a phone number). At most [`MAX_PEERS`] peers get their own label, in user-id
//! order; the rest are summed under `peer="_other"`. A peer's lines disappear when it leaves
//! (everything here is read at scrape time). Directions are the peer's: `in`/`up` is what it
//! sends, `out`/`down` what it receives.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sfu::stats::TransportQuality;
use sfu::TransportId;

/// Peers with a label of their own.
pub const MAX_PEERS: usize = 100;
/// The label of the peers beyond [`MAX_PEERS`].
pub const OTHER: &str = "_other";

/// One peer's figures (or several peers' under [`OTHER`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PeerFigures {
    pub bitrate_in: u64,
    pub bitrate_out: u64,
    pub rtt: Option<f64>,
    pub loss_up: Option<f32>,
    pub loss_down: Option<f32>,
    pub jitter: Option<f64>,
    pub nacks_up: u64,
    pub nacks_down: u64,
    pub plis_up: u64,
    pub plis_down: u64,
    pub firs_up: u64,
    pub firs_down: u64,
}

fn worst<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y > x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl PeerFigures {
    fn add(&mut self, q: &TransportQuality) {
        self.bitrate_in += q.bitrate_up;
        self.bitrate_out += q.bitrate_down;
        self.rtt = worst(self.rtt, q.rtt);
        self.loss_up = worst(self.loss_up, q.loss_up);
        self.loss_down = worst(self.loss_down, q.loss_down);
        self.jitter = worst(self.jitter, q.jitter_down);
        self.nacks_up += q.nacks_up;
        self.nacks_down += q.nacks_down;
        self.plis_up += q.plis_up;
        self.plis_down += q.plis_down;
        self.firs_up += q.firs_up;
        self.firs_down += q.firs_down;
    }

    fn merge(&mut self, o: &PeerFigures) {
        self.bitrate_in += o.bitrate_in;
        self.bitrate_out += o.bitrate_out;
        self.rtt = worst(self.rtt, o.rtt);
        self.loss_up = worst(self.loss_up, o.loss_up);
        self.loss_down = worst(self.loss_down, o.loss_down);
        self.jitter = worst(self.jitter, o.jitter);
        self.nacks_up += o.nacks_up;
        self.nacks_down += o.nacks_down;
        self.plis_up += o.plis_up;
        self.plis_down += o.plis_down;
        self.firs_up += o.firs_up;
        self.firs_down += o.firs_down;
    }
}

/// The figures by peer label: `peers` gives each peer's user id and transports (from the calls),
/// `qualities` each transport's figures (from the engine).
pub fn by_peer(peers: &[(String, Vec<TransportId>)], qualities: &[TransportQuality], max: usize) -> BTreeMap<String, PeerFigures> {
    let of: std::collections::HashMap<&TransportId, &TransportQuality> =
        qualities.iter().filter_map(|q| q.id.as_ref().map(|id| (id, q))).collect();
    let mut users: BTreeMap<String, PeerFigures> = BTreeMap::new();
    for (user, transports) in peers {
        let figures = users.entry(user.clone()).or_default();
        for q in transports.iter().filter_map(|t| of.get(t)) {
            figures.add(q);
        }
    }
    let mut out = BTreeMap::new();
    let mut other: Option<PeerFigures> = None;
    for (i, (user, figures)) in users.into_iter().enumerate() {
        if i < max {
            out.insert(user, figures);
        } else {
            other.get_or_insert_with(PeerFigures::default).merge(&figures);
        }
    }
    if let Some(other) = other {
        out.insert(OTHER.to_string(), other);
    }
    out
}

/// Appends the per-peer families to `out` (text format).
pub fn render(out: &mut String, peers: &BTreeMap<String, PeerFigures>) {
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        out,
        "atome_peer_bitrate_bps",
        "gauge",
        "Bits per second over the last second: in = what the peer sends, out = what it receives.",
    );
    for (p, f) in peers {
        let _ = writeln!(out, "atome_peer_bitrate_bps{{peer=\"{p}\",direction=\"in\"}} {}", f.bitrate_in);
        let _ = writeln!(out, "atome_peer_bitrate_bps{{peer=\"{p}\",direction=\"out\"}} {}", f.bitrate_out);
    }
    family(out, "atome_peer_rtt_seconds", "gauge", "Round-trip time from the peer's RTCP receiver reports (worst transport).");
    for (p, f) in peers {
        if let Some(rtt) = f.rtt {
            let _ = writeln!(out, "atome_peer_rtt_seconds{{peer=\"{p}\"}} {rtt}");
        }
    }
    family(
        out,
        "atome_peer_fraction_lost",
        "gauge",
        "Fraction lost in the last interval (worst stream): up = measured by the server on what the peer sends, before NACK recovery; down = reported by the peer (RTCP RR).",
    );
    for (p, f) in peers {
        for (dir, v) in [("up", f.loss_up), ("down", f.loss_down)] {
            if let Some(v) = v {
                let _ = writeln!(out, "atome_peer_fraction_lost{{peer=\"{p}\",direction=\"{dir}\"}} {v}");
            }
        }
    }
    family(out, "atome_peer_jitter_seconds", "gauge", "Interarrival jitter the peer reports about what it receives (worst stream).");
    for (p, f) in peers {
        if let Some(j) = f.jitter {
            let _ = writeln!(out, "atome_peer_jitter_seconds{{peer=\"{p}\"}} {j}");
        }
    }
    for (name, help, up, down) in [
        (
            "atome_peer_nacks_total",
            "NACKs: up = sent by the server about what the peer sends; down = sent by the peer.",
            (|f: &PeerFigures| f.nacks_up) as fn(&PeerFigures) -> u64,
            (|f: &PeerFigures| f.nacks_down) as fn(&PeerFigures) -> u64,
        ),
        ("atome_peer_plis_total", "PLIs: up = sent by the server to the peer; down = sent by the peer.", |f| f.plis_up, |f| f.plis_down),
        ("atome_peer_firs_total", "FIRs: up = sent by the server to the peer; down = sent by the peer.", |f| f.firs_up, |f| f.firs_down),
    ] {
        family(out, name, "counter", help);
        for (p, f) in peers {
            let _ = writeln!(out, "{name}{{peer=\"{p}\",direction=\"up\"}} {}", up(f));
            let _ = writeln!(out, "{name}{{peer=\"{p}\",direction=\"down\"}} {}", down(f));
        }
    }
}

/// Used share (0..1) of the filesystem holding `dir` (recordings live under the data
/// directory), as `df` counts it; None if it cannot be read.
pub fn disk_used_ratio(dir: &Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let total = st.f_blocks as f64;
    let avail = st.f_bavail as f64;
    let free = st.f_bfree as f64;
    // Used over what non-root users can have (df's Use%).
    let used = total - free;
    (used + avail > 0.0).then(|| used / (used + avail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(s: &str) -> TransportId {
        serde_json::from_value(serde_json::json!(s)).unwrap()
    }

    fn q(id: &str, up: u64, down: u64, loss_up: Option<f32>) -> TransportQuality {
        TransportQuality { id: Some(tid(id)), bitrate_up: up, bitrate_down: down, loss_up, nacks_up: 1, ..Default::default() }
    }

    #[test]
    fn figures_are_summed_by_user_and_capped() {
        let peers = vec![
            ("u1".to_string(), vec![tid("w0-t1-a"), tid("w0-t2-a")]),
            ("u2".to_string(), vec![tid("w0-t3-a")]),
            ("u3".to_string(), vec![tid("w0-t4-a")]),
            ("u1".to_string(), vec![tid("w0-t5-a")]), // the same user in another call
        ];
        let qs = vec![
            q("w0-t1-a", 1000, 0, Some(0.02)),
            q("w0-t2-a", 0, 3000, None),
            q("w0-t3-a", 10, 20, Some(0.5)),
            q("w0-t4-a", 5, 5, Some(0.1)),
            q("w0-t5-a", 1, 1, Some(0.01)),
        ];
        let all = by_peer(&peers, &qs, 10);
        assert_eq!(all.len(), 3);
        assert_eq!((all["u1"].bitrate_in, all["u1"].bitrate_out, all["u1"].loss_up, all["u1"].nacks_up), (1001, 3001, Some(0.02), 3));
        let capped = by_peer(&peers, &qs, 1);
        assert_eq!(capped.keys().collect::<Vec<_>>(), vec!["_other", "u1"]);
        assert_eq!((capped[OTHER].bitrate_in, capped[OTHER].loss_up), (15, Some(0.5)), "summed, worst loss");
        let mut page = String::new();
        render(&mut page, &capped);
        assert!(page.contains("atome_peer_bitrate_bps{peer=\"u1\",direction=\"in\"} 1001\n"), "{page}");
        assert!(page.contains("atome_peer_fraction_lost{peer=\"_other\",direction=\"up\"} 0.5\n"), "{page}");
        assert!(!page.contains("atome_peer_rtt_seconds{"), "no RTT known: no line");
        assert!(page.contains("atome_peer_firs_total{peer=\"u1\",direction=\"down\"} 0\n"), "{page}");
    }

    #[test]
    fn the_disk_ratio_is_a_fraction() {
        let r = disk_used_ratio(Path::new("/")).expect("statvfs of /");
        assert!((0.0..=1.0).contains(&r), "{r}");
        assert_eq!(disk_used_ratio(Path::new("/no/such/dir")), None);
    }
}
