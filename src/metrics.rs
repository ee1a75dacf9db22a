//! Process-wide counters and latency histograms, served as Prometheus text by
//! `GET /metrics`. Any module can count without a handle:
//!
//! ```
//! use billable::metrics::{self, Counter};
//! metrics::global().inc(Counter::UpstreamCalls, "gmail");
//! metrics::global().inc(Counter::Retries, "openai");
//! metrics::global().inc(Counter::Upstream429, "openai");
//! ```
//!
//! Labels are short fixed names (a service, a cache, a route), never user data.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// A counter other modules increment, with one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Calls to an upstream service (label: `gmail`, `openai`, `supabase`).
    UpstreamCalls,
    /// Retries of an upstream call (label: the service).
    Retries,
    /// 429 answers from an upstream service (label: the service).
    Upstream429,
    /// Cache hits (label: the cache, e.g. `summary`).
    CacheHits,
    /// Cache misses (label: the cache).
    CacheMisses,
    /// Requests this server refused with 429 (label: the route).
    RateLimited,
    /// What the LLM analyzer did (label: `requests`, `prompt_tokens`,
    /// `completion_tokens`, `answered`, `fell_back`, `timed_out`, `cache_hits`).
    Llm,
}

impl Counter {
    const ALL: [Counter; 7] = [
        Counter::UpstreamCalls,
        Counter::Retries,
        Counter::Upstream429,
        Counter::CacheHits,
        Counter::CacheMisses,
        Counter::RateLimited,
        Counter::Llm,
    ];

    fn name(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Counter::UpstreamCalls => (
                "billable_upstream_calls_total",
                "service",
                "Calls to upstream services.",
            ),
            Counter::Retries => (
                "billable_upstream_retries_total",
                "service",
                "Retried upstream calls.",
            ),
            Counter::Upstream429 => (
                "billable_upstream_429_total",
                "service",
                "429 Too Many Requests answers from upstream services.",
            ),
            Counter::CacheHits => ("billable_cache_hits_total", "cache", "Cache hits."),
            Counter::CacheMisses => ("billable_cache_misses_total", "cache", "Cache misses."),
            Counter::RateLimited => (
                "billable_rate_limited_total",
                "route",
                "Requests refused by the per-user rate limit.",
            ),
            Counter::Llm => (
                "billable_llm_total",
                "what",
                "LLM analyzer requests, tokens and how its answers were used.",
            ),
        }
    }
}

/// Upper bounds in seconds of the latency buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Labels are `&'static str` (route patterns, methods, tool names, services, caches),
/// so counting allocates nothing and no label can carry user data.
#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    request_latency: BTreeMap<&'static str, Histogram>,
    tool_calls: BTreeMap<(&'static str, &'static str), u64>,
    tool_latency: BTreeMap<&'static str, Histogram>,
    counters: BTreeMap<Counter, BTreeMap<&'static str, u64>>,
}

/// The registry. One per process ([`global`]); tests may build their own.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one to `counter` for `label`.
    pub fn inc(&self, counter: Counter, label: &'static str) {
        self.add(counter, label, 1);
    }

    /// Adds `n` to `counter` for `label`.
    pub fn add(&self, counter: Counter, label: &'static str, n: u64) {
        let mut inner = self.lock();
        *inner
            .counters
            .entry(counter)
            .or_default()
            .entry(label)
            .or_default() += n;
    }

    /// The current value of `counter` for `label`.
    pub fn get(&self, counter: Counter, label: &str) -> u64 {
        self.lock()
            .counters
            .get(&counter)
            .and_then(|series| series.get(label))
            .copied()
            .unwrap_or(0)
    }

    /// One HTTP request answered: `route` is the matched route pattern, never the raw path.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let mut inner = self.lock();
        *inner.requests.entry((method, route, status)).or_default() += 1;
        inner
            .request_latency
            .entry(route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// One tool call finished, from any transport.
    pub fn observe_tool(&self, tool: &'static str, ok: bool, elapsed: Duration) {
        let mut inner = self.lock();
        let outcome = if ok { "ok" } else { "error" };
        *inner.tool_calls.entry((tool, outcome)).or_default() += 1;
        inner
            .tool_latency
            .entry(tool)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str("# HELP billable_http_requests_total HTTP requests by route and status.\n# TYPE billable_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "billable_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        histogram(
            &mut out,
            "billable_http_request_duration_seconds",
            "HTTP request latency by route.",
            "route",
            &inner.request_latency,
        );
        out.push_str("# HELP billable_tool_calls_total Tool calls by tool and outcome.\n# TYPE billable_tool_calls_total counter\n");
        for ((tool, outcome), n) in &inner.tool_calls {
            let _ = writeln!(
                out,
                "billable_tool_calls_total{{tool=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(tool)
            );
        }
        histogram(
            &mut out,
            "billable_tool_duration_seconds",
            "Tool call latency by tool.",
            "tool",
            &inner.tool_latency,
        );
        for counter in Counter::ALL {
            let (name, label, help) = counter.name();
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in inner.counters.get(&counter).into_iter().flatten() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(value));
            }
        }
        out
    }
}

/// Runs one tool call and records its latency and outcome. `tool` should be a known
/// tool name (callers pass `unknown` otherwise, so labels stay bounded).
pub async fn time_tool<T, E>(
    tool: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = std::time::Instant::now();
    let result = call.await;
    global().observe_tool(tool, result.is_ok(), start.elapsed());
    result
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: &BTreeMap<&'static str, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (key, h) in series {
        let key = escape(key);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{key}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{key}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{key}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{key}\"}} {}", h.count);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let m = Metrics::default();
        m.inc(Counter::CacheHits, "summary");
        m.inc(Counter::CacheHits, "summary");
        m.observe_request("GET", "/healthz", 200, Duration::from_micros(300));
        m.observe_request("GET", "/healthz", 200, Duration::from_millis(3));
        m.observe_tool("list_time_entries", false, Duration::from_millis(2));
        let text = m.render();
        assert_eq!(m.get(Counter::CacheHits, "summary"), 2);
        assert!(text.contains("billable_cache_hits_total{cache=\"summary\"} 2\n"));
        assert!(text.contains(
            "billable_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "billable_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "billable_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 2\n"
        ));
        assert!(
            text.contains("billable_http_request_duration_seconds_count{route=\"/healthz\"} 2\n")
        );
        assert!(text.contains(
            "billable_tool_calls_total{tool=\"list_time_entries\",outcome=\"error\"} 1\n"
        ));
        assert!(text.contains("# TYPE billable_upstream_429_total counter\n"));
    }
}
