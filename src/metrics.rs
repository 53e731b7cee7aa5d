//! The service's Prometheus metrics: counters and histograms the request path, the writer,
//! the pruner and the token watcher update as things happen. Gauges that describe a state
//! (queue depth, database size, the fleet) are read when `/metrics` is scraped (see
//! `api::metrics`). One `Metrics` per application, so tests that run several servers in one
//! process count apart.
//!
//! Written in the classic Prometheus text format (the `prometheus` crate): the format
//! Debian's promtool 2.42 checks. Labels hold only bounded values: route templates, methods,
//! status codes, report kinds, refusal reasons.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Seconds: from 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Reports per group commit: powers of two up to the writer's largest group.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Why a report was refused: the `reason` label of `gitops_status_reports_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or invalid (400, 408, 409, 413, 415, 422).
    Validation,
    /// No token, an unknown one, or one without the scope (401, 403).
    Auth,
    /// A drift check for a host the service does not know (404).
    NotFound,
    /// The write queue is full (503 with Retry-After).
    QueueFull,
    /// The database did not take it (503, 500).
    Storage,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::Validation,
        Refusal::Auth,
        Refusal::NotFound,
        Refusal::QueueFull,
        Refusal::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Validation => "validation",
            Refusal::Auth => "auth",
            Refusal::NotFound => "not_found",
            Refusal::QueueFull => "queue_full",
            Refusal::Storage => "storage",
        }
    }
}

/// Why a request failed authentication: the `reason` label of
/// `gitops_status_auth_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token (401).
    Missing,
    /// A token the token file does not hold (401).
    Invalid,
    /// A known token without the scope the request needs (403).
    Scope,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 3] = [
        AuthFailure::Missing,
        AuthFailure::Invalid,
        AuthFailure::Scope,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_token",
            AuthFailure::Invalid => "invalid_token",
            AuthFailure::Scope => "insufficient_scope",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reports_accepted: IntCounterVec,
    reports_refused: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    commit_group_size: Histogram,
    commit_duration: Histogram,
    chain_lock_wait: Histogram,
    retention_deleted: IntCounter,
    auth_failures: IntCounterVec,
    token_reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let metric =
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let reports_accepted = counter(
            "gitops_status_reports_accepted_total",
            "Reports committed to the history, by kind (pipeline, cron, legacy, decommission, import).",
            &["kind"],
        )?;
        let reports_refused = counter(
            "gitops_status_reports_refused_total",
            "Reports answered with an error, by reason (validation, auth, not_found, queue_full, storage).",
            &["reason"],
        )?;
        for reason in Refusal::ALL {
            reports_refused.with_label_values(&[reason.as_str()]);
        }
        let http_requests = counter(
            "gitops_status_http_requests_total",
            "HTTP requests answered, by matched route template, method and status code.",
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "gitops_status_http_request_duration_seconds",
                "Time from a request's arrival to its response, by matched route template and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        registry.register(Box::new(http_duration.clone()))?;
        let commit_group_size = histogram(
            "gitops_status_commit_group_size",
            "Reports written by one group commit.",
            GROUP_BUCKETS,
        )?;
        let commit_duration = histogram(
            "gitops_status_commit_duration_seconds",
            "Time one group commit took, from BEGIN to a durable COMMIT.",
            LATENCY_BUCKETS,
        )?;
        let chain_lock_wait = histogram(
            "gitops_status_chain_lock_wait_seconds",
            "PostgreSQL: time a transaction waited for the chain's tip, which every replica's writes take in turn (not observed on SQLite).",
            LATENCY_BUCKETS,
        )?;
        let retention_deleted = IntCounter::new(
            "gitops_status_retention_deleted_reports_total",
            "History rows removed by retention passes.",
        )?;
        registry.register(Box::new(retention_deleted.clone()))?;
        let auth_failures = counter(
            "gitops_status_auth_failures_total",
            "Requests refused for their token, by reason (missing_token, invalid_token, insufficient_scope).",
            &["reason"],
        )?;
        for reason in AuthFailure::ALL {
            auth_failures.with_label_values(&[reason.as_str()]);
        }
        let token_reloads = counter(
            "gitops_status_token_reloads_total",
            "Reloads of the token file, by result (ok, failed).",
            &["result"],
        )?;
        for result in ["ok", "failed"] {
            token_reloads.with_label_values(&[result]);
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            reports_accepted,
            reports_refused,
            http_requests,
            http_duration,
            commit_group_size,
            commit_duration,
            chain_lock_wait,
            retention_deleted,
            auth_failures,
            token_reloads,
        })
    }

    pub fn accepted(&self, kind: &str) {
        self.reports_accepted.with_label_values(&[kind]).inc();
    }

    pub fn refused(&self, reason: Refusal) {
        self.reports_refused
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, method, status])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    pub fn group_committed(&self, reports: usize, seconds: f64) {
        // A group holds at most a few hundred reports: exact as f64.
        self.commit_group_size.observe(reports as f64);
        self.commit_duration.observe(seconds);
    }

    /// How long a PostgreSQL transaction waited for the chain's tip lock.
    pub fn chain_lock_waited(&self, seconds: f64) {
        self.chain_lock_wait.observe(seconds);
    }

    pub fn retention_deleted(&self, rows: u64) {
        self.retention_deleted.inc_by(rows);
    }

    pub fn auth_failed(&self, reason: AuthFailure) {
        self.auth_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn token_reload(&self, ok: bool) {
        self.token_reloads
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Everything registered, in the text format, appended to `out`.
    pub fn encode(&self, out: &mut String) -> Result<(), prometheus::Error> {
        encode(&self.registry, out)
    }
}

/// One metric family written straight in the text format, for the per-host families: the
/// crate builds a structure per series and sorts them (about 300 ms for 70,000 series at
/// 10,000 hosts, measured); writing the lines directly takes a few milliseconds.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    /// Starts a gauge family: its HELP and TYPE lines.
    pub fn gauge(out: &'a mut String, name: &'static str, help: &str) -> Self {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        Family { out, name }
    }

    /// One sample; label values are escaped as the format wants.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A registry's metrics in the classic text format, appended to `out`.
pub fn encode(registry: &Registry, out: &mut String) -> Result<(), prometheus::Error> {
    use prometheus::Encoder as _;
    let mut bytes = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut bytes)?;
    out.push_str(&String::from_utf8_lossy(&bytes));
    Ok(())
}
