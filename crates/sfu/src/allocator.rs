//! Sharing one transport's downlink estimate among its consumers (mediasoup's
//! `Transport::DistributeAvailableOutgoingBitrate` with `SimulcastConsumer::IncreaseLayer`).
//!
//! Consumers without layers (audio, single-stream video) are given what they use first, audio
//! before video: audio is never starved. The rest is shared among the simulcast consumers in
//! rounds, highest priority first: in each round a consumer of priority `p` may climb up to `p`
//! spatial layers, each step only if the difference between the new layer's bitrate and the one
//! it replaces fits in what is left (one stream is forwarded at a time). Rounds go on while one
//! consumer climbs.
//!
//! Unlike mediasoup, which stops a consumer's video when not even its lowest layer fits, every
//! simulcast consumer keeps at least its lowest active layer: the picture goes on at the lowest
//! quality while the transport's pacer queues (a frozen picture helps nobody in a call).

/// What one consumer of a transport asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Demand {
    /// 1..=255 (mediasoup's `consumer.setPriority`; 0 counts as 1).
    pub priority: u8,
    pub audio: bool,
    /// A simulcast consumer: the bitrate (bit/s) of each spatial layer it may take, lowest
    /// first, up to its preferred layer; 0 for a layer not sending now (never chosen).
    /// Otherwise (no layers): one entry, the bitrate it uses.
    pub layers: Vec<u64>,
    pub simulcast: bool,
}

/// The outcome for the demands, in their order: for a simulcast consumer the highest spatial
/// layer it may forward (None: none of its layers is sending); None for the others. Also the
/// bitrate (bit/s) all of it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allocation {
    pub layers: Vec<Option<u8>>,
    pub used: u64,
}

/// Shares `available` bit/s among `demands` (see the module's rules).
pub(crate) fn allocate(available: u64, demands: &[Demand]) -> Allocation {
    let mut remaining = available;
    let mut used = 0u64;
    let mut give = |bps: u64, remaining: &mut u64| {
        *remaining = remaining.saturating_sub(bps);
        used = used.saturating_add(bps);
    };
    // Audio first, then single-stream video.
    for audio in [true, false] {
        for d in demands.iter().filter(|d| !d.simulcast && d.audio == audio) {
            give(d.layers.first().copied().unwrap_or(0), &mut remaining);
        }
    }
    let mut layers: Vec<Option<u8>> = vec![None; demands.len()];
    let mut order: Vec<usize> = (0..demands.len()).filter(|i| demands[*i].simulcast).collect();
    order.sort_by_key(|i| std::cmp::Reverse(demands[*i].priority)); // stable: ties keep their order
    loop {
        let mut climbed = false;
        for &i in &order {
            for _ in 0..demands[i].priority.max(1) {
                let d = &demands[i];
                let current = layers[i].map_or(0, |l| d.layers[usize::from(l)]);
                let from = layers[i].map_or(0, |l| usize::from(l) + 1);
                let Some(next) = (from..d.layers.len()).find(|l| d.layers[*l] > 0) else { break };
                let cost = d.layers[next].saturating_sub(current);
                if cost > remaining {
                    break;
                }
                remaining -= cost;
                // At most MAX_ENCODINGS layers (the caller's vectors are that short).
                layers[i] = Some(next as u8);
                climbed = true;
            }
        }
        if !climbed {
            break;
        }
    }
    // Whoever got nothing keeps its lowest active layer.
    for &i in &order {
        if layers[i].is_none() {
            layers[i] = demands[i].layers.iter().position(|b| *b > 0).map(|l| l as u8);
        }
    }
    for &i in &order {
        if let Some(l) = layers[i] {
            used = used.saturating_add(demands[i].layers[usize::from(l)]);
        }
    }
    Allocation { layers, used }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(priority: u8, layers: &[u64]) -> Demand {
        Demand { priority, audio: false, layers: layers.to_vec(), simulcast: true }
    }

    fn fixed(audio: bool, bps: u64) -> Demand {
        Demand { priority: 1, audio, layers: vec![bps], simulcast: false }
    }

    const THREE: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn one_consumer_gets_the_highest_layer_that_fits() {
        let a = |bps| allocate(bps, &[sim(1, &THREE)]).layers[0];
        assert_eq!(a(10_000_000), Some(2));
        assert_eq!(a(1_500_000), Some(2), "exactly");
        assert_eq!(a(1_499_999), Some(1));
        assert_eq!(a(500_000), Some(1));
        assert_eq!(a(300_000), Some(0));
        assert_eq!(a(0), Some(0), "the lowest layer keeps going when nothing fits");
        assert_eq!(allocate(300_000, &[sim(1, &THREE)]).used, 150_000);
    }

    #[test]
    fn layers_not_sending_are_skipped() {
        assert_eq!(allocate(10_000_000, &[sim(1, &[150_000, 500_000, 0])]).layers[0], Some(1), "the top stream is silent");
        assert_eq!(allocate(10_000_000, &[sim(1, &[0, 500_000, 1_500_000])]).layers[0], Some(2));
        assert_eq!(allocate(400_000, &[sim(1, &[0, 500_000, 1_500_000])]).layers[0], Some(1), "the lowest active one");
        assert_eq!(allocate(400_000, &[sim(1, &[0, 0, 0])]).layers[0], None, "nothing is sending");
    }

    #[test]
    fn audio_and_single_streams_are_served_first() {
        // 64 kbit/s of audio and a 400 kbit/s screen share leave 536 kbit/s: layer 1.
        let d = [sim(1, &THREE), fixed(false, 400_000), fixed(true, 64_000)];
        let a = allocate(1_000_000, &d);
        assert_eq!(a.layers, vec![Some(1), None, None]);
        assert_eq!(a.used, 964_000);
        // Not even the audio fits: it is still counted, video keeps its lowest layer.
        let a = allocate(50_000, &d);
        assert_eq!(a.layers[0], Some(0));
    }

    #[test]
    fn a_higher_priority_climbs_first_and_further() {
        // Two consumers of the same three layers.
        let a = allocate(800_000, &[sim(1, &THREE), sim(2, &THREE)]);
        assert_eq!(a.layers, vec![Some(0), Some(1)], "priority 2 takes layers 0 and 1 in its first round, 150k are left");
        let a = allocate(1_800_000, &[sim(1, &THREE), sim(2, &THREE)]);
        assert_eq!(a.layers, vec![Some(0), Some(2)], "then layer 2 in the second round, before priority 1 climbs");
        let a = allocate(1_500_000, &[sim(1, &THREE), sim(1, &THREE)]);
        assert_eq!(a.layers, vec![Some(1), Some(1)], "equal priorities share round by round");
    }

    #[test]
    fn a_consumer_never_gets_above_the_layers_it_lists() {
        // The preferred layer is 1: its list stops there.
        let a = allocate(10_000_000, &[sim(1, &THREE[..2]), sim(0, &THREE)]);
        assert_eq!(a.layers, vec![Some(1), Some(2)], "priority 0 counts as 1");
    }
}
