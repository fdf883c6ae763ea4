//! How a data plane takes SIGTERM (see `ListenerManager::drain`).

use std::time::Duration;

/// How a SIGTERM is taken: stop being ready, keep accepting for `delay`, stop accepting, give
/// requests in flight up to `grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    pub delay: Duration,
    pub grace: Duration,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            delay: Duration::ZERO,
            grace: Duration::from_secs(30),
        }
    }
}
