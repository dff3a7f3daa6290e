//! What each user holds across all their signaling sockets: sockets and media transports. Each
//! cap is checked and taken in one step under one lock, so concurrent sockets of one user cannot
//! pass a cap together (issue: one user held 2,000 sockets and 480 transports).
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    sockets: usize,
    transports: usize,
}

#[derive(Debug, Default)]
pub struct Usage {
    held: Mutex<HashMap<String, Held>>,
}

impl Usage {
    fn with<T>(&self, user: &str, f: impl FnOnce(&mut Held) -> T) -> T {
        // A poisoned lock only means a holder panicked mid-update of plain counters: go on.
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = held.entry(user.to_string()).or_default();
        let out = f(entry);
        if *entry == Held::default() {
            held.remove(user); // bounded by the users holding something
        }
        out
    }

    /// Takes a socket slot for `user` if fewer than `max` are held.
    pub fn take_socket(&self, user: &str, max: usize) -> bool {
        self.with(user, |h| {
            let ok = h.sockets < max;
            h.sockets += usize::from(ok);
            ok
        })
    }

    pub fn release_socket(&self, user: &str) {
        self.with(user, |h| h.sockets = h.sockets.saturating_sub(1));
    }

    /// Takes a transport slot for `user` if fewer than `max` are held.
    pub fn take_transport(&self, user: &str, max: usize) -> bool {
        self.with(user, |h| {
            let ok = h.transports < max;
            h.transports += usize::from(ok);
            ok
        })
    }

    pub fn release_transports(&self, user: &str, count: usize) {
        self.with(user, |h| h.transports = h.transports.saturating_sub(count));
    }

    #[cfg(test)]
    fn users(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn caps_hold_under_concurrency_and_entries_go_away() {
        let usage = Arc::new(Usage::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let u = usage.clone();
                std::thread::spawn(move || (0..100).filter(|_| u.take_socket("alice", 10)).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 10);
        assert!(usage.take_transport("alice", 2) && usage.take_transport("alice", 2) && !usage.take_transport("alice", 2));
        assert!(usage.take_socket("bob", 10), "users are independent");
        for _ in 0..10 {
            usage.release_socket("alice");
        }
        usage.release_transports("alice", 2);
        usage.release_socket("bob");
        assert_eq!(usage.users(), 0);
    }
}
