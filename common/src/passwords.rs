//! Link passwords: the argon2id hash a protected link stores (never the password),
//! and the check of a visitor's password against it. Both cost an argon2id run of
//! tens of milliseconds: call them on a blocking thread.

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// Shortest and longest password, in characters.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// Why a password is refused, for the API caller.
pub fn check(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if (MIN_CHARS..=MAX_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(format!("must be {MIN_CHARS}–{MAX_CHARS} characters"))
    }
}

/// The PHC string of `password` under argon2id with the library's recommended
/// parameters (19 MiB, 2 passes) and a fresh random salt.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
}

/// Whether `password` is the one `stored` (a PHC string) was made from.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `text` is an argon2id PHC string, as an import may carry from an export.
pub fn is_hash(text: &str) -> bool {
    PasswordHash::new(text).is_ok_and(|parsed| {
        parsed.algorithm == Algorithm::Argon2id.ident() && parsed.hash.is_some()
    })
}

/// A short digest of a stored hash, for the audit log: it tells that a password
/// changed, and nothing about the password (the hash it digests is salted).
pub fn fingerprint(stored: &str) -> String {
    hex::encode(&Sha256::digest(stored.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").unwrap_or_default();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(is_hash(&stored));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsE", &stored));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(hash("correct horse").unwrap_or_default(), stored, "salted");
        assert!(!is_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA"));
        assert!(check("1234567").is_err());
        assert!(check("12345678").is_ok());
        assert!(check(&"é".repeat(128)).is_ok());
        assert!(check(&"é".repeat(129)).is_err());
    }
}
