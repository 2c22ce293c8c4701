//! Public short codes: a keyed permutation of the id, spelled in fixed-length base62.
//!
//! Consecutive ids would give consecutive codes if spelled directly, letting
//! anyone enumerate every link. A secret-keyed Feistel permutation over the
//! 64-bit id scatters neighbours while staying reversible, so a code decodes
//! back to its id without a lookup table. Fixed length plus the permutation
//! being a bijection gives every id exactly one spelling.

use std::fmt;

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher13;

use crate::ids::snowflake::SnowflakeId;

/// Characters of a generated code, in digit order.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of every generated code; 62^11 ≈ 5.2e19 is the shortest power of 62
/// above 2^64 ≈ 1.8e19.
pub const CODE_LEN: usize = 11;

/// Six rounds: four already make a Luby–Rackoff strong pseudo-random
/// permutation, the extra two are margin for a round function used with
/// 32-bit inputs.
const ROUNDS: u32 = 6;

/// Separates this key from any other key a deployment derives from the same secret.
const KEY_DOMAIN: &[u8] = b"shortener/v1/code-permutation-key\0";

const INVALID: u8 = u8::MAX;

/// Maps a byte to its base62 digit, or `INVALID`; a table keeps decoding
/// branch-light and covers non-ASCII bytes for free.
const DIGIT_OF: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn digit(byte: u8) -> Option<u8> {
    match DIGIT_OF.get(usize::from(byte)) {
        Some(&d) if d != INVALID => Some(d),
        _ => None,
    }
}

/// True for any string of exactly [`CODE_LEN`] base62 characters: the shape
/// reserved for generated codes, which custom aliases may not take.
pub fn looks_like_generated_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| digit(b).is_some())
}

/// A generated code, held inline so encoding never allocates.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code([u8; CODE_LEN]);

impl Code {
    pub fn as_str(&self) -> &str {
        // Only `CodeCodec::encode` builds a `Code`, from ASCII alphabet bytes,
        // so the conversion cannot fail; the fallback merely avoids a panic path.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({:?})", self.as_str())
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Turns ids into codes and back under one secret key.
#[derive(Clone)]
pub struct CodeCodec {
    round_hash: SipHasher13,
}

impl fmt::Debug for CodeCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never let it reach a log line.
        f.write_str("CodeCodec { .. }")
    }
}

impl CodeCodec {
    /// Derives the 128-bit permutation key from `secret`. Changing the secret
    /// changes every code, so it must stay fixed for a deployment's lifetime.
    pub fn new(secret: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_DOMAIN)
            .chain_update(secret)
            .finalize();
        let mut key = [0u8; 16];
        for (dst, src) in key.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        Self {
            round_hash: SipHasher13::new_with_key(&key),
        }
    }

    pub fn encode(&self, id: SnowflakeId) -> Code {
        let mut value = self.permute(id.as_u64());
        let mut out = [b'0'; CODE_LEN];
        for slot in out.iter_mut().rev() {
            // `value % 62` is below 62, so the lookup always succeeds.
            if let Some(&c) = ALPHABET.get((value % 62) as usize) {
                *slot = c;
            }
            value /= 62;
        }
        Code(out)
    }

    /// The id behind `code`, or `None` for anything that is not the one
    /// canonical spelling of an id: wrong length, a character outside the
    /// alphabet, a value of 2^64 or more, or a value whose inverse
    /// permutation has the top bit set. Never allocates.
    pub fn decode(&self, code: &str) -> Option<SnowflakeId> {
        if code.len() != CODE_LEN {
            return None;
        }
        let mut value: u64 = 0;
        for byte in code.bytes() {
            let d = digit(byte)?;
            value = value.checked_mul(62)?.checked_add(u64::from(d))?;
        }
        SnowflakeId::from_u64(self.unpermute(value))
    }

    fn round(&self, index: u32, half: u32) -> u32 {
        let input = (u64::from(index) << 32) | u64::from(half);
        // Truncation to the low half is the intended output width.
        self.round_hash.hash(&input.to_le_bytes()) as u32
    }

    fn permute(&self, x: u64) -> u64 {
        let (mut left, mut right) = ((x >> 32) as u32, x as u32);
        for i in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(i, right));
        }
        (u64::from(left) << 32) | u64::from(right)
    }

    fn unpermute(&self, y: u64) -> u64 {
        let (mut left, mut right) = ((y >> 32) as u32, y as u32);
        for i in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(i, left), left);
        }
        (u64::from(left) << 32) | u64::from(right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_ID: u64 = i64::MAX as u64;

    fn codec() -> CodeCodec {
        CodeCodec::new(b"test secret")
    }

    fn id(raw: u64) -> SnowflakeId {
        SnowflakeId::from_u64(raw).unwrap()
    }

    #[test]
    fn permutation_inverts_on_all_64_bits() {
        let c = codec();
        for x in [0, 1, 2, MAX_ID, MAX_ID + 1, u64::MAX, 0xDEAD_BEEF_0123_4567] {
            assert_eq!(c.unpermute(c.permute(x)), x);
            assert_eq!(c.permute(c.unpermute(x)), x);
        }
    }

    #[test]
    fn codes_have_fixed_length_and_alphabet() {
        let c = codec();
        for raw in [0, 1, 62, 1 << 40, MAX_ID - 1, MAX_ID] {
            let code = c.encode(id(raw));
            assert_eq!(code.as_str().len(), CODE_LEN);
            assert!(looks_like_generated_code(code.as_str()));
            assert_eq!(c.decode(code.as_str()), Some(id(raw)));
        }
    }

    #[test]
    fn decode_rejects_wrong_length_and_characters() {
        let c = codec();
        let good = c.encode(id(42)).to_string();
        assert_eq!(c.decode(&good), Some(id(42)));
        assert_eq!(c.decode(""), None);
        assert_eq!(c.decode(&good[..10]), None);
        assert_eq!(c.decode(&format!("{good}0")), None);
        assert_eq!(c.decode(&format!("0{good}")), None);
        for bad in ["-", "_", " ", "+", "/", "é", "\0"] {
            let mut s = good.clone();
            s.replace_range(5..6, bad);
            assert_eq!(c.decode(&s), None, "{s:?}");
        }
        // Eleven bytes of which some are a multi-byte character.
        assert_eq!(c.decode("ééééé0"), None);
    }

    #[test]
    fn decode_rejects_values_past_u64() {
        let c = codec();
        // 62^11 - 1, the largest spelling, is far above 2^64.
        assert_eq!(c.decode("zzzzzzzzzzz"), None);
        // 2^64 - 1 in base62 is "LygHa16AHYF"; one more overflows.
        let mut v = u64::MAX;
        let mut max = [b'0'; CODE_LEN];
        for slot in max.iter_mut().rev() {
            *slot = ALPHABET[(v % 62) as usize];
            v /= 62;
        }
        assert_eq!(&max, b"LygHa16AHYF");
        assert_eq!(c.decode("LygHa16AHYG"), None);
        assert_eq!(c.decode("M0000000000"), None);
    }

    #[test]
    fn decode_rejects_top_bit_after_inverse_permutation() {
        let c = codec();
        let mut rejected = 0;
        for y in 0..1_000u64 {
            let value = y.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut v = value;
            let mut spelled = [b'0'; CODE_LEN];
            for slot in spelled.iter_mut().rev() {
                *slot = ALPHABET[(v % 62) as usize];
                v /= 62;
            }
            let s = std::str::from_utf8(&spelled).unwrap();
            match c.decode(s) {
                Some(decoded) => assert_eq!(c.encode(decoded).as_str(), s),
                None => {
                    assert!(c.unpermute(value) > MAX_ID);
                    rejected += 1;
                }
            }
        }
        // About half of all 64-bit values map to a top-bit id.
        assert!((350..650).contains(&rejected), "{rejected}");
    }

    #[test]
    fn neighbouring_ids_give_unrelated_codes() {
        let c = codec();
        let base = 300_000_000_000_000_000u64;
        let codes: Vec<Code> = (0..10_001).map(|i| c.encode(id(base + i))).collect();
        let mut total_prefix = 0usize;
        let mut total_same_position = 0usize;
        for pair in codes.windows(2) {
            let (a, b) = (pair[0].as_str().as_bytes(), pair[1].as_str().as_bytes());
            total_prefix += a.iter().zip(b).take_while(|(x, y)| x == y).count();
            total_same_position += a.iter().zip(b).filter(|(x, y)| x == y).count();
        }
        let pairs = (codes.len() - 1) as f64;
        // Random codes share a first character about 1 time in 22 (the first
        // digit only ranges over 0..=L), later ones 1 in 62.
        let mean_prefix = total_prefix as f64 / pairs;
        let mean_same = total_same_position as f64 / pairs;
        assert!(mean_prefix < 0.2, "mean common prefix {mean_prefix}");
        assert!(mean_same < 0.6, "mean equal positions {mean_same}");
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }

    #[test]
    fn different_keys_give_different_codes() {
        let a = codec();
        let b = CodeCodec::new(b"another secret");
        let empty = CodeCodec::new(b"");
        for raw in 0..1_000u64 {
            let ca = a.encode(id(raw));
            assert_ne!(ca, b.encode(id(raw)));
            assert_ne!(ca, empty.encode(id(raw)));
            // A code minted under one key does not name the same id under another.
            assert_ne!(b.decode(ca.as_str()), Some(id(raw)));
        }
    }

    #[test]
    fn same_secret_gives_same_codes() {
        let code = codec().encode(id(123_456_789));
        assert_eq!(CodeCodec::new(b"test secret").encode(id(123_456_789)), code);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", codec()), "CodeCodec { .. }");
    }

    #[test]
    fn code_serializes_as_string() {
        let code = codec().encode(id(7));
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, format!("\"{code}\""));
        assert_eq!(code, code.as_str());
    }

    #[test]
    fn generated_code_shape() {
        assert!(looks_like_generated_code("00000000000"));
        assert!(looks_like_generated_code("AbCdEfGhIjK"));
        assert!(looks_like_generated_code("zzzzzzzzzzz"));
        assert!(!looks_like_generated_code("AbCdEfGhIj"));
        assert!(!looks_like_generated_code("AbCdEfGhIjKl"));
        assert!(!looks_like_generated_code("AbCdE-GhIjK"));
        assert!(!looks_like_generated_code("AbCdE_GhIjK"));
        assert!(!looks_like_generated_code(""));
        assert!(!looks_like_generated_code("ééééé0"));
    }

    proptest! {
        #[test]
        fn roundtrip(raw in 0..=MAX_ID) {
            let c = codec();
            let code = c.encode(id(raw));
            prop_assert_eq!(code.as_str().len(), CODE_LEN);
            prop_assert_eq!(c.decode(code.as_str()), Some(id(raw)));
        }

        #[test]
        fn arbitrary_strings_decode_canonically_or_not_at_all(s in any::<String>()) {
            let c = codec();
            if let Some(decoded) = c.decode(&s) {
                prop_assert_eq!(c.encode(decoded).to_string(), s.clone());
            }
        }

        #[test]
        fn code_shaped_strings_decode_canonically_or_not_at_all(s in "[0-9A-Za-z]{11}") {
            let c = codec();
            if let Some(decoded) = c.decode(&s) {
                prop_assert_eq!(c.encode(decoded).to_string(), s.clone());
            }
        }

        #[test]
        fn canonical_range_always_decodes_to_some_u64(s in "[0-9A-K][0-9A-Za-z]{10}") {
            // Below "L0000000000" every spelling is under 2^64, so only the
            // top-bit check can reject it, and the inverse then has it set.
            let c = codec();
            match c.decode(&s) {
                Some(decoded) => prop_assert_eq!(c.encode(decoded).to_string(), s.clone()),
                None => {
                    let mut value = 0u64;
                    for b in s.bytes() {
                        value = value * 62 + u64::from(digit(b).unwrap());
                    }
                    prop_assert!(c.unpermute(value) > MAX_ID);
                }
            }
        }
    }
}
