//! The layers a consumer chooses among, as mediasoup has SimulcastConsumer and SvcConsumer:
//! the streams of a simulcast producer ([`LayerSelector`]), or the spatial and temporal layers
//! inside the one stream of a VP9 SVC producer ([`SvcSelector`]). Both take preferred layers
//! (`setPreferredLayers`), are capped by what the downlink allows ([`crate::allocator`]) and
//! tell when the layers they forward change.
use crate::simulcast::LayerSelector;
use crate::svc::SvcSelector;

// The VP8 munger's history makes the simulcast variant large; it was held inline in the consumer
// before SVC came, and boxing it would add a pointer chase per forwarded packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Layers {
    Simulcast(LayerSelector),
    Svc(SvcSelector),
}

impl Layers {
    /// mediasoup's `setPreferredLayers`, clamped to the layers there are.
    pub fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) {
        match self {
            Layers::Simulcast(l) => l.set_preferred(spatial, temporal),
            Layers::Svc(l) => l.set_preferred(spatial, temporal),
        }
    }

    /// (spatial, temporal) preferred.
    pub fn preferred(&self) -> (u8, u8) {
        match self {
            Layers::Simulcast(l) => l.preferred(),
            Layers::Svc(l) => l.preferred(),
        }
    }

    /// The highest (spatial, temporal) layers the downlink allows (None: no limit).
    pub fn set_allowed(&mut self, allowed: Option<(u8, u8)>) {
        match self {
            Layers::Simulcast(l) => l.set_allowed(allowed),
            Layers::Svc(l) => l.set_allowed(allowed),
        }
    }

    pub fn allowed(&self) -> Option<(u8, u8)> {
        match self {
            Layers::Simulcast(l) => l.allowed(),
            Layers::Svc(l) => l.allowed(),
        }
    }

    /// Forget what is forwarded (a pause): the next packet sent starts a keyframe.
    pub fn reset(&mut self) {
        match self {
            Layers::Simulcast(l) => l.reset(),
            Layers::Svc(l) => l.reset(),
        }
    }

    /// (spatial, temporal) now forwarded, when it changed since the last call.
    pub fn take_layers_changed(&mut self) -> Option<(u8, u8)> {
        match self {
            Layers::Simulcast(l) => l.take_layers_changed(),
            Layers::Svc(l) => l.take_layers_changed(),
        }
    }

    /// Whether the layers aimed at wait for a keyframe that nothing else asks for (an SVC
    /// consumer's; a simulcast consumer asks when the target stream's first packet comes).
    pub fn wants_keyframe(&self) -> bool {
        match self {
            Layers::Simulcast(_) => false,
            Layers::Svc(l) => l.wants_keyframe(),
        }
    }

    /// The producer stream a keyframe request should go to: the simulcast stream forwarded, or
    /// the one aimed at (`active(l)`: whether stream `l` sends); an SVC producer's only stream.
    pub fn keyframe_stream(&self, active: impl Fn(u8) -> bool) -> u8 {
        match self {
            Layers::Simulcast(l) => l.current_spatial().unwrap_or_else(|| l.target(active)),
            Layers::Svc(_) => 0,
        }
    }
}
