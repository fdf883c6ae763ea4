//! Spawned tasks that end with the test: a failing assertion cannot leave them running.

use tokio::task::JoinHandle;

/// Aborts every task it holds when dropped.
#[derive(Debug, Default)]
pub struct AbortOnDrop(pub Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
