//! Prometheus metrics of one Sluice instance, in its own registry (never the global default).

pub mod runtime;
pub mod upstream;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use sluice_controller::publish::Store;

use crate::edge::EdgeMetrics;
use crate::shadow::Shadow;
use crate::tls_route::TlsRouteMetrics;
use upstream::UpstreamErrorMetrics;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot register metric")]
    Register(#[source] prometheus::Error),
    #[error("cannot encode metrics")]
    Encode(#[source] prometheus::Error),
    #[error("encoded metrics are not UTF-8")]
    Utf8(#[source] std::string::FromUtf8Error),
}

/// Request latencies of a gateway span sub-millisecond hits to slow backends near a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Label value for a request that matched no route or reached no backend.
pub const NONE: &str = "";

pub struct Metrics {
    pub registry: Registry,
    /// `sluice_requests_total{gateway,route,kind,backend,code}`: responses sent downstream, by
    /// the Gateway (`namespace/name`), route (`namespace/name`) and its kind (`HTTPRoute`,
    /// `GRPCRoute`), backend (`namespace/service:port`) and status code. `route`, `kind` and
    /// `backend` are empty when no route matched or no backend was chosen; `code` is `0` when no
    /// response could be sent.
    pub requests: IntCounterVec,
    /// `sluice_request_duration_seconds{gateway,route,kind}`: from the request head arriving to the
    /// response finishing (or failing).
    pub duration: HistogramVec,
    /// `sluice_upstream_duration_seconds{backend}`: from the first byte sent to a backend to the
    /// end of its answer (the access line's `upstream_duration_us`), for requests that reached
    /// one: latency per backend, which the route-level histogram cannot tell apart.
    pub upstream_duration: HistogramVec,
    /// `sluice_grpc_responses_total{gateway,route,grpc_status}`: answers to gRPC calls by their
    /// `grpc-status` (Sluice's own, or the backend's head or trailers; empty when the answer
    /// carried none, such as a plain HTTP error or a stream cut short). Their HTTP status is
    /// 200 in `sluice_requests_total` whatever the outcome.
    pub grpc: IntCounterVec,
    /// `sluice_upstream_retries_total{route,reason}`: attempts sent again under a rule's `retry`
    /// policy, by why the previous attempt failed (`status`, `connection_error`,
    /// `backend_timeout`).
    pub retries: IntCounterVec,
    /// `sluice_downstream_*`: client connections and what the edge guard refused.
    pub edge: EdgeMetrics,
    /// `sluice_tls_route_*`: streams on `TLS` listeners.
    pub tls_routes: TlsRouteMetrics,
    /// `sluice_shadow_*` and the mismatch samples of `GET /shadow`.
    pub shadow: Arc<Shadow>,
    /// `sluice_upstream_connect_errors_total`, `sluice_upstream_errors_total`.
    pub upstream: UpstreamErrorMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("sluice_requests_total", "Responses sent to clients."),
            &["gateway", "route", "kind", "backend", "code"],
        )
        .map_err(MetricsError::Register)?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sluice_request_duration_seconds",
                "Time from request head to response end.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["gateway", "route", "kind"],
        )
        .map_err(MetricsError::Register)?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "sluice_upstream_duration_seconds",
                "Time from the request sent to a backend to the end of its answer.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["backend"],
        )
        .map_err(MetricsError::Register)?;
        let grpc = IntCounterVec::new(
            Opts::new(
                "sluice_grpc_responses_total",
                "Answers to gRPC calls by grpc-status.",
            ),
            &["gateway", "route", "grpc_status"],
        )
        .map_err(MetricsError::Register)?;
        let retries = IntCounterVec::new(
            Opts::new(
                "sluice_upstream_retries_total",
                "Upstream attempts retried under a route rule's retry policy.",
            ),
            &["route", "reason"],
        )
        .map_err(MetricsError::Register)?;
        registry
            .register(Box::new(retries.clone()))
            .map_err(MetricsError::Register)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(MetricsError::Register)?;
        registry
            .register(Box::new(duration.clone()))
            .map_err(MetricsError::Register)?;
        registry
            .register(Box::new(grpc.clone()))
            .map_err(MetricsError::Register)?;
        registry
            .register(Box::new(upstream_duration.clone()))
            .map_err(MetricsError::Register)?;
        let edge = EdgeMetrics::default();
        edge.register(&registry).map_err(MetricsError::Register)?;
        let tls_routes = TlsRouteMetrics::default();
        tls_routes
            .register(&registry)
            .map_err(MetricsError::Register)?;
        let shadow = Arc::new(Shadow::register(&registry).map_err(MetricsError::Register)?);
        let upstream = UpstreamErrorMetrics::register(&registry).map_err(MetricsError::Register)?;
        runtime::register(&registry).map_err(MetricsError::Register)?;
        Ok(Metrics {
            registry,
            requests,
            duration,
            upstream_duration,
            grpc,
            retries,
            edge,
            tls_routes,
            shadow,
            upstream,
        })
    }

    /// Also exports the store's reload counts and generation, read at scrape time.
    pub fn track_store(&self, store: Arc<Store>) -> Result<(), MetricsError> {
        let collector = StoreCollector::new(store)?;
        self.registry
            .register(Box::new(collector))
            .map_err(MetricsError::Register)
    }

    pub fn record_request(
        &self,
        gateway: &str,
        route: &str,
        kind: &str,
        backend: &str,
        code: u16,
        elapsed: Duration,
    ) {
        // StatusCode spells every code from 100 to 999 statically; 0 (no answer) is ours.
        let status = http::StatusCode::from_u16(code).ok();
        let code = status.as_ref().map_or("0", |c| c.as_str());
        self.requests
            .with_label_values(&[gateway, route, kind, backend, code])
            .inc();
        self.duration
            .with_label_values(&[gateway, route, kind])
            .observe(elapsed.as_secs_f64());
    }

    /// One backend exchange's duration (the last attempt's, as the access line reports it).
    pub fn record_upstream(&self, backend: &str, elapsed: Duration) {
        self.upstream_duration
            .with_label_values(&[backend])
            .observe(elapsed.as_secs_f64());
    }

    /// The answer to one gRPC call, with its `grpc-status` if it carried one. The 17 codes gRPC
    /// defines keep their number; anything else a backend sends is `other`, so a backend cannot
    /// grow the series without bound.
    pub fn record_grpc_call(&self, gateway: &str, route: &str, grpc_status: Option<u32>) {
        let status = match grpc_status {
            Some(s @ 0..=16) => s.to_string(),
            Some(_) => "other".to_string(),
            None => String::new(),
        };
        self.grpc
            .with_label_values(&[gateway, route, status.as_str()])
            .inc();
    }

    /// One retry of an upstream attempt on `route`, for `reason`.
    pub fn record_retry(&self, route: &str, reason: &str) {
        self.retries.with_label_values(&[route, reason]).inc();
    }

    /// The Prometheus text exposition of every metric in the registry, for `/metrics`.
    pub fn encode_text(&self) -> Result<String, MetricsError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(MetricsError::Encode)?;
        String::from_utf8(buf).map_err(MetricsError::Utf8)
    }
}

/// Exports `sluice_config_reloads_total{result="published"|"rejected"}` (configurations
/// published or rejected since start) and `sluice_snapshot_generation` (the live snapshot's
/// generation), both read from the [`Store`] at scrape time so they can never drift from it.
struct StoreCollector {
    store: Arc<Store>,
    reloads: prometheus::IntCounterVec,
    generation: IntGauge,
    /// Serialises scrapes so the counter catch-up below never double-counts.
    lock: Mutex<()>,
}

impl StoreCollector {
    fn new(store: Arc<Store>) -> Result<StoreCollector, MetricsError> {
        let reloads = IntCounterVec::new(
            Opts::new(
                "sluice_config_reloads_total",
                "Configuration reloads by result.",
            ),
            &["result"],
        )
        .map_err(MetricsError::Register)?;
        let generation = IntGauge::new(
            "sluice_snapshot_generation",
            "Generation of the live configuration snapshot.",
        )
        .map_err(MetricsError::Register)?;
        Ok(StoreCollector {
            store,
            reloads,
            generation,
            lock: Mutex::new(()),
        })
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.reloads.desc();
        d.extend(self.generation.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (published, rejected) = self.store.reload_counts();
        for (result, total) in [("published", published), ("rejected", rejected)] {
            let counter = self.reloads.with_label_values(&[result]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let generation = i64::try_from(self.store.load().generation).unwrap_or(i64::MAX);
        self.generation.set(generation);
        let mut families = self.reloads.collect();
        families.extend(self.generation.collect());
        families
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sluice_controller::snapshot::Snapshot;

    use super::*;

    #[test]
    fn requests_are_counted_by_labels_and_timed() {
        let m = Metrics::new().unwrap();
        for _ in 0..2 {
            m.record_request(
                "ns/gw",
                "ns/route",
                "GRPCRoute",
                "ns/svc:80",
                200,
                Duration::from_millis(3),
            );
        }
        m.record_request("ns/gw", NONE, NONE, NONE, 404, Duration::from_millis(1));
        let text = m.encode_text().unwrap();
        assert!(text.contains(
            r#"sluice_requests_total{backend="ns/svc:80",code="200",gateway="ns/gw",kind="GRPCRoute",route="ns/route"} 2"#
        ), "{text}");
        assert!(text.contains(r#"code="404""#));
        assert!(text.contains(
            r#"sluice_request_duration_seconds_count{gateway="ns/gw",kind="GRPCRoute",route="ns/route"} 2"#
        ));
    }

    #[test]
    fn grpc_statuses_outside_the_defined_codes_share_one_label() {
        let m = Metrics::new().unwrap();
        for status in [Some(14), Some(17), Some(4_000_000), None] {
            m.record_grpc_call("ns/gw", "ns/r", status);
        }
        let text = m.encode_text().unwrap();
        for (status, n) in [("14", 1), ("other", 2), ("", 1)] {
            let series = format!(
                r#"sluice_grpc_responses_total{{gateway="ns/gw",grpc_status="{status}",route="ns/r"}} {n}"#
            );
            assert!(text.contains(&series), "{series} in {text}");
        }
        assert!(!text.contains("4000000"), "{text}");
    }

    #[test]
    fn store_counts_and_generation_are_read_at_scrape_time() {
        let m = Metrics::new().unwrap();
        let store = Store::new();
        m.track_store(store.clone()).unwrap();
        store.publish(Snapshot::default());
        store.publish(Snapshot::default());
        store.reject("bad".into());
        let text = m.encode_text().unwrap();
        assert!(
            text.contains(r#"sluice_config_reloads_total{result="published"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"sluice_config_reloads_total{result="rejected"} 1"#));
        assert!(text.contains("sluice_snapshot_generation 2"));
        store.publish(Snapshot::default());
        let text = m.encode_text().unwrap();
        assert!(
            text.contains(r#"sluice_config_reloads_total{result="published"} 3"#),
            "{text}"
        );
        assert!(text.contains("sluice_snapshot_generation 3"));
    }

    #[test]
    fn two_instances_do_not_share_a_registry() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.record_request("g", "r", "HTTPRoute", "b", 200, Duration::ZERO);
        assert!(!b.encode_text().unwrap().contains("sluice_requests_total{"));
    }
}
