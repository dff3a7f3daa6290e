//! The DTLS certificate of a worker's WebRTC transports: one, made when the first transport
//! needs it and shared by the ones after it (mediasoup also uses one certificate per worker).
//! Making one (a P-256 key and a self-signed certificate) was the largest part of creating a
//! transport. A client never trusts the certificate itself, only the fingerprint it was given
//! for that transport, so sharing it between transports reveals nothing to one client about
//! another. dimpl makes certificates valid for a year: a new one is made after [`RENEW_AFTER`],
//! for the transports created from then on.
use std::time::{Duration, Instant};

use str0m::config::DtlsCert;

use crate::error::CreateTransportError;

/// Age after which transports get a new certificate (well within its year of validity).
pub(crate) const RENEW_AFTER: Duration = Duration::from_secs(30 * 86_400);

#[derive(Default)]
pub(crate) struct LocalCert {
    current: Option<(DtlsCert, Instant)>,
}

impl LocalCert {
    /// The certificate for a transport created at `now`.
    pub fn get(&mut self, now: Instant) -> Result<DtlsCert, CreateTransportError> {
        match &self.current {
            Some((cert, made)) if now.saturating_duration_since(*made) < RENEW_AFTER => Ok(cert.clone()),
            _ => {
                let cert = str0m::crypto::from_feature_flags()
                    .dtls_provider
                    .generate_certificate()
                    .ok_or_else(|| CreateTransportError::Setup("certificate generation failed".into()))?;
                self.current = Some((cert.clone(), now));
                Ok(cert)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_certificate_until_it_is_due_for_renewal() {
        let mut local = LocalCert::default();
        let t0 = Instant::now();
        let first = local.get(t0).unwrap();
        let again = local.get(t0 + RENEW_AFTER - Duration::from_secs(1)).unwrap();
        assert_eq!(first.certificate, again.certificate);
        let renewed = local.get(t0 + RENEW_AFTER).unwrap();
        assert_ne!(first.certificate, renewed.certificate);
        assert_eq!(renewed.certificate, local.get(t0 + RENEW_AFTER).unwrap().certificate);
    }
}
