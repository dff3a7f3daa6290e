//! Sharing one transport's downlink estimate among its consumers (mediasoup's
//! `Transport::DistributeAvailableOutgoingBitrate` with `SimulcastConsumer::IncreaseLayer`).
//!
//! Consumers without layers (audio, single-stream video) are given what they use first, audio
//! before video: audio is never starved. The rest is shared among the simulcast consumers in
//! rounds, highest priority first: in each round a consumer of priority `p` may climb up to `p`
//! steps of its ladder, each step only if the difference between the new step's bitrate and the
//! one it replaces fits in what is left (one stream is forwarded at a time). Rounds go on while
//! one consumer climbs.
//!
//! A ladder (built by the caller) lists (spatial, temporal) layers with their bitrates, lowest
//! first. Unlike mediasoup, whose ladder climbs every temporal layer of every stream (so a
//! consumer may get a larger picture at a quarter of the frame rate), the engine's climbs the
//! temporal layers of the lowest stream only and then whole streams; and where mediasoup stops a
//! consumer's video when not even its lowest layer fits, the first step always goes: the picture
//! goes on at the lowest quality (a frozen picture helps nobody in a call).

/// One step of a consumer's ladder: forward spatial layer `spatial` up to temporal layer
/// `temporal`, which arrives at `bps` bit/s (0: not sending now, never chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub spatial: u8,
    pub temporal: u8,
    pub bps: u64,
}

/// What one consumer of a transport asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Demand {
    /// 1..=255 (mediasoup's `consumer.setPriority`; 0 counts as 1).
    pub priority: u8,
    pub audio: bool,
    /// A simulcast consumer: its ladder, up to its preferred layers. Otherwise (no layers): one
    /// step, the bitrate it uses.
    pub steps: Vec<Step>,
    pub simulcast: bool,
    /// The step it was given last time: it and the steps below it count at [`KEEP_SHARE`] of
    /// their bitrate, so a stream's swings (a keyframe, an encoder's burst) do not switch it
    /// down and up again (each switch up waits for a keyframe).
    pub current: Option<usize>,
}

/// The share of a step's bitrate that must fit to keep it (see [`Demand::current`]); a step
/// above it must fit whole.
pub(crate) const KEEP_SHARE: (u64, u64) = (4, 5);

/// The outcome for the demands, in their order: for a simulcast consumer the highest (spatial,
/// temporal) layers it may forward (None: none of its layers is sending); None for the others.
/// Also the bitrate (bit/s) all of it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allocation {
    pub layers: Vec<Option<(u8, u8)>>,
    pub used: u64,
}

/// Shares `available` bit/s among `demands` (see the module's rules).
pub(crate) fn allocate(available: u64, demands: &[Demand]) -> Allocation {
    let mut remaining = available;
    let mut used = 0u64;
    // Audio first, then single-stream video.
    for audio in [true, false] {
        for d in demands.iter().filter(|d| !d.simulcast && d.audio == audio) {
            let bps = d.steps.first().map_or(0, |s| s.bps);
            remaining = remaining.saturating_sub(bps);
            used = used.saturating_add(bps);
        }
    }
    // The step each simulcast consumer reached.
    let mut at: Vec<Option<usize>> = vec![None; demands.len()];
    let mut order: Vec<usize> = (0..demands.len()).filter(|i| demands[*i].simulcast).collect();
    order.sort_by_key(|i| std::cmp::Reverse(demands[*i].priority)); // stable: ties keep their order
    loop {
        let mut climbed = false;
        for &i in &order {
            let steps = &demands[i].steps;
            let kept = demands[i].current;
            let price = |k: usize| if kept.is_some_and(|c| k <= c) { steps[k].bps / KEEP_SHARE.1 * KEEP_SHARE.0 } else { steps[k].bps };
            for _ in 0..demands[i].priority.max(1) {
                let current = at[i].map_or(0, price);
                let from = at[i].map_or(0, |k| k + 1);
                let Some(next) = (from..steps.len()).find(|k| steps[*k].bps > 0) else { break };
                let cost = price(next).saturating_sub(current);
                if cost > remaining {
                    break;
                }
                remaining -= cost;
                at[i] = Some(next);
                climbed = true;
            }
        }
        if !climbed {
            break;
        }
    }
    let mut layers = vec![None; demands.len()];
    for &i in &order {
        let steps = &demands[i].steps;
        // Whoever got nothing keeps its lowest active step.
        let k = at[i].or_else(|| steps.iter().position(|s| s.bps > 0));
        if let Some(k) = k {
            used = used.saturating_add(steps[k].bps);
            layers[i] = Some((steps[k].spatial, steps[k].temporal));
        }
    }
    Allocation { layers, used }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ladder of whole streams (temporal 2) with these bitrates.
    fn sim(priority: u8, layers: &[u64]) -> Demand {
        let steps = layers.iter().enumerate().map(|(s, bps)| Step { spatial: s as u8, temporal: 2, bps: *bps }).collect();
        Demand { priority, audio: false, steps, simulcast: true, current: None }
    }

    fn fixed(audio: bool, bps: u64) -> Demand {
        Demand { priority: 1, audio, steps: vec![Step { spatial: 0, temporal: 0, bps }], simulcast: false, current: None }
    }

    const THREE: [u64; 3] = [150_000, 500_000, 1_500_000];

    fn spatial(a: &Allocation) -> Vec<Option<u8>> {
        a.layers.iter().map(|l| l.map(|(s, _)| s)).collect()
    }

    #[test]
    fn one_consumer_gets_the_highest_layer_that_fits() {
        let a = |bps| spatial(&allocate(bps, &[sim(1, &THREE)]))[0];
        assert_eq!(a(10_000_000), Some(2));
        assert_eq!(a(1_500_000), Some(2), "exactly");
        assert_eq!(a(1_499_999), Some(1));
        assert_eq!(a(500_000), Some(1));
        assert_eq!(a(300_000), Some(0));
        assert_eq!(a(0), Some(0), "the lowest layer keeps going when nothing fits");
        assert_eq!(allocate(300_000, &[sim(1, &THREE)]).used, 150_000);
    }

    #[test]
    fn the_lowest_stream_climbs_its_temporal_layers_first() {
        // Stream 0 at 7.5, 15 and 30 frames a second, then streams 1 and 2 whole.
        let steps = vec![
            Step { spatial: 0, temporal: 0, bps: 140_000 },
            Step { spatial: 0, temporal: 1, bps: 210_000 },
            Step { spatial: 0, temporal: 2, bps: 340_000 },
            Step { spatial: 1, temporal: 2, bps: 700_000 },
            Step { spatial: 2, temporal: 2, bps: 2_500_000 },
        ];
        let d = [Demand { priority: 1, audio: false, steps, simulcast: true, current: None }, fixed(true, 40_000)];
        let a = |bps| allocate(bps, &d).layers[0];
        assert_eq!(a(300_000), Some((0, 1)), "300 kbit/s less the audio: stream 0 at 15 frames a second");
        assert_eq!(a(400_000), Some((0, 2)));
        assert_eq!(a(100_000), Some((0, 0)), "the first step whatever");
        assert_eq!(a(800_000), Some((1, 2)));
        assert_eq!(a(5_000_000), Some((2, 2)));
    }

    #[test]
    fn layers_not_sending_are_skipped() {
        assert_eq!(spatial(&allocate(10_000_000, &[sim(1, &[150_000, 500_000, 0])]))[0], Some(1), "the top stream is silent");
        assert_eq!(spatial(&allocate(10_000_000, &[sim(1, &[0, 500_000, 1_500_000])]))[0], Some(2));
        assert_eq!(spatial(&allocate(400_000, &[sim(1, &[0, 500_000, 1_500_000])]))[0], Some(1), "the lowest active one");
        assert_eq!(allocate(400_000, &[sim(1, &[0, 0, 0])]).layers[0], None, "nothing is sending");
    }

    #[test]
    fn audio_and_single_streams_are_served_first() {
        // 64 kbit/s of audio and a 400 kbit/s screen share leave 536 kbit/s: layer 1.
        let d = [sim(1, &THREE), fixed(false, 400_000), fixed(true, 64_000)];
        let a = allocate(1_000_000, &d);
        assert_eq!(spatial(&a), vec![Some(1), None, None]);
        assert_eq!(a.used, 964_000);
        // Not even the audio fits: it is still counted, video keeps its lowest layer.
        assert_eq!(spatial(&allocate(50_000, &d))[0], Some(0));
    }

    #[test]
    fn a_higher_priority_climbs_first_and_further() {
        // Two consumers of the same three layers.
        let a = allocate(800_000, &[sim(1, &THREE), sim(2, &THREE)]);
        assert_eq!(spatial(&a), vec![Some(0), Some(1)], "priority 2 takes layers 0 and 1 in its first round, 150k are left");
        let a = allocate(1_800_000, &[sim(1, &THREE), sim(2, &THREE)]);
        assert_eq!(spatial(&a), vec![Some(0), Some(2)], "then layer 2 in the second round, before priority 1 climbs");
        let a = allocate(1_500_000, &[sim(1, &THREE), sim(1, &THREE)]);
        assert_eq!(spatial(&a), vec![Some(1), Some(1)], "equal priorities share round by round");
    }

    #[test]
    fn a_consumer_never_gets_above_the_layers_it_lists() {
        // The preferred layer is 1: its list stops there.
        let a = allocate(10_000_000, &[sim(1, &THREE[..2]), sim(0, &THREE)]);
        assert_eq!(spatial(&a), vec![Some(1), Some(2)], "priority 0 counts as 1");
    }

    #[test]
    fn a_layer_given_is_kept_while_four_fifths_of_it_fit() {
        let mut d = sim(1, &THREE);
        assert_eq!(spatial(&allocate(1_400_000, &[d.clone()]))[0], Some(1), "1.5M does not fit whole");
        d.current = Some(2);
        assert_eq!(spatial(&allocate(1_400_000, &[d.clone()]))[0], Some(2), "but is kept at 1.4M");
        assert_eq!(spatial(&allocate(1_200_000, &[d.clone()]))[0], Some(2), "and at 1.2M");
        assert_eq!(spatial(&allocate(1_100_000, &[d]))[0], Some(1), "not below four fifths");
    }
}
