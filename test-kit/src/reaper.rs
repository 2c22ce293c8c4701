//! Stopping a tree of servers: one cleanup script, run by a guard on drop, by
//! `testbed down`, or by a detached watcher process once the owning process is gone.
//!
//! Every group of servers lives under one root directory with a fixed layout
//! (`ROOT/pg/<data dir>/postmaster.pid`, `ROOT/redis/<port>/redis.pid`), so the cleanup
//! script only needs the root: it can be written before any server starts, which lets a
//! half-started group be cleaned up as well as a complete one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::pg::PG_BIN;
use crate::sys::{is_root, output_text, pid_alive, sh_quote};

/// `$0` of watcher processes, so that `testbed down` can tell its watcher from a
/// process that reused the pid.
pub const REAPER_NAME: &str = "shortener-reaper";

/// The sh script that stops every server under `root` and removes `root`. Safe to run
/// any number of times: it only acts on processes named in pid files that still run the
/// expected program.
pub fn cleanup_script(root: &Path) -> String {
    let runas = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let root = sh_quote(&root.to_string_lossy());
    format!(
        r#"root={root}
for pidfile in "$root"/pg/*/postmaster.pid; do
  [ -f "$pidfile" ] || continue
  dir=${{pidfile%/postmaster.pid}}
  pid=$(head -n 1 "$pidfile")
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  grep -q postgres "/proc/$pid/cmdline" 2>/dev/null || continue
  # A frozen (SIGSTOPped) server would never act on the stop request.
  kill -CONT "$pid" 2>/dev/null
  pkill -CONT -P "$pid" 2>/dev/null
  {runas}{PG_BIN}/pg_ctl -D "$dir" stop -m immediate -w -t 10 >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null
done
for pidfile in "$root"/redis/*/redis.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  port=${{pidfile%/redis.pid}}
  port=${{port##*/}}
  # Nothing is ever saved (save '', no AOF), so SIGKILL loses nothing and, unlike
  # SHUTDOWN over the protocol, cannot hang on a frozen node.
  grep -q ":$port" "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
rm -rf "$root"
"#
    )
}

/// Runs [`cleanup_script`] now and waits for it.
pub fn teardown_root(root: &Path) -> Result<()> {
    check_root(root)?;
    let out = Command::new("sh")
        .arg("-c")
        .arg(cleanup_script(root))
        .stdin(Stdio::null())
        .output()
        .context("running the cleanup script")?;
    if !out.status.success() || root.exists() {
        bail!(
            "cleanup of {} failed: {}",
            root.display(),
            output_text(&out)
        );
    }
    Ok(())
}

/// Refuses roots that `rm -rf` must never see.
fn check_root(root: &Path) -> Result<()> {
    if !root.is_absolute() || root.parent().is_none_or(|p| p == Path::new("/")) {
        bail!("refusing to clean up {}: not a temp dir", root.display());
    }
    Ok(())
}

/// Starts a detached watcher (`setsid`, own session, no stdio, so neither a Ctrl-C to
/// the test's process group nor nextest's wait for the test's output involves it) that
/// runs `cleanup` once `watch_pid` has exited.
pub fn spawn_reaper(watch_pid: u32, cleanup: &str) -> Result<Child> {
    // A dead process whose parent has not reaped it yet still passes `kill -0`; on
    // machines whose init never reaps, it stays a zombie forever. Treat Z/X as gone.
    let script = format!(
        r#"while kill -0 {watch_pid} 2>/dev/null; do
  case $(cut -d')' -f2 /proc/{watch_pid}/stat 2>/dev/null) in " Z"*|" X"*) break ;; esac
  sleep 1
done
{cleanup}"#
    );
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .arg(REAPER_NAME)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning the cleanup watcher (setsid sh)")
}

/// Kills a watcher started by an earlier process, if that pid still is one.
pub fn kill_reaper(pid: u32) {
    let is_reaper = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(REAPER_NAME))
        .unwrap_or(false);
    if is_reaper && pid_alive(pid) {
        let _ = crate::sys::signal(&[pid], "KILL");
    }
}

/// Owns a root directory of servers: tears it down on drop unless disarmed. A watcher
/// covers the cases where drop never runs (abort, SIGKILL, a `static`).
#[derive(Debug)]
pub(crate) struct Guard {
    root: PathBuf,
    reaper: Option<Child>,
    armed: bool,
}

impl Guard {
    /// Guards `root`; with `watch_pid`, also starts a watcher for that process.
    pub(crate) fn new(root: PathBuf, watch_pid: Option<u32>) -> Result<Self> {
        check_root(&root)?;
        let reaper = match watch_pid {
            Some(pid) => Some(spawn_reaper(pid, &cleanup_script(&root))?),
            None => None,
        };
        Ok(Self {
            root,
            reaper,
            armed: true,
        })
    }

    /// Leaves the servers running (and the watcher watching); returns the watcher's pid.
    pub(crate) fn disarm(mut self) -> Option<u32> {
        self.armed = false;
        self.reaper.take().map(|c| c.id())
    }

    /// Stops the servers, removes the root and retires the watcher.
    pub(crate) fn teardown(&mut self) -> Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        let result = teardown_root(&self.root);
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
        result
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("test-kit: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_shallow_roots() {
        assert!(check_root(Path::new("/")).is_err());
        assert!(check_root(Path::new("/tmp")).is_err());
        assert!(check_root(Path::new("tmp/x")).is_err());
        assert!(check_root(Path::new("/tmp/shortener-bed-x")).is_ok());
    }

    #[test]
    fn cleanup_removes_an_idle_root_and_is_idempotent() {
        let root = crate::sys::make_root("reaper-test-").unwrap();
        std::fs::create_dir_all(root.join("pg/primary")).unwrap();
        std::fs::write(root.join("pg/primary/postmaster.pid"), "999999999\n").unwrap();
        teardown_root(&root).unwrap();
        assert!(!root.exists());
        teardown_root(&root).unwrap();
    }
}
