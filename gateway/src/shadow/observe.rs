//! One side's answer as it streams: status, the compared headers, a digest of the body and,
//! when JSON fields are ignored, the body itself up to a cap (shared chunks, not copies).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use sluice_controller::snapshot::{Comparison, MirrorPolicy};
use xxhash_rust::xxh3::Xxh3;

/// Body bytes kept per side for a JSON comparison (`ignoreJSONFields`); a larger body on either
/// side makes the comparison `not_compared`. Both sides' copies live until the join, so a
/// compared copy holds at most twice this.
pub const JSON_CAP_BYTES: usize = 1024 * 1024;

/// What one side answered, as far as the comparison needs it.
pub struct Observation {
    /// The policy whose `compare` section says what is observed.
    policy: Arc<MirrorPolicy>,
    /// When the copy started; both sides' latencies are measured from it.
    origin: Instant,
    pub(super) status: Option<u16>,
    /// The values of each compared header, in the comparison's order.
    pub(super) headers: Vec<Vec<HeaderValue>>,
    /// Boxed: the hasher's state is over half a kilobyte, and observations move between tasks.
    digest: Option<Box<Xxh3>>,
    /// `None` when no JSON field is ignored (nothing kept).
    pub(super) json: Option<JsonBody>,
    ended: Option<Instant>,
}

/// The body kept for a JSON comparison: the chunks themselves (shared, not copied).
#[derive(Default)]
pub(super) struct JsonBody {
    pub chunks: Vec<Bytes>,
    pub len: usize,
    pub over_cap: bool,
}

impl Observation {
    /// `None` when the policy compares nothing.
    pub fn new(policy: &Arc<MirrorPolicy>, origin: Instant) -> Option<Observation> {
        let comparison = policy.compare.as_ref()?;
        Some(Observation {
            policy: policy.clone(),
            origin,
            status: None,
            headers: Vec::new(),
            digest: comparison.body.then(|| Box::new(Xxh3::new())),
            json: (!comparison.ignore_json_fields.is_empty()).then(JsonBody::default),
            ended: None,
        })
    }

    fn comparison(&self) -> Option<&Comparison> {
        self.policy.compare.as_ref()
    }

    /// The answer's head. A second head (a retried attempt) starts the observation over.
    pub fn on_head(&mut self, status: u16, headers: &HeaderMap) {
        let values = compared_values(self.compared_headers(), headers);
        self.on_compared_head(status, values);
    }

    /// The answer's head, already reduced to [`compared_values`] (off the answer's path).
    pub fn on_compared_head(&mut self, status: u16, values: Vec<Vec<HeaderValue>>) {
        self.status = Some(status);
        self.headers = values;
        if let Some(digest) = self.digest.as_mut() {
            digest.reset();
        }
        if let Some(json) = self.json.as_mut() {
            *json = JsonBody::default();
        }
        self.ended = None;
    }

    /// One body chunk: hashed in place; kept (a reference count, not a copy) for JSON.
    pub fn on_chunk(&mut self, chunk: &Bytes) {
        if let Some(digest) = self.digest.as_mut() {
            digest.update(chunk);
        }
        if let Some(json) = self.json.as_mut() {
            if json.over_cap {
                return;
            }
            json.len += chunk.len();
            if json.len > JSON_CAP_BYTES {
                json.over_cap = true;
                json.chunks = Vec::new();
            } else {
                json.chunks.push(chunk.clone());
            }
        }
    }

    /// The answer is complete.
    pub fn finish(&mut self) {
        self.finish_at(Instant::now());
    }

    /// The answer was complete at `at` (observed later, off the answer's path).
    pub fn finish_at(&mut self, at: Instant) {
        if self.ended.is_none() {
            self.ended = Some(at);
        }
    }

    /// The compared headers' names, in order.
    pub fn compared_headers(&self) -> &[http::HeaderName] {
        self.comparison().map_or(&[], |c| c.headers.as_slice())
    }

    /// Whether a head was seen and the answer is complete.
    pub fn is_complete(&self) -> bool {
        self.status.is_some() && self.ended.is_some()
    }

    /// From the copy's start to the end of this answer.
    pub fn latency(&self) -> Option<Duration> {
        self.ended.map(|e| e.saturating_duration_since(self.origin))
    }

    /// The body's xxh3-128 digest in hex, when bodies are compared.
    pub fn digest(&self) -> Option<u128> {
        self.digest.as_deref().map(Xxh3::digest128)
    }
}

/// The values of each of `names` in `headers`, in that order: all a comparison keeps of a head.
pub fn compared_values(names: &[http::HeaderName], headers: &HeaderMap) -> Vec<Vec<HeaderValue>> {
    names
        .iter()
        .map(|name| headers.get_all(name).iter().cloned().collect())
        .collect()
}
