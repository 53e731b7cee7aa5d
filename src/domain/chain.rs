//! The audit chain: each report row's hash covers the previous row's hash and the row's own
//! canonical content, so changing, removing or reordering a row breaks every link after it.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `hex(sha256(prev_hash || canonical))`, both taken as UTF-8 bytes: what an auditor gets with
/// `printf '%s%s' "$prev_hash" "$canonical" | sha256sum`.
pub fn link(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// True for 64 lower-case hex digits.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_sha256_of_the_concatenation() {
        // printf '%s%s' 0000…0000 '{"id":1}' | sha256sum
        let expected = {
            let mut h = Sha256::new();
            h.update(format!("{GENESIS}{{\"id\":1}}").as_bytes());
            hex::encode(h.finalize())
        };
        assert_eq!(link(GENESIS, r#"{"id":1}"#), expected);
        assert!(is_hash(&expected));
        assert_ne!(link(GENESIS, r#"{"id":2}"#), expected);
    }

    #[test]
    fn known_vector() {
        // sha256("abc"), split across the two parts.
        assert_eq!(
            link("a", "bc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_are_lower_case_hex_of_64() {
        assert!(is_hash(GENESIS));
        assert!(!is_hash(&GENESIS.to_uppercase().replace('0', "A")));
        assert!(!is_hash("abc"));
    }
}
