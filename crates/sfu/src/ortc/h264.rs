//! H264 `profile-level-id` (RFC 6184 section 8.1): the profile and level a codec entry names,
//! and the answer rules mediasoup applies (its npm dependency `h264-profile-level-id` 1.x, itself
//! a port of libwebrtc's `h264_profile_level_id.cc`).
//!
//! Client strings are read byte by byte as ASCII hex; nothing here slices or panics on odd input.
use crate::rtp_parameters::{CodecParameters, ParamValue};

/// H264 profiles that WebRTC tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    PredictiveHigh444,
}

/// `level_idc` values of RFC 6184 table 5 (tens of the level number), plus 1b.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Level 1b: `level_idc` 11 with constraint_set3, or 9 elsewhere.
    L1b,
    /// Any other level, as its `level_idc` (10 = 1, 11 = 1.1, ..., 52 = 5.2).
    Idc(u8),
}

impl Level {
    /// Whether `self` is a lower level than `other` (1b sits between 1 and 1.1). As mediasoup's
    /// `isLessLevel`, whose second rule reads "any level but 1 is below 1b" (libwebrtc has "only
    /// level 1 is"): the answer only differs for a 1b peer without level asymmetry.
    fn is_less_than(self, other: Level) -> bool {
        match (self, other) {
            (Level::L1b, Level::L1b) | (Level::L1b, Level::Idc(10)) => false,
            (Level::L1b, Level::Idc(_)) => true,
            (Level::Idc(a), Level::L1b) => a != 10,
            (Level::Idc(a), Level::Idc(b)) => a < b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLevelId {
    pub profile: Profile,
    pub level: Level,
}

const KNOWN_LEVELS: [u8; 16] = [10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52];
const CONSTRAINT_SET3: u8 = 0x10;

/// (profile_idc, profile_iop pattern with `x` for "any bit", profile), in match order.
const PATTERNS: [(u8, &[u8; 8], Profile); 9] = [
    (0x42, b"x1xx0000", Profile::ConstrainedBaseline),
    (0x4D, b"1xxx0000", Profile::ConstrainedBaseline),
    (0x58, b"11xx0000", Profile::ConstrainedBaseline),
    (0x42, b"x0xx0000", Profile::Baseline),
    (0x58, b"10xx0000", Profile::Baseline),
    (0x4D, b"0x0x0000", Profile::Main),
    (0x64, b"00000000", Profile::High),
    (0x64, b"00001100", Profile::ConstrainedHigh),
    (0xF4, b"00000000", Profile::PredictiveHigh444),
];

fn pattern_matches(pattern: &[u8; 8], value: u8) -> bool {
    pattern.iter().enumerate().all(|(i, c)| {
        let bit = (value >> (7 - i)) & 1;
        match c {
            b'1' => bit == 1,
            b'0' => bit == 0,
            _ => true,
        }
    })
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(hi)? * 16 + digit(lo)?) as u8) // two hex digits: at most 255
}

impl ProfileLevelId {
    /// Parses six hex digits. `None` for anything else: another length, non-hex characters,
    /// an unknown level or profile. (mediasoup's parser reads a partial hex prefix with JS
    /// `parseInt`; such strings name no valid profile in practice and end the same way.)
    pub fn parse(text: &str) -> Option<ProfileLevelId> {
        let b = text.as_bytes();
        if b.len() != 6 {
            return None;
        }
        let profile_idc = hex_byte(b[0], b[1])?;
        let profile_iop = hex_byte(b[2], b[3])?;
        let level_idc = hex_byte(b[4], b[5])?;
        if profile_idc == 0 && profile_iop == 0 && level_idc == 0 {
            return None;
        }
        let level = match level_idc {
            11 if profile_iop & CONSTRAINT_SET3 != 0 => Level::L1b,
            l if KNOWN_LEVELS.contains(&l) => Level::Idc(l),
            _ => return None,
        };
        let profile = PATTERNS.iter().find(|(idc, pat, _)| *idc == profile_idc && pattern_matches(pat, profile_iop)).map(|p| p.2)?;
        Some(ProfileLevelId { profile, level })
    }

    /// The canonical six hex digits for this profile and level (`None` for 1b with a profile
    /// that has no 1b form).
    pub fn to_hex(self) -> Option<String> {
        if self.level == Level::L1b {
            return match self.profile {
                Profile::ConstrainedBaseline => Some("42f00b".into()),
                Profile::Baseline => Some("42100b".into()),
                Profile::Main => Some("4d100b".into()),
                _ => None,
            };
        }
        let prefix = match self.profile {
            Profile::ConstrainedBaseline => "42e0",
            Profile::Baseline => "4200",
            Profile::Main => "4d00",
            Profile::ConstrainedHigh => "640c",
            Profile::High => "6400",
            Profile::PredictiveHigh444 => "f400",
        };
        let Level::Idc(idc) = self.level else { return None };
        Some(format!("{prefix}{idc:02x}"))
    }
}

/// Constrained Baseline level 3.1: what a missing `profile-level-id` means (RFC 6184).
const DEFAULT: ProfileLevelId = ProfileLevelId { profile: Profile::ConstrainedBaseline, level: Level::Idc(31) };

/// Whether the parameter is absent in mediasoup's (JavaScript) sense: missing, `""` or `0`.
fn is_unset(value: Option<&ParamValue>) -> bool {
    match value {
        None => true,
        Some(ParamValue::String(s)) => s.is_empty(),
        Some(ParamValue::Number(n)) => *n == 0,
        Some(ParamValue::Decimal(n)) => n.as_f64() == Some(0.0),
    }
}

/// The profile-level-id of codec parameters: the default when absent, `None` when unreadable.
/// Only a string is read: SDP parsers turn all-digit values such as `640032` into JSON numbers,
/// and mediasoup refuses those as well (`typeof str !== 'string'`).
pub fn from_params(params: &CodecParameters) -> Option<ProfileLevelId> {
    let value = params.get("profile-level-id");
    if is_unset(value) {
        return Some(DEFAULT);
    }
    match value {
        Some(ParamValue::String(s)) => ProfileLevelId::parse(s),
        _ => None,
    }
}

/// Whether both parameter sets name the same H264 profile (levels may differ).
pub fn is_same_profile(a: &CodecParameters, b: &CodecParameters) -> bool {
    matches!((from_params(a), from_params(b)), (Some(x), Some(y)) if x.profile == y.profile)
}

fn level_asymmetry_allowed(params: &CodecParameters) -> bool {
    match params.get("level-asymmetry-allowed") {
        Some(ParamValue::Number(n)) => *n == 1,
        Some(ParamValue::String(s)) => s == "1",
        Some(ParamValue::Decimal(_)) | None => false,
    }
}

/// Why two H264 entries cannot be answered: a profile-level-id is unreadable, or the profiles
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("H264 profile-level-ids that cannot be answered (unreadable, or different profiles)")]
pub struct NoAnswer;

/// The profile-level-id to answer with when `local` (ours, or the producer's) meets `remote`:
/// `Ok(None)` when neither names one, the local profile at the local level when both allow
/// level asymmetry, else at the lower level.
pub fn answer_profile_level_id(local: &CodecParameters, remote: &CodecParameters) -> Result<Option<String>, NoAnswer> {
    if is_unset(local.get("profile-level-id")) && is_unset(remote.get("profile-level-id")) {
        return Ok(None);
    }
    let (l, r) = (from_params(local).ok_or(NoAnswer)?, from_params(remote).ok_or(NoAnswer)?);
    if l.profile != r.profile {
        return Err(NoAnswer);
    }
    let asymmetry = level_asymmetry_allowed(local) && level_asymmetry_allowed(remote);
    let level = if asymmetry || l.level.is_less_than(r.level) { l.level } else { r.level };
    Ok(ProfileLevelId { profile: l.profile, level }.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, ParamValue)]) -> CodecParameters {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn s(v: &str) -> ParamValue {
        ParamValue::String(v.into())
    }

    #[test]
    fn parses_the_common_profiles() {
        let cases = [
            ("42e01f", Profile::ConstrainedBaseline, Level::Idc(31)),
            ("42001f", Profile::Baseline, Level::Idc(31)),
            ("4d001f", Profile::Main, Level::Idc(31)),
            ("640032", Profile::High, Level::Idc(50)),
            ("640c1f", Profile::ConstrainedHigh, Level::Idc(31)),
            ("f4001f", Profile::PredictiveHigh444, Level::Idc(31)),
            ("42f00b", Profile::ConstrainedBaseline, Level::L1b),
            ("4D001F", Profile::Main, Level::Idc(31)),
        ];
        for (text, profile, level) in cases {
            assert_eq!(ProfileLevelId::parse(text), Some(ProfileLevelId { profile, level }), "{text}");
        }
    }

    #[test]
    fn odd_strings_are_none_not_panics() {
        for text in ["", "aé", "42e01", "42e01f0", "zzzzzz", "000000", "42e0ff", "12e01f", "éééééé", "4é01f", "ffffff"] {
            assert_eq!(ProfileLevelId::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn numbers_are_not_read_and_absence_means_constrained_baseline_3_1() {
        assert_eq!(from_params(&p(&[("profile-level-id", ParamValue::Number(640032))])), None);
        assert_eq!(from_params(&p(&[])), Some(DEFAULT));
        assert_eq!(from_params(&p(&[("profile-level-id", s(""))])), Some(DEFAULT));
    }

    #[test]
    fn same_profile_ignores_the_level() {
        assert!(is_same_profile(&p(&[("profile-level-id", s("42e01f"))]), &p(&[("profile-level-id", s("42e034"))])));
        assert!(!is_same_profile(&p(&[("profile-level-id", s("42001f"))]), &p(&[("profile-level-id", s("42e01f"))])));
        assert!(!is_same_profile(&p(&[("profile-level-id", s("aé"))]), &p(&[("profile-level-id", s("42e01f"))])));
    }

    #[test]
    fn answers_follow_level_asymmetry() {
        let high = p(&[("profile-level-id", s("42e034")), ("level-asymmetry-allowed", ParamValue::Number(1))]);
        let low = p(&[("profile-level-id", s("42e01f")), ("level-asymmetry-allowed", s("1"))]);
        assert_eq!(answer_profile_level_id(&high, &low), Ok(Some("42e034".into())));
        let strict_low = p(&[("profile-level-id", s("42e01f"))]);
        assert_eq!(answer_profile_level_id(&high, &strict_low), Ok(Some("42e01f".into())));
        assert_eq!(answer_profile_level_id(&p(&[]), &p(&[])), Ok(None));
        assert_eq!(answer_profile_level_id(&p(&[("profile-level-id", s("4d001f"))]), &strict_low), Err(NoAnswer));
        // mediasoup's rule (see Level::is_less_than): 3.1 counts as below 1b.
        let one_b = p(&[("profile-level-id", s("42f00b"))]);
        assert_eq!(answer_profile_level_id(&strict_low, &one_b), Ok(Some("42e01f".into())));
        assert_eq!(answer_profile_level_id(&one_b, &p(&[("profile-level-id", s("42e00a"))])), Ok(Some("42e00a".into())));
    }
}
