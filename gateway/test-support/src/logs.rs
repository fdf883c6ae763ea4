//! A log writer that keeps what it is given, for suites that assert on log lines, and a
//! process-wide JSON subscriber writing into one, for suites that read the lines as JSON.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use sluice_gateway::log_format::{self, LogFormat};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Everything written to any clone, in order; give `move || captured.clone()` to
/// `tracing_subscriber::fmt().with_writer`.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What has been written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Every line written so far that is a JSON object (a `LogFormat::Json` subscriber's).
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Waits (up to 20 s) until `n` JSON lines satisfy `wanted`, and returns them; panics with
    /// everything captured when they do not come.
    pub async fn wait_json(&self, n: usize, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let lines: Vec<Value> = self.json_lines().into_iter().filter(&wanted).collect();
                if lines.len() >= n {
                    return lines;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("{n} wanted log lines did not come:\n{}", self.text()))
    }
}

/// Sluice's own JSON subscriber (`--log-format json`, at `filter`) as this process's global
/// one, installed on first use: a per-thread default would miss events of other threads, and
/// tracing caches each call site's interest process-wide.
pub fn global_json(filter: &str) -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let filter = EnvFilter::new(filter);
        log_format::subscriber(LogFormat::Json, filter, move || writer.clone(), false)
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    })
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
