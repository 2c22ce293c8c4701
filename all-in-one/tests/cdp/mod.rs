//! Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol.
//!
//! The protocol runs over `--remote-debugging-pipe`: Chromium reads commands from its
//! file descriptor 3 and writes answers and events to descriptor 4, each message a
//! JSON text ended by a NUL byte. A shell maps the child's stdin and stdout onto those
//! descriptors, so no WebSocket client and no listening debug port are needed.
//!
//! Chromium may only ever talk to 127.0.0.1: background networking, component
//! updates and sync are off, and every host name resolves to nothing except those
//! the test maps to 127.0.0.1 itself.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The flags every launch uses (besides the pipe, the profile and the window).
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

pub const WIDTH: u32 = 1000;
pub const HEIGHT: u32 = 700;

/// How long one protocol command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The browser binary: `$SHORTENER_CHROMIUM`, else Debian's `chromium` on the PATH.
/// Never skipped: a machine without it fails here, with the way to fix it.
pub fn chromium_binary() -> String {
    if let Ok(path) = std::env::var("SHORTENER_CHROMIUM") {
        return path;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(path) if !path.is_empty() => path,
        _ => panic!(
            "Debian's `chromium` is not installed: `apt-get install -y chromium` \
             (scripts/test installs it), or set SHORTENER_CHROMIUM"
        ),
    }
}

type Outbox = Arc<Mutex<ChildStdin>>;

fn send(outbox: &Outbox, message: &Value) {
    let mut bytes = serde_json::to_vec(message).unwrap();
    bytes.push(0);
    let mut pipe = outbox.lock().unwrap();
    pipe.write_all(&bytes).unwrap();
    pipe.flush().unwrap();
}

/// One browser with one page, attached in flat mode (commands carry the session id).
pub struct Browser {
    child: Child,
    outbox: Outbox,
    ids: Arc<AtomicU64>,
    answers: Receiver<Value>,
    events: Arc<Mutex<Vec<Value>>>,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium; `hosts` are names that resolve to 127.0.0.1, every other
    /// name to nothing.
    pub fn launch(hosts: &[&str]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut rules: Vec<String> = hosts.iter().map(|h| format!("MAP {h} 127.0.0.1")).collect();
        rules.push("MAP * ~NOTFOUND".into());
        rules.push("EXCLUDE 127.0.0.1".into());
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.extend([
            "--remote-debugging-pipe".to_string(),
            format!("--host-resolver-rules={}", rules.join(", ")),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
            "--hide-scrollbars".to_string(),
            "about:blank".to_string(),
        ]);
        // `exec` keeps the pid; 3 and 4 become our pipes, 0 and 1 are closed off.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(chromium_binary())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let outbox: Outbox = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let stdout = child.stdout.take().unwrap();
        let ids = Arc::new(AtomicU64::new(1));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (answers_tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn({
            let outbox = outbox.clone();
            let ids = ids.clone();
            let events = events.clone();
            move || read_messages(stdout, answers_tx, outbox, ids, events)
        });
        let mut browser = Browser {
            child,
            outbox,
            ids,
            answers,
            events,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    fn command(&self, method: &str, params: Value, session: Option<&str>) -> Value {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        send(&self.outbox, &message);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match self.answers.recv_timeout(left) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{method}: no answer within {COMMAND_TIMEOUT:?} (dialogs seen: {:?})",
                    self.events_named("Page.javascriptDialogOpening")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: Chromium went away"),
            };
            // Answers to the reader's own commands (dialog dismissals) pass by here.
            if answer["id"] != json!(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    fn call_browser(&self, method: &str, params: Value) -> Value {
        self.command(method, params, None)
    }

    /// A command to the page.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.command(method, params, Some(&self.session))
    }

    /// Every event named `method` so far, oldest first.
    pub fn events_named(&self, method: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == method)
            .map(|e| e["params"].clone())
            .collect()
    }

    /// Messages the page logged about the Content-Security-Policy, or script errors.
    pub fn page_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for entry in self.events_named("Log.entryAdded") {
            let text = entry["entry"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if text.contains("Content Security Policy") || text.contains("Content-Security-Policy")
            {
                errors.push(text);
            }
        }
        for thrown in self.events_named("Runtime.exceptionThrown") {
            errors.push(thrown["exceptionDetails"].to_string());
        }
        errors
    }

    /// Evaluates `expression` in the page (promises awaited); its value as JSON.
    pub fn eval(&self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("`{expression}` threw: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (not false, null, 0 or ""); its value.
    pub fn wait_for(&self, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` still falsy after {timeout:?}; page errors: {:?}",
                self.page_errors()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Loads `url` and waits until the page's script has started (`data-ready`).
    pub fn open_page(&self, url: &str) {
        self.navigate(url);
        self.wait_for(
            "document.readyState === 'complete' && document.documentElement.dataset.ready === 'true'",
            Duration::from_secs(10),
        );
    }

    /// Navigates and waits for the new document's load event (a change of the
    /// fragment alone loads no document, and is done at once).
    pub fn navigate(&self, url: &str) {
        let loads = self.events_named("Page.loadEventFired").len();
        let result = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = result.get("errorText") {
            panic!("navigating to {url}: {error}");
        }
        if result.get("loaderId").is_none() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.events_named("Page.loadEventFired").len() == loads {
            assert!(Instant::now() < deadline, "{url} did not load");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the middle of the element `selector` with the mouse.
    pub fn click(&self, selector: &str) {
        let point = self.wait_for(
            &format!(
                "(() => {{ const e = document.querySelector({}); if (!e || e.offsetParent === null) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
                js(selector)
            ),
            Duration::from_secs(10),
        );
        let (x, y) = (point[0].clone(), point[1].clone());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Replaces the text of the input `selector` as typing would.
    pub fn type_into(&self, selector: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); e.focus(); e.select(); }})()",
            js(selector)
        ));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// The text content of `selector` ("" when absent).
    pub fn text(&self, selector: &str) -> String {
        self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            js(selector)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Writes a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut pipe) = self.outbox.lock() {
            let _ = pipe.write_all(format!(r#"{{"id":{id},"method":"Browser.close"}}"#).as_bytes());
            let _ = pipe.write_all(&[0]);
            let _ = pipe.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sorts Chromium's messages: answers to the test, events to the log. A dialog is
/// recorded and dismissed at once, so a script that opens one cannot stall the test.
fn read_messages(
    stdout: std::process::ChildStdout,
    answers: Sender<Value>,
    outbox: Outbox,
    ids: Arc<AtomicU64>,
    events: Arc<Mutex<Vec<Value>>>,
) {
    let mut reader = BufReader::new(stdout);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(0, &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buffer.last() == Some(&0) {
            buffer.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buffer) else {
            continue;
        };
        if message.get("id").is_some() {
            if answers.send(message).is_err() {
                return;
            }
            continue;
        }
        if message["method"] == "Page.javascriptDialogOpening" {
            let id = ids.fetch_add(1, Ordering::Relaxed);
            send(
                &outbox,
                &json!({"id": id, "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": false}, "sessionId": message["sessionId"]}),
            );
        }
        events.lock().unwrap().push(message);
    }
}

/// `value` as a JavaScript literal (JSON is one).
pub fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// Standard base64 (what the protocol sends binary data in).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_round_trips_known_values() {
    assert_eq!(base64_decode("TWFu"), b"Man");
    assert_eq!(base64_decode("TWE="), b"Ma");
    assert_eq!(base64_decode("TQ=="), b"M");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
