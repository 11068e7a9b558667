//! A real headless Chromium for tests: Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by selenium in the test venv
//! (`webdriver.py`, one JSON command per line).
//!
//! `Browser::start` returns `None` (with a note) when the browser, the
//! driver or selenium is missing, so a developer box without them skips
//! the test; under CI (`CI` set) a missing piece fails it instead, since
//! scripts/test.sh installs all three.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// `name` on PATH, then in /usr/bin.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The venv's python (scripts/test.sh creates `.venv` from
/// tests/requirements.txt), else `python3`.
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Skips (returns `None`) outside CI; fails in CI.
fn missing(what: &str) -> Option<Browser> {
    let msg = format!(
        "{what}: the status page browser test needs chromium, chromium-driver and selenium \
         (scripts/test.sh installs them: apt-get install chromium chromium-driver; pip install -r tests/requirements.txt)"
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

impl Browser {
    pub fn start() -> Option<Browser> {
        let Some(chromium) = which("chromium") else { return missing("chromium not found") };
        let Some(driver) = which("chromedriver") else { return missing("chromedriver not found") };
        let py = python();
        let has_selenium =
            Command::new(&py).args(["-c", "import selenium"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        if !has_selenium {
            return missing(&format!("{} cannot import selenium", py.display()));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status_page/webdriver.py");
        let mut child = Command::new(&py)
            .arg(script)
            .arg(chromium)
            .arg(driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start webdriver.py");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut b = Browser { child, stdin, stdout };
        let hello = b.answer();
        assert_eq!(hello, Ok(json!("ready")), "chromium did not start");
        Some(b)
    }

    fn answer(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read from webdriver.py");
        assert!(n > 0, "webdriver.py exited");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("webdriver.py said {line:?}: {e}"));
        match v.get("err") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
            None => Ok(v.get("ok").cloned().unwrap_or(Value::Null)),
        }
    }

    fn call(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to webdriver.py");
        self.answer().unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    pub fn open(&mut self, url: &str) {
        self.call(json!({"op": "open", "url": url}));
    }

    /// Runs `js`, a function body (`return ...`), in the page.
    pub fn eval(&mut self, js: &str) -> Value {
        self.call(json!({"op": "eval", "js": js}))
    }

    pub fn type_into(&mut self, css: &str, text: &str) {
        self.call(json!({"op": "type", "css": css, "text": text}));
    }

    pub fn click(&mut self, css: &str) {
        self.call(json!({"op": "click", "css": css}));
    }

    /// Console entries (level, message) since the last call.
    pub fn console(&mut self) -> Vec<(String, String)> {
        let logs = self.call(json!({"op": "logs"}));
        let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        logs.as_array().map(|a| a.iter().map(|e| (text(e, "level"), text(e, "message"))).collect()).unwrap_or_default()
    }

    pub fn screenshot(&mut self, path: &Path) {
        let ok = self.call(json!({"op": "screenshot", "path": path}));
        assert_eq!(ok, json!(true), "screenshot to {}", path.display());
    }

    /// Polls `js` until `ok` accepts its value; returns that value and how
    /// long it took, or panics with the last value seen.
    pub fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        js: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            let v = self.eval(js);
            if ok(&v) {
                return (v, start.elapsed());
            }
            assert!(start.elapsed() < within, "{what}: not within {within:?}; last value {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
