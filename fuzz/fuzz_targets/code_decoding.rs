//! Fuzzes the code codec and the path-segment shapes the redirect tells apart:
//! a code decodes only from its one canonical spelling, every id survives
//! encode then decode, and no segment is both a generated code and an alias.
#![no_main]

use domain::ids::{CODE_LEN, CodeCodec, SnowflakeId, looks_like_generated_code};
use domain::links::{Alias, AliasError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codecs = [CodeCodec::new(b"fuzz secret"), CodeCodec::new(b"")];

    // The input as a path segment, the way `lookup-service` classifies it.
    if let Ok(segment) = std::str::from_utf8(data) {
        let generated_shape = looks_like_generated_code(segment);
        for codec in &codecs {
            if let Some(id) = codec.decode(segment) {
                assert!(generated_shape, "{segment:?} decoded but has no code shape");
                assert!(id.as_u64() <= i64::MAX as u64, "{segment:?}");
                assert_eq!(
                    codec.encode(id).as_str(),
                    segment,
                    "second spelling of {id:?}"
                );
            }
        }
        match Alias::parse(segment) {
            Ok(_) => assert!(!generated_shape, "{segment:?} is both an alias and a code"),
            Err(AliasError::ReservedShape) => assert!(generated_shape, "{segment:?}"),
            Err(_) => {}
        }
    }

    // The first eight bytes as an id: every valid id round-trips through its code.
    if let Some(raw) = data.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)) {
        match SnowflakeId::from_u64(raw) {
            Some(id) => {
                for codec in &codecs {
                    let code = codec.encode(id);
                    assert_eq!(code.as_str().len(), CODE_LEN);
                    assert!(looks_like_generated_code(code.as_str()), "{code:?}");
                    assert_eq!(codec.decode(code.as_str()), Some(id), "{code:?}");
                    assert_eq!(
                        Alias::parse(code.as_str()),
                        Err(AliasError::ReservedShape),
                        "a code must never be taken as an alias"
                    );
                }
            }
            None => assert!(raw > i64::MAX as u64, "id {raw} refused"),
        }
    }
});
