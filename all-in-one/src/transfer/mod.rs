//! `shortener links import|export`: a tenant's links in and out of the database as
//! CSV or JSON Lines, for moving from another shortener or between deployments.
//!
//! Both formats have the columns of [`COLUMNS`]: `url` (required on import), `alias`
//! (the code; empty for a generated one), `created_at` and `expires_at` (RFC 3339),
//! `tags` (a JSON array of strings; in CSV an empty cell means none), `clicks`
//! (all-time clicks) and `domain` (one of the tenant's branded domains; empty for the
//! default domain), `forward_query` (`true`/`false`; empty: the domain's default),
//! `rules` and `variants` (JSON arrays as the API takes them; in CSV an empty cell
//! means none), `password_hash` (a protected link's argon2id hash, never a
//! password: whoever holds the file cannot read the password from it). CSV files start with a header naming their columns, in any order;
//! JSON Lines files hold one object per line.
//!
//! - [`import`]: the import, batched, resumable and idempotent through a ledger.
//! - [`export`]: the export, written whole or not at all.
//! - [`rows`]: reading and writing the two formats.

pub mod export;
pub mod import;
pub mod rows;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The columns of a links file, in the order an export writes them.
pub const COLUMNS: [&str; 11] = [
    "url",
    "alias",
    "created_at",
    "expires_at",
    "tags",
    "clicks",
    "domain",
    "forward_query",
    "rules",
    "variants",
    "password_hash",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// From a file name: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> anyhow::Result<Format> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            _ => anyhow::bail!(
                "cannot tell the format of {} from its name; pass --format csv or --format jsonl",
                path.display()
            ),
        }
    }
}

/// A bar on stderr when `wanted` and stderr is a terminal; otherwise (tests, logs
/// redirected to a file) a hidden one that costs nothing. `bytes`: the length is a
/// file size rather than a row count.
fn progress_bar(len: u64, wanted: bool, bytes: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}"
    } else {
        "{elapsed_precise} [{wide_bar}] {pos}/{len} rows ({per_sec})"
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style)
}
