//! `faults`: runs the fault and security scenarios (see the library's docs), or one
//! id-generator child process of the `ids` scenario.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = faults::Cli::parse();
    match faults::main(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("faults: {e:#}");
            ExitCode::from(2)
        }
    }
}
