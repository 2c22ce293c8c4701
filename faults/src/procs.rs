//! The services as real child processes (the release or debug binaries), so that a
//! scenario can SIGKILL, SIGTERM and measure them like an orchestrator would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// Which binary a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Lookup,
    Stats,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Create => "create-service",
            Kind::Lookup => "lookup-service",
            Kind::Stats => "stats-service",
        }
    }
}

/// A running service process with its port and log file.
pub struct Service {
    pub kind: Kind,
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Service {
    /// Starts `kind` with `env` on a free port and waits until `/readyz` answers 200.
    pub async fn start(
        bin_dir: &Path,
        log_dir: &Path,
        kind: Kind,
        name: &str,
        mut env: Vec<(String, String)>,
    ) -> Result<Service> {
        let port = test_kit::try_free_port()?;
        env.push(("SHORTENER__HTTP__BIND".into(), "127.0.0.1".into()));
        env.push(("SHORTENER__HTTP__PORT".into(), port.to_string()));
        let binary = bin_dir.join(kind.binary());
        if !binary.exists() {
            bail!(
                "{} is missing: build the services first (scripts/faults does)",
                binary.display()
            );
        }
        let log = log_dir.join(format!("{name}.log"));
        let child = spawn(&binary, &env, &log)?;
        let mut service = Service {
            kind,
            name: name.to_string(),
            port,
            log,
            child,
            binary,
            env,
        };
        service.wait_ready(Duration::from_secs(60)).await?;
        Ok(service)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200 (or the process exits).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let http = test_kit::http_client()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}): {}",
                    self.name,
                    test_kit::sys::log_tail(&self.log, 20)
                );
            }
            if let Ok(r) = http
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready within {timeout:?}: {}",
                    self.name,
                    test_kit::sys::log_tail(&self.log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no flush, no goodbye.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.start_kill().context("SIGKILL")?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `grace`). Returns how long the
    /// graceful stop took and whether it exited cleanly.
    pub async fn terminate(&mut self, grace: Duration) -> Result<(Duration, bool)> {
        let started = Instant::now();
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM")?;
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok((started.elapsed(), status?.success())),
            Err(_) => {
                self.kill().await?;
                Ok((started.elapsed(), false))
            }
        }
    }

    /// Starts the same binary again with the same settings and port.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.terminate(Duration::from_secs(30)).await?;
        }
        self.child = spawn(&self.binary, &self.env, &self.log)?;
        self.wait_ready(Duration::from_secs(60)).await
    }

    /// Resident set size in KiB (from /proc).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // kill_on_drop covers an abandoned scenario; a normal end stops services first.
        let _ = self.child.start_kill();
    }
}

fn spawn(binary: &Path, env: &[(String, String)], log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// Sends `sig` (TERM, KILL, STOP, CONT) to one process.
pub fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed");
    }
    Ok(())
}

/// Runs one of the workspace's binaries to completion (migrations, the admin CLI) and
/// returns its stdout.
pub async fn run_tool(binary: &Path, args: &[&str], env: &[(String, String)]) -> Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .with_context(|| format!("{} {args:?} timed out", binary.display()))?
    .with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed ({}): {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
