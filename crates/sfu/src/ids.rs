//! Typed ids. Each names the worker that owns the object (`w<index>-...`), so the engine handle
//! routes a command to the right worker without a shared map.
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($name:ident, $tag:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub(crate) fn new(worker: usize, counter: u64) -> Self {
                $name(format!("w{worker}-{}{counter}-{:08x}", $tag, fastrand::u32(..)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_worker() {
        let t = TransportId::new(3, 17);
        assert_eq!(t.worker(), Some(3));
        assert!(t.as_str().starts_with("w3-t17-"));
        let forged: TransportId = serde_json::from_str("\"garbage\"").unwrap();
        assert_eq!(forged.worker(), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{t}\""));
    }
}
