//! The process's TLS cryptography: rustls on ring, installed before any TLS client
//! is built (every `reqwest` client in the workspace needs it: the webhook
//! deliveries turn rustls on for all of them).
//!
//! ring has no post-quantum key exchange (rustls marks its provider deprecated for
//! that); its classical X25519 and ECDHE are what servers offer today, and it builds
//! without the C toolchain and cmake that aws-lc needs.

/// Installs the provider; a second call (or one installed elsewhere) is as good.
pub fn install() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}
