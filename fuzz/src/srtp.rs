//! SRTP and SRTCP with known keys (AEAD_AES_128_GCM, RFC 7714), through str0m's own crypto
//! provider: the world installs [`MATERIAL`] on its transports after the DTLS handshake, and the
//! fuzz target then encrypts any bytes as a peer would. The worker decrypts what arrives with
//! the left half of the material (it is DTLS passive), its clients send with it.
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{AeadAes128Gcm, AeadAes128GcmCipher};

pub const PROFILE: SrtpProfile = SrtpProfile::AEAD_AES_128_GCM;

const KEY_LEN: usize = 16;
const SALT_LEN: usize = 12;
const TAG_LEN: usize = 16;
const LABEL_RTP_AES: u8 = 0;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_AES: u8 = 3;
const LABEL_RTCP_SALT: u8 = 5;

/// Keying material as DTLS exports it: client key, server key, client salt, server salt.
pub const MATERIAL: [u8; 2 * KEY_LEN + 2 * SALT_LEN] = {
    let mut m = [0u8; 56];
    let mut i = 0;
    while i < 56 {
        m[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    m
};

/// One direction's SRTP and SRTCP contexts.
pub struct Srtp {
    rtp_salt: [u8; SALT_LEN],
    rtcp_salt: [u8; SALT_LEN],
    rtp: Box<dyn AeadAes128GcmCipher>,
    rtp_dec: Box<dyn AeadAes128GcmCipher>,
    rtcp: Box<dyn AeadAes128GcmCipher>,
    rtcp_dec: Box<dyn AeadAes128GcmCipher>,
    /// The next SRTCP index sent.
    pub srtcp_index: u32,
}

impl Srtp {
    /// The contexts of the `left` half of [`MATERIAL`] (what a DTLS client sends with).
    pub fn new(left: bool) -> Srtp {
        let provider = str0m::crypto::from_feature_flags().srtp_provider;
        let (k, s) = if left { (0, 0) } else { (KEY_LEN, SALT_LEN) };
        let master: [u8; KEY_LEN] = MATERIAL[k..k + KEY_LEN].try_into().expect("16 bytes");
        let salt = &MATERIAL[2 * KEY_LEN + s..2 * KEY_LEN + s + SALT_LEN];
        // RFC 3711 4.3.1 with AES-CM, as str0m derives: (salt ^ label at byte 7) || round.
        let derive = |label: u8, out: &mut [u8]| {
            let mut input = [0u8; 16];
            input[..SALT_LEN].copy_from_slice(salt);
            input[7] ^= label;
            let mut block = [0u8; 32];
            provider.srtp_aes_128_ecb_round(&master, &input, &mut block);
            out.copy_from_slice(&block[..out.len()]);
        };
        let (mut rtp_key, mut rtcp_key) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
        let (mut rtp_salt, mut rtcp_salt) = ([0u8; SALT_LEN], [0u8; SALT_LEN]);
        derive(LABEL_RTP_AES, &mut rtp_key);
        derive(LABEL_RTP_SALT, &mut rtp_salt);
        derive(LABEL_RTCP_AES, &mut rtcp_key);
        derive(LABEL_RTCP_SALT, &mut rtcp_salt);
        let gcm = provider.aead_aes_128_gcm();
        Srtp {
            rtp_salt,
            rtcp_salt,
            rtp: gcm.create_cipher(rtp_key, true),
            rtp_dec: gcm.create_cipher(rtp_key, false),
            rtcp: gcm.create_cipher(rtcp_key, true),
            rtcp_dec: gcm.create_cipher(rtcp_key, false),
            srtcp_index: 0,
        }
    }

    /// Encrypts `packet` as SRTP with rollover counter `roc`; the header (fixed part, CSRCs,
    /// extension) is read from the packet as a receiver reads it. None when the packet is shorter
    /// than its header says.
    pub fn protect_rtp(&mut self, packet: &[u8], roc: u32) -> Option<Vec<u8>> {
        let hlen = rtp_header_len(packet)?;
        let ssrc = u32::from_be_bytes(packet[8..12].try_into().ok()?);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let iv = AeadAes128Gcm::rtp_iv(self.rtp_salt, ssrc, roc, seq);
        let mut out = vec![0u8; packet.len() + TAG_LEN];
        out[..hlen].copy_from_slice(&packet[..hlen]);
        self.rtp.encrypt(&iv, &packet[..hlen], &packet[hlen..], &mut out[hlen..]).ok()?;
        Some(out)
    }

    /// Decrypts an SRTP packet with rollover counter `roc`.
    pub fn unprotect_rtp(&mut self, packet: &[u8], roc: u32) -> Option<Vec<u8>> {
        let hlen = rtp_header_len(packet)?;
        if packet.len() < hlen + TAG_LEN {
            return None;
        }
        let ssrc = u32::from_be_bytes(packet[8..12].try_into().ok()?);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let iv = AeadAes128Gcm::rtp_iv(self.rtp_salt, ssrc, roc, seq);
        let mut out = vec![0u8; packet.len() - TAG_LEN];
        out[..hlen].copy_from_slice(&packet[..hlen]);
        let n = self.rtp_dec.decrypt(&iv, &[&packet[..hlen]], &packet[hlen..], &mut out[hlen..]).ok()?;
        out.truncate(hlen + n);
        Some(out)
    }

    /// Encrypts a (compound) RTCP packet as SRTCP with the next index; None under 8 bytes.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        if packet.len() < 8 {
            return None;
        }
        let index = self.srtcp_index;
        self.srtcp_index = (index + 1) % (1 << 31);
        let e_and_index = (0x8000_0000 | index).to_be_bytes();
        let ssrc = u32::from_be_bytes(packet[4..8].try_into().ok()?);
        let iv = AeadAes128Gcm::rtcp_iv(self.rtcp_salt, ssrc, index);
        let mut aad = [0u8; 12];
        aad[..8].copy_from_slice(&packet[..8]);
        aad[8..].copy_from_slice(&e_and_index);
        let mut out = vec![0u8; packet.len() + TAG_LEN + 4];
        out[..8].copy_from_slice(&packet[..8]);
        let end = packet.len() + TAG_LEN;
        self.rtcp.encrypt(&iv, &aad, &packet[8..], &mut out[8..end]).ok()?;
        out[end..].copy_from_slice(&e_and_index);
        Some(out)
    }

    /// Decrypts an SRTCP packet (encrypted ones only).
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        if packet.len() < 8 + TAG_LEN + 4 {
            return None;
        }
        let idx_at = packet.len() - 4;
        let e_and_index = u32::from_be_bytes(packet[idx_at..].try_into().ok()?);
        if e_and_index & 0x8000_0000 == 0 {
            return None;
        }
        let ssrc = u32::from_be_bytes(packet[4..8].try_into().ok()?);
        let iv = AeadAes128Gcm::rtcp_iv(self.rtcp_salt, ssrc, e_and_index & 0x7fff_ffff);
        let mut aad = [0u8; 12];
        aad[..8].copy_from_slice(&packet[..8]);
        aad[8..].copy_from_slice(&packet[idx_at..]);
        let mut out = vec![0u8; idx_at - TAG_LEN];
        out[..8].copy_from_slice(&packet[..8]);
        let n = self.rtcp_dec.decrypt(&iv, &[&aad], &packet[8..idx_at], &mut out[8..]).ok()?;
        out.truncate(8 + n);
        Some(out)
    }
}

/// The length of an RTP header as RFC 3550 5.1/5.3.1 lay it out; None if the packet is shorter.
pub fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= packet.len()).then_some(len)
}

/// Whether a datagram is RTCP rather than RTP (RFC 5761 4: payload types 192..=223).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}
