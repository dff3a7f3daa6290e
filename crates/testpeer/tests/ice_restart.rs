//! ICE restart (RTCPeerConnection.restartIce / mediasoup's `transport.restartIce()`): the server
//! gives new ICE parameters, the client restarts ICE with them and with a new ufrag of its own,
//! and the call goes on without a new transport. In memory on a simulated clock.
mod common;

use std::time::Duration;

use common::{connected_pair, run, sim, transport_id};
use sfu::rtp_parameters::MediaKind;
use str0m::ice::IceCreds;

#[test]
fn after_an_ice_restart_consent_checks_are_answered_and_media_flows() {
    let mut sim = sim();
    let (mut a, mut b) = connected_pair(&mut sim, MediaKind::Audio);
    let new = sim.worker.restart_ice(&transport_id(&b.transport.id)).expect("restartIce");
    // What the browser does with the new parameters: new remote credentials and a new ufrag and
    // password of its own, then connectivity checks with them.
    {
        let mut api = b.transport.rtc.direct_api();
        api.set_remote_ice_credentials(IceCreds { ufrag: new.username_fragment.clone(), pass: new.password.clone() });
        api.set_local_ice_credentials(IceCreds { ufrag: "restarted".into(), pass: "a-new-client-password-of-24".into() });
    }
    let before = b.received(MediaKind::Audio).len();
    // Consent freshness (RFC 7675): a client whose checks go unanswered for ~30 s gives up.
    run(&mut sim, &mut [&mut a], &mut [&mut b], Duration::from_secs(45), |_, _| false);
    let disconnected = b.ice_states.iter().any(|s| matches!(s, str0m::IceConnectionState::Disconnected));
    assert!(!disconnected, "the client's checks with the new credentials were answered: {:?}", b.ice_states);
    let got = b.received(MediaKind::Audio).len() - before;
    assert!(got > 2000, "audio kept flowing for 45 s ({got} packets)");
    assert!(sim.events.is_empty(), "nothing was closed: {:?}", sim.events);
}
