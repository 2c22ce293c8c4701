//! The `shortener` binary as an operator runs it, on an embedded SQLite file in a
//! test's directory: what the admin-command tests share.

use std::path::Path;
use std::process::{Command, Output};

/// The embedded database in `dir`.
pub fn db_url(dir: &Path) -> String {
    format!("sqlite://{}/shortener.db?mode=rwc", dir.display())
}

/// `shortener ARGS` on the database in `dir`.
pub fn shortener(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shortener"))
        .args(args)
        .env("SHORTENER__DATABASE__URL", db_url(dir))
        .env("SHORTENER__TELEMETRY__FILTER", "error")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
