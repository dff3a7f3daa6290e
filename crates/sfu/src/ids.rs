//! Typed ids. Each names the worker that owns the object (`w<index>-...`), so the engine handle
//! routes a command to the right worker without a shared map.
//!
//! Inside a worker, objects are keyed by [`Key`], the counter their id was minted from: cheap to
//! copy and hash on the packet path. Public ids are resolved to keys at the command boundary.
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($name:ident, $tag:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub(crate) fn new(worker: usize, key: Key) -> Self {
                $name(format!("w{worker}-{}{}-{:08x}", $tag, key.0, fastrand::u32(..)))
            }
            /// The worker-internal key encoded in the id, if the id is well formed. The caller
            /// must still check that the object under that key carries this exact id.
            pub(crate) fn key(&self) -> Option<Key> {
                let counter = self.0.split('-').nth(1)?.strip_prefix($tag)?;
                counter.parse().ok().map(Key)
            }
            /// The worker index encoded in the id, if the id is well formed.
            pub fn worker(&self) -> Option<usize> {
                self.0.strip_prefix('w')?.split('-').next()?.parse().ok()
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(RouterId, "r");
id_type!(TransportId, "t");
id_type!(ProducerId, "p");
id_type!(ConsumerId, "c");

/// A worker's key for one of its objects; unique per worker and never reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key(u64);

impl Key {
    /// The key minted after this one.
    pub(crate) fn next(self) -> Key {
        Key(self.0 + 1)
    }
}

/// A map keyed by small worker-local values, hashed with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// FxHash-style hasher (a rotate, xor and multiply per word) for the maps the packet path reads:
/// keys and peer addresses. Only for keys the network cannot choose freely: a peer address is
/// entered only after a binding request carrying one of our own ufrags (so SipHash's flooding
/// resistance is not needed there).
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }
    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }
    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_worker() {
        let t = TransportId::new(3, Key(17));
        assert_eq!(t.worker(), Some(3));
        assert_eq!(t.key(), Some(Key(17)));
        assert!(t.as_str().starts_with("w3-t17-"));
        let forged: TransportId = serde_json::from_str("\"garbage\"").unwrap();
        assert_eq!(forged.worker(), None);
        assert_eq!(forged.key(), None);
        let wrong_kind: ProducerId = serde_json::from_str(&format!("\"{t}\"")).unwrap();
        assert_eq!(wrong_kind.key(), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{t}\""));
    }
}
