//! Fuzzes custom-alias validation: an accepted alias is exactly what was asked
//! for, 3–64 characters of `[A-Za-z0-9_-]`, no reserved word in any letter case,
//! and not shaped like a generated code; a refusal names a rule the input breaks.
#![no_main]

use domain::ids::looks_like_generated_code;
use domain::links::alias::{MAX_LEN, MIN_LEN};
use domain::links::{Alias, AliasError, RESERVED_WORDS};
use libfuzzer_sys::fuzz_target;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();
    let chars = input.chars().count();
    let reserved = RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(input));
    match Alias::parse(input) {
        Ok(alias) => {
            let a = alias.as_str();
            assert_eq!(a, input);
            assert!((MIN_LEN..=MAX_LEN).contains(&a.len()), "{a:?}");
            assert!(a.chars().all(allowed), "{a:?}");
            assert!(!reserved, "{a:?} is reserved");
            assert!(!looks_like_generated_code(a), "{a:?} has the code shape");
        }
        Err(AliasError::TooShort) => assert!(chars < MIN_LEN, "{input:?}"),
        Err(AliasError::TooLong) => assert!(chars > MAX_LEN, "{input:?}"),
        Err(AliasError::InvalidCharacter { ch, position }) => {
            assert_eq!(input.chars().nth(position), Some(ch), "{input:?}");
            assert!(!allowed(ch), "{input:?}");
            // The first offender is the one reported.
            assert!(input.chars().take(position).all(allowed), "{input:?}");
        }
        Err(AliasError::Reserved(word)) => {
            assert!(word.eq_ignore_ascii_case(input), "{input:?} vs {word:?}");
        }
        Err(AliasError::ReservedShape) => assert!(looks_like_generated_code(input), "{input:?}"),
    }
});
