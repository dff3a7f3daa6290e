//! Test input for the payload parsers: every length in a range, many payloads of each, of
//! pseudo-random bytes (xorshift64, deterministic from `seed`), so that a parser's answer to
//! short garbage is checked to be an answer and never a panic.

/// `per_len` payloads of each length in `lens`, in order, the generator's state running on
/// from one payload to the next.
pub(crate) fn random_payloads(mut seed: u64, lens: std::ops::Range<usize>, per_len: usize) -> impl Iterator<Item = Vec<u8>> {
    lens.flat_map(move |len| std::iter::repeat_n(len, per_len)).map(move |len| {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    })
}
