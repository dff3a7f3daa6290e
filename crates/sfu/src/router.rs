//! Router: a set of transports whose producers may be consumed by each other's consumers
//! (mediasoup's Router). A room has one.
use crate::ids::{Key, RouterId};

pub(crate) struct Router {
    id: RouterId,
    transports: Vec<Key>,
}

impl Router {
    pub fn new(id: RouterId) -> Router {
        Router { id, transports: Vec::new() }
    }

    pub fn id(&self) -> &RouterId {
        &self.id
    }

    pub fn add_transport(&mut self, key: Key) {
        self.transports.push(key);
    }

    pub fn remove_transport(&mut self, key: Key) {
        self.transports.retain(|k| *k != key);
    }

    #[cfg(feature = "fuzzing")]
    pub fn transports_len(&self) -> usize {
        self.transports.len()
    }

    /// The router's transports, handed over when it closes.
    pub fn into_transports(self) -> Vec<Key> {
        self.transports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_hands_over_the_transports_it_still_has() {
        let first = Key::default().next();
        let (second, third) = (first.next(), first.next().next());
        let mut r = Router::new(RouterId::new(0, first));
        r.add_transport(second);
        r.add_transport(third);
        r.remove_transport(second);
        r.remove_transport(second); // twice is harmless
        assert_eq!(r.into_transports(), vec![third]);
    }
}
