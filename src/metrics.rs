//! The service's metrics, served at `GET /metrics` in the OpenMetrics text format that
//! Prometheus scrapes: requests by route and status, latency histograms by route, bootstraps
//! run, evaluation keys cached, bytes in and out. Routes are the router's patterns
//! (`/v1/models/{name}/predict`), never a request's own path, so no client input becomes a
//! label; nothing secret or plaintext is recorded.
//!
//! prometheus-client (the Prometheus project's Rust client) was chosen over the `metrics`
//! facade: it keeps a registry per service, so tests and embedders can run several services in
//! one process without a global recorder.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern, or `unmatched`.
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// Labels of a latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern, or `unmatched`.
    pub route: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 6.5 s: leveled models answer in well under a millisecond, bootstrapped
    // label modes in seconds.
    Histogram::new(exponential_buckets(1e-4, 2.0, 17))
}

/// The service's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency, in seconds, by route.
    pub latency: LatencyFamily,
    /// Programmable bootstraps run for inferences.
    pub bootstraps: Counter,
    /// Expanded evaluation keys held.
    pub keys_cached: Gauge,
    /// Evaluation keys fetched from the key store and expanded (cache misses).
    pub key_fetches: Counter,
    /// Request body bytes received.
    pub bytes_in: Counter,
    /// Response body bytes sent.
    pub bytes_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fhe_ml");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let bootstraps = Counter::default();
        let keys_cached = Gauge::default();
        let key_fetches = Counter::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency in seconds, by route",
            latency.clone(),
        );
        registry.register(
            "bootstraps",
            "Programmable bootstraps run for inferences",
            bootstraps.clone(),
        );
        registry.register(
            "evaluation_keys_cached",
            "Expanded evaluation keys held",
            keys_cached.clone(),
        );
        registry.register(
            "evaluation_key_fetches",
            "Evaluation keys fetched from the key store and expanded (cache misses)",
            key_fetches.clone(),
        );
        registry.register(
            "request_bytes",
            "Request body bytes received",
            bytes_in.clone(),
        );
        registry.register(
            "response_bytes",
            "Response body bytes sent",
            bytes_out.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            bootstraps,
            keys_cached,
            key_fetches,
            bytes_in,
            bytes_out,
        }
    }
}

impl Metrics {
    /// Records one answered request: its route pattern, status, latency (s) and body sizes
    /// (bytes).
    pub fn record(&self, route: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
        let route = route.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
