//! Link identity: Snowflake ids for storage and the public codes derived from them.

pub mod codec;
pub mod snowflake;

pub use codec::{ALPHABET, CODE_LEN, Code, CodeCodec, looks_like_generated_code};
pub use snowflake::{
    Busy, Clock, EPOCH_MS, Generator, GeneratorStats, IdError, MAX_WORKERS, ManualClock,
    SnowflakeId, SystemClock, WorkerId,
};
