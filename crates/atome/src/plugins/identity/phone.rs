//! Phone numbers: parse, validate and normalise to E.164; mask for logs.
use phonenumber::country;
use phonenumber::Mode;

use crate::http::ApiError;

/// Parses a two-letter region code (`FR`, `us`).
pub fn parse_region(region: &str) -> Option<country::Id> {
    region.trim().to_ascii_uppercase().parse().ok()
}

/// Normalises `input` (E.164, or national format in `region`) to E.164, or `invalid_phone`.
pub fn normalize(input: &str, region: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("invalid_phone", format!("{input:?} is not a valid phone number"));
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.len() > 32 {
        return Err(invalid());
    }
    let number = phonenumber::parse(parse_region(region), trimmed).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// `+33612345678` -> `+33******78`, safe for info-level logs.
pub fn mask(e164: &str) -> String {
    let chars: Vec<char> = e164.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_national_and_international_forms() {
        assert_eq!(normalize("06 12 34 56 78", "FR").unwrap(), "+33612345678");
        assert_eq!(normalize("+33 6 12 34 56 78", "FR").unwrap(), "+33612345678");
        assert_eq!(normalize("+1 650-253-0000", "FR").unwrap(), "+16502530000");
        assert_eq!(normalize("(650) 253-0000", "US").unwrap(), "+16502530000");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "12", "+33 1", "+999999999999999999999999", "0612345678901234567890123456789012"] {
            let err = normalize(bad, "FR").unwrap_err();
            assert_eq!(err.code(), "invalid_phone", "{bad}");
        }
    }

    #[test]
    fn masks_all_but_prefix_and_last_two() {
        assert_eq!(mask("+33612345678"), "+33*******78");
        assert_eq!(mask("+1"), "**");
    }
}
