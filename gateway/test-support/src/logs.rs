//! A log writer that keeps what it is given, for suites that assert on log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything written to any clone, in order; give `move || captured.clone()` to
/// `tracing_subscriber::fmt().with_writer`.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What has been written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
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
