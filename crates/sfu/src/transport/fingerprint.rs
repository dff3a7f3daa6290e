//! The client's DTLS fingerprint (connectTransport's `dtlsParameters.fingerprints`), read into
//! what str0m verifies.
use str0m::config::Fingerprint;

use crate::error::ConnectError;
use crate::rtp_parameters::DtlsParameters;

/// DTLS fingerprint algorithms (RFC 8122 names, as mediasoup's `DtlsTransport` lists them).
const FINGERPRINT_ALGORITHMS: [&str; 5] = ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"];

/// The client's fingerprint that str0m can verify: sha-256, else sha-1, with the digest length
/// of its algorithm.
///
/// Errors: other known algorithms only -> [`ConnectError::UnsupportedFingerprint`] (str0m checks
/// no others); an unknown algorithm, an unreadable value or an empty list ->
/// [`ConnectError::InvalidFingerprint`], as in mediasoup.
pub(crate) fn remote_fingerprint(dtls: &DtlsParameters) -> Result<Fingerprint, ConnectError> {
    if let Some(f) = dtls.fingerprints.iter().find(|f| !FINGERPRINT_ALGORITHMS.iter().any(|a| f.algorithm.eq_ignore_ascii_case(a))) {
        return Err(ConnectError::InvalidFingerprint(format!("unknown DTLS fingerprint algorithm {:?}", f.algorithm)));
    }
    let pick = |alg: &str| dtls.fingerprints.iter().find(|f| f.algorithm.eq_ignore_ascii_case(alg));
    let (fp, len) = match (pick("sha-256"), pick("sha-1")) {
        (Some(fp), _) => (fp, 32),
        (None, Some(fp)) => (fp, 20),
        (None, None) => {
            return Err(match dtls.fingerprints.first() {
                Some(f) => ConnectError::UnsupportedFingerprint(f.algorithm.clone()),
                None => ConnectError::InvalidFingerprint("dtlsParameters.fingerprints is empty".into()),
            })
        }
    };
    let text = format!("{} {}", fp.algorithm.to_ascii_lowercase(), fp.value);
    let unreadable = || ConnectError::InvalidFingerprint(format!("unreadable {} fingerprint {:?}", fp.algorithm, fp.value));
    let fingerprint: Fingerprint = text.parse().map_err(|_| unreadable())?;
    if fingerprint.bytes.len() != len {
        return Err(unreadable());
    }
    Ok(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::rtp_parameters::DtlsFingerprint;

    fn params(fps: &[(&str, &str)]) -> DtlsParameters {
        DtlsParameters {
            role: None,
            fingerprints: fps.iter().map(|(a, v)| DtlsFingerprint { algorithm: a.to_string(), value: v.to_string() }).collect(),
        }
    }

    fn hex(n: usize) -> String {
        (0..n).map(|i| format!("{:02X}", i as u8)).collect::<Vec<_>>().join(":")
    }

    #[test]
    fn sha256_is_preferred_over_sha1() {
        let fp = remote_fingerprint(&params(&[("sha-1", &hex(20)), ("sha-256", &hex(32))])).unwrap();
        assert_eq!(fp.bytes.len(), 32);
        let fp = remote_fingerprint(&params(&[("SHA-1", &hex(20))])).unwrap();
        assert_eq!(fp.bytes.len(), 20);
    }

    #[test]
    fn other_known_algorithms_are_unsupported_unknown_ones_invalid() {
        let e = remote_fingerprint(&params(&[("sha-512", &hex(64))])).unwrap_err();
        assert_eq!(e.code(), "unsupported_fingerprint");
        let e = remote_fingerprint(&params(&[("md5", &hex(16)), ("sha-256", &hex(32))])).unwrap_err();
        assert_eq!(e.code(), "invalid_parameters");
        assert_eq!(remote_fingerprint(&params(&[])).unwrap_err().code(), "invalid_parameters");
    }

    #[test]
    fn a_value_of_the_wrong_length_or_not_hex_is_invalid() {
        assert_eq!(remote_fingerprint(&params(&[("sha-256", &hex(20))])).unwrap_err().code(), "invalid_parameters");
        assert_eq!(remote_fingerprint(&params(&[("sha-256", "zz:é")])).unwrap_err().code(), "invalid_parameters");
    }
}
