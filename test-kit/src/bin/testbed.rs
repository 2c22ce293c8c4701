//! `testbed up --state FILE [--watch-pid PID]` starts a shared test bed (daemonized
//! servers) and writes its state file; `testbed down --state FILE` stops it and removes
//! its directories. Tests attach to it through `SHORTENER_TESTBED=FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use test_kit::Bed;

const USAGE: &str =
    "usage: testbed up --state FILE [--watch-pid PID]\n       testbed down --state FILE";

struct Args {
    command: String,
    state: PathBuf,
    watch_pid: Option<u32>,
}

fn parse() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let command = args.next().context("no command")?;
    let mut state = None;
    let mut watch_pid = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--state" => state = Some(PathBuf::from(args.next().context("--state needs a file")?)),
            "--watch-pid" => {
                let pid = args.next().context("--watch-pid needs a pid")?;
                watch_pid = Some(pid.parse().with_context(|| format!("bad pid {pid:?}"))?);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let state = state.context("--state FILE is required")?;
    if command == "down" && watch_pid.is_some() {
        bail!("--watch-pid only goes with up");
    }
    Ok(Args {
        command,
        state,
        watch_pid,
    })
}

async fn up(args: &Args) -> Result<()> {
    if args.state.exists() {
        bail!(
            "{} exists: run `testbed down --state {0}` first",
            args.state.display()
        );
    }
    let bed = Bed::start(args.watch_pid).await?;
    if let Err(e) = bed.save(&args.state) {
        let _ = bed.teardown();
        return Err(e);
    }
    let redis: Vec<String> = bed.redis().ports().iter().map(u16::to_string).collect();
    eprintln!(
        "test bed up in {:.1} s: postgres 127.0.0.1:{} (replica {}), redis {}, in {}",
        bed.start_time().as_secs_f64(),
        bed.pg().primary_port(),
        bed.pg().replica_port(),
        redis.join(","),
        bed.root().display()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("testbed: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command.as_str() {
        "up" => up(&args).await,
        "down" => Bed::down(&args.state).map(|stopped| {
            if stopped {
                eprintln!("test bed down");
            }
        }),
        other => {
            eprintln!("testbed: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed {}: {e:#}", args.command);
            ExitCode::FAILURE
        }
    }
}
