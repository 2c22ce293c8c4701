//! nginx as a plain child process of the test, in a temp prefix, on a free port.
//!
//! The caller's config text may use `{{port}}` (replaced by the port the kit picks) and
//! `{{prefix}}` (the prefix directory, for absolute paths). Paths in it are relative to
//! the prefix. What the config leaves out is filled in so that nginx never touches the
//! system's files: `pid` and `daemon off` through `-g`, the error log through `-e`, and,
//! inside `http { }`, the temp paths and the access log, whose built-in defaults are
//! under /var.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::reaper::spawn_reaper;
use crate::sys::{self, is_root, log_tail, sh_quote};

const NGINX: &str = "/usr/sbin/nginx";

/// Temp directories created under the prefix and named in the injected directives.
const TEMP_DIRS: [(&str, &str); 5] = [
    ("client_body_temp_path", "temp/body"),
    ("proxy_temp_path", "temp/proxy"),
    ("fastcgi_temp_path", "temp/fastcgi"),
    ("uwsgi_temp_path", "temp/uwsgi"),
    ("scgi_temp_path", "temp/scgi"),
];

/// A running nginx. Dropping it stops nginx (master and workers) and removes the prefix.
#[derive(Debug)]
pub struct Nginx {
    port: u16,
    child: Child,
    reaper: Option<Child>,
    // Last field: removed after the process is gone.
    prefix: TempDir,
}

impl Nginx {
    /// Starts nginx with `conf_text` and waits until it accepts connections.
    ///
    /// # Panics
    /// When nginx does not start; the message holds nginx's error log. See
    /// [`Nginx::try_start`].
    pub async fn start(conf_text: &str) -> Nginx {
        match Self::try_start(conf_text).await {
            Ok(nginx) => nginx,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// [`Nginx::start`] that reports failure instead of panicking.
    pub async fn try_start(conf_text: &str) -> Result<Nginx> {
        let mut last = None;
        // A port can be taken between the probe and nginx's bind: try a few.
        for _ in 0..3 {
            match Self::start_once(conf_text).await {
                Ok(nginx) => return Ok(nginx),
                Err((e, port_taken)) => {
                    last = Some(e);
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        match last {
            Some(e) => Err(e),
            None => bail!("nginx did not start"),
        }
    }

    /// The port that `{{port}}` was replaced by.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The prefix directory (config, logs, temp files).
    pub fn prefix(&self) -> &Path {
        self.prefix.path()
    }

    pub fn error_log(&self) -> PathBuf {
        self.prefix.path().join("logs/error.log")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn start_once(conf_text: &str) -> Result<Nginx, (anyhow::Error, bool)> {
        let fail = |e: anyhow::Error| (e, false);
        let port = sys::try_free_port().map_err(fail)?;
        let prefix = tempfile::Builder::new()
            .prefix("shortener-nginx-")
            .tempdir_in(sys::base_dir())
            .context("creating the nginx prefix")
            .map_err(fail)?;
        let dir = prefix.path();
        // Workers of a config that sets its own `user` must still reach the prefix.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| fail(e.into()))?;
        for sub in ["logs", "temp"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| fail(e.into()))?;
        }
        let conf = render(conf_text, port, dir, is_root());
        std::fs::write(dir.join("nginx.conf"), &conf)
            .context("writing nginx.conf")
            .map_err(fail)?;

        let mut globals = String::from("daemon off;");
        if !has_directive(conf_text, "pid") {
            globals.push_str(" pid logs/nginx.pid;");
        }
        let error_log = dir.join("logs/error.log");
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(&error_log)
            .arg("-g")
            .arg(&globals)
            .current_dir(dir)
            // nginx writes nothing useful to stdio once it runs; inherited pipes would
            // make the test runner wait for nginx's workers.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("logs/stderr.log")).map_err(|e| fail(e.into()))?,
            ))
            .spawn()
            .with_context(|| format!("running {NGINX} (is nginx installed?)"))
            .map_err(fail)?;

        let reaper = spawn_reaper(std::process::id(), &stop_script(child.id(), dir)).ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = format!(
                    "{}{}",
                    log_tail(&dir.join("logs/stderr.log"), 20),
                    log_tail(&error_log, 20)
                );
                let port_taken = log.contains("Address already in use");
                let e = anyhow::anyhow!(
                    "nginx exited ({status}) at start{log}\n--- config ---\n{conf}"
                );
                if let Some(mut r) = reaper {
                    let _ = r.kill();
                    let _ = r.wait();
                }
                return Err((e, port_taken));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Nginx {
                    port,
                    child,
                    reaper,
                    prefix,
                });
            }
            if Instant::now() >= deadline {
                let nginx = Nginx {
                    port,
                    child,
                    reaper,
                    prefix,
                };
                let e = anyhow::anyhow!(
                    "nginx did not accept connections on {port} within 10 s{}",
                    log_tail(&error_log, 20)
                );
                drop(nginx);
                return Err((e, false));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL on the master alone would
        // leave the workers serving the port.
        let workers = sys::children(self.child.id());
        let _ = sys::signal(&[self.child.id()], "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left: Vec<u32> = workers.into_iter().filter(|p| sys::pid_alive(*p)).collect();
        let _ = sys::signal(&left, "KILL");
        if let Some(mut reaper) = self.reaper.take() {
            let _ = reaper.kill();
            let _ = reaper.wait();
        }
    }
}

/// What the watcher runs if the test process dies with nginx still up.
fn stop_script(pid: u32, prefix: &Path) -> String {
    format!(
        r#"pid={pid}
if grep -q nginx "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in 1 2 3 4 5 6; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  pkill -KILL -P "$pid" 2>/dev/null
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf {}
"#,
        sh_quote(&prefix.to_string_lossy())
    )
}

/// The config nginx gets: placeholders replaced; `user root;` when we are root (workers
/// would otherwise run as nobody and could not use the prefix) unless the text sets a
/// user; temp paths and the access log inside `http {` unless the text sets them.
fn render(conf_text: &str, port: u16, prefix: &Path, root: bool) -> String {
    let mut conf = conf_text
        .replace("{{port}}", &port.to_string())
        .replace("{{prefix}}", &prefix.to_string_lossy());
    let mut http_extra = String::new();
    for (directive, path) in TEMP_DIRS {
        if !conf_text.contains(directive) {
            http_extra.push_str(&format!("\n    {directive} {path};"));
        }
    }
    if !conf_text.contains("access_log") {
        http_extra.push_str("\n    access_log logs/access.log;");
    }
    if let Some(at) = http_block_start(&conf) {
        conf.insert_str(at, &http_extra);
    }
    if root && !has_directive(conf_text, "user") {
        conf.insert_str(0, "user root;\n");
    }
    conf
}

/// Byte offset just after the `{` that opens the `http` block, if any.
fn http_block_start(conf: &str) -> Option<usize> {
    let bytes = conf.as_bytes();
    let mut from = 0;
    while let Some(pos) = conf[from..].find("http") {
        let start = from + pos;
        let end = start + 4;
        let word_start = start == 0
            || bytes[start - 1].is_ascii_whitespace()
            || bytes[start - 1] == b';'
            || bytes[start - 1] == b'}';
        let rest = &conf[end..];
        let after_ws = rest.trim_start();
        if word_start && after_ws.starts_with('{') {
            return Some(end + (rest.len() - after_ws.len()) + 1);
        }
        from = end;
    }
    None
}

/// Whether a line of the config starts with `name` as a directive.
fn has_directive(conf: &str, name: &str) -> bool {
    conf.lines().any(|l| {
        l.trim_start()
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_whitespace()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "events {}\nhttp {\n  server { listen 127.0.0.1:{{port}}; return 302 http://example.invalid/; }\n}\n";

    #[test]
    fn renders_port_temp_paths_and_user() {
        let conf = render(CONF, 4321, Path::new("/tmp/p"), true);
        assert!(conf.starts_with("user root;\n"));
        assert!(conf.contains("listen 127.0.0.1:4321;"));
        assert!(conf.contains("http {\n    client_body_temp_path temp/body;"));
        assert!(conf.contains("access_log logs/access.log;"));
    }

    #[test]
    fn keeps_what_the_config_sets() {
        let text = "user www-data;\nevents {}\nhttp { access_log off; proxy_temp_path /x; }";
        let conf = render(text, 1, Path::new("/p"), true);
        assert!(!conf.contains("user root"));
        assert!(!conf.contains("logs/access.log"));
        assert!(!conf.contains("temp/proxy"));
        assert!(conf.contains("temp/body"));
    }

    #[test]
    fn finds_the_http_block_only() {
        assert_eq!(http_block_start("events{}\nhttp{x}"), Some(14));
        assert_eq!(http_block_start("location /http { }"), None);
        assert_eq!(http_block_start("stream { }"), None);
        assert!(has_directive("  pid x.pid;", "pid"));
        assert!(!has_directive("pidfile x;", "pid"));
    }
}
