//! STUN binding requests as an ICE peer sends them (RFC 5389/8445), signed with a given
//! password, so the fuzz target reaches past the worker's demux and str0m's integrity check.

/// What a binding request carries.
#[derive(Debug, Clone, Default)]
pub struct Binding<'a> {
    /// USERNAME: `server-ufrag:client-ufrag`.
    pub username: &'a str,
    /// MESSAGE-INTEGRITY key (the server's ICE password); None: no integrity attribute.
    pub password: Option<&'a str>,
    pub transaction: [u8; 12],
    pub priority: u32,
    /// ICE-CONTROLLING (true) or ICE-CONTROLLED (false), with this tie breaker.
    pub controlling: bool,
    pub tie_breaker: u64,
    pub use_candidate: bool,
    pub fingerprint: bool,
}

fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn set_length(msg: &mut [u8], len: usize) {
    msg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

impl Binding<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&self.transaction);
        attr(&mut m, 0x0006, self.username.as_bytes());
        attr(&mut m, 0x0024, &self.priority.to_be_bytes());
        attr(&mut m, if self.controlling { 0x802a } else { 0x8029 }, &self.tie_breaker.to_be_bytes());
        if self.use_candidate {
            attr(&mut m, 0x0025, &[]);
        }
        if let Some(pass) = self.password {
            // The length covers the MESSAGE-INTEGRITY attribute while it is computed.
            let len = m.len() - 20 + 24;
            set_length(&mut m, len);
            let hmac = str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(pass.as_bytes(), &[&m]);
            attr(&mut m, 0x0008, &hmac);
        }
        if self.fingerprint {
            let len = m.len() - 20 + 8;
            set_length(&mut m, len);
            let crc = crc32(&m) ^ 0x5354_554e;
            attr(&mut m, 0x8028, &crc.to_be_bytes());
        }
        let len = m.len() - 20;
        set_length(&mut m, len);
        m
    }
}

/// CRC-32 (ISO-HDLC), bit by bit: STUN's FINGERPRINT.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str0m_reads_and_verifies_what_is_built() {
        let b = Binding {
            username: "abc:def",
            password: Some("secret"),
            transaction: [7; 12],
            priority: 1234,
            controlling: true,
            tie_breaker: 99,
            use_candidate: true,
            fingerprint: true,
        };
        let bytes = b.to_bytes();
        let msg = str0m::ice::StunMessage::parse(&bytes).expect("parses");
        assert!(msg.is_binding_request());
        assert_eq!(msg.split_username(), Some(("abc", "def")));
        assert!(msg.use_candidate());
        let hmac = |k: &[u8], p: &[&[u8]]| str0m::crypto::from_feature_flags().sha1_hmac_provider.sha1_hmac(k, p);
        assert!(msg.verify(b"secret", hmac));
        assert!(!msg.verify(b"other", hmac));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
