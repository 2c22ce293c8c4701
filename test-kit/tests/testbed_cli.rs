//! The `testbed` binary: up writes a usable state file, the bed goes away by itself
//! when the watched process dies, and down is idempotent.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use test_kit::Bed;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

#[test]
fn up_then_owner_death_then_down() -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let state: PathBuf = state_dir.path().join("bed.json");
    let mut owner = Command::new("sleep").arg("60").spawn()?;

    let up = Command::new(TESTBED)
        .args(["up", "--state"])
        .arg(&state)
        .args(["--watch-pid", &owner.id().to_string()])
        .output()?;
    ensure!(
        up.status.success(),
        "testbed up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let bed = Bed::load(&state)?;
    ensure!(bed.root().exists());
    ensure!(std::net::TcpStream::connect(("127.0.0.1", bed.pg().replica_port())).is_ok());

    let again = Command::new(TESTBED)
        .args(["up", "--state"])
        .arg(&state)
        .output()?;
    ensure!(
        !again.status.success(),
        "a second up over a live state file succeeded"
    );

    owner.kill()?;
    owner.wait()?;
    let start = Instant::now();
    while bed.root().exists() {
        if start.elapsed() > Duration::from_secs(15) {
            bail!("the bed outlived its owner by 15 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for port in bed
        .redis()
        .ports()
        .into_iter()
        .chain([bed.pg().primary_port()])
    {
        ensure!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }

    for _ in 0..2 {
        let down = Command::new(TESTBED)
            .args(["down", "--state"])
            .arg(&state)
            .output()?;
        ensure!(
            down.status.success(),
            "testbed down failed: {}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
    ensure!(!state.exists());
    Ok(())
}
