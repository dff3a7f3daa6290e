//! One peer of a call as its task sees it: its socket's queue and everything it owns.
use std::collections::HashMap;

use sfu::rtp_parameters::{MediaKind, RtpCapabilities};
use sfu::{ConsumerId, ProducerId, TransportId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Claim, Member};
use crate::plugins::media::messages::{Direction, PeerInfo, ProducerAppData, ProducerInfo};

/// A consumer's producer and the (receive) transport it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Consuming {
    pub producer: ProducerId,
    pub transport: TransportId,
}

pub(super) struct Peer {
    pub user_id: String,
    pub display_name: String,
    pub tx: mpsc::Sender<String>,
    pub rtp_capabilities: RtpCapabilities,
    pub replaced: Option<oneshot::Sender<()>>,
    /// SHA-256 (hex) of the token that takes this session back on a new socket.
    pub resume_hash: String,
    /// Its socket was lost at some point and it leaves at this instant unless a new socket
    /// takes it back first.
    pub detached_until: Option<Instant>,
    pub transports: HashMap<TransportId, Direction>,
    pub producers: HashMap<ProducerId, MediaKind>,
    /// `appData.source` of the producers that named one.
    pub sources: HashMap<ProducerId, ProducerAppData>,
    pub consumers: HashMap<ConsumerId, Consuming>,
}

impl Peer {
    pub fn new(member: Member) -> Peer {
        let Member { user_id, display_name, tx, rtp_capabilities, replaced, resume_hash } = member;
        Peer {
            user_id,
            display_name,
            tx,
            rtp_capabilities,
            replaced: Some(replaced),
            resume_hash,
            detached_until: None,
            transports: HashMap::new(),
            producers: HashMap::new(),
            sources: HashMap::new(),
            consumers: HashMap::new(),
        }
    }

    pub fn info(&self) -> PeerInfo {
        PeerInfo { peer_user_id: self.user_id.clone(), display_name: self.display_name.clone() }
    }

    pub fn producer_infos(&self) -> impl Iterator<Item = ProducerInfo> + '_ {
        self.producers.iter().map(|(id, kind)| ProducerInfo {
            producer_id: id.clone(),
            kind: *kind,
            peer_user_id: self.user_id.clone(),
            app_data: self.sources.get(id).cloned(),
        })
    }

    /// Whether `claim` may take this session: same user, same resume token.
    pub fn claimed_by(&self, claim: &Claim) -> bool {
        self.user_id == claim.user_id && self.resume_hash == claim.resume_hash
    }
}
