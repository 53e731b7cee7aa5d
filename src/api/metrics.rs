//! `GET /metrics`: the service and the fleet in the Prometheus text format. Counters and
//! histograms come from `crate::metrics` (updated as things happen); gauges describing a
//! state are read now: the write queue, the tasks, the database files, the history, the token
//! file, and the fleet (totals by status and, with `--metrics-per-host`, one series per host,
//! as Healthchecks exports its checks). Cardinality is bounded by the number of hosts: labels
//! carry group and host names, statuses, task names; never commits, paths or free text.

use actix_web::{get, web, HttpResponse};
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};

use crate::domain::{FleetFilter, Status, Timestamp};

use super::auth::Reader;
use super::error::{ApiError, ErrorBody, ReadAuthErrors};
use super::AppContext;

/// The classic Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics in the text exposition format (0.0.4).
///
/// Service metrics (`gitops_status_*`: reports accepted and refused, HTTP requests by route
/// template, the write queue, group commits, the database, retention, tokens, background
/// tasks, build info), the standard `process_*` metrics, and the fleet: hosts by status and
/// stale, and, unless the server runs with `--metrics-per-host=false`, one series per host
/// (`gitops_status_host_in_sync`, `_stale`, `_last_report_timestamp_seconds`, `_status`).
/// Open unless `--read-requires-token`; then it needs the `read` scope.
#[utoipa::path(
    security((), ("bearer" = ["read"])),
    tag = "probes",
    responses(
        ReadAuthErrors,
        (status = 200, description = "The metrics, in the Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 400, description = "A query parameter this endpoint does not take", body = ErrorBody, example = super::error::examples::unknown_parameter),
        (status = 500, description = "Database failure", body = ErrorBody, example = super::error::examples::internal),
    )
)]
#[get("/metrics")]
pub async fn metrics(
    ctx: web::Data<AppContext>,
    _reader: Reader,
) -> Result<HttpResponse, ApiError> {
    let now = ctx.clock.now();
    let mut out = String::with_capacity(64 * 1024);
    ctx.metrics.encode(&mut out).map_err(ApiError::internal)?;
    let state = Registry::new();
    service_state(&ctx, &state).await?;
    fleet(&ctx, &state, now).await?;
    crate::metrics::encode(&state, &mut out).map_err(ApiError::internal)?;
    if ctx.metrics_per_host {
        let hosts = ctx.store.host_gauges(now).await?;
        // Formatting 70,000 lines at 10,000 hosts takes a few milliseconds: off the worker
        // all the same, so that no request waits behind a scrape.
        out = web::block(move || {
            per_host(&mut out, &hosts);
            out
        })
        .await
        .map_err(ApiError::internal)?;
    }
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(out))
}

fn seconds(t: Timestamp) -> f64 {
    // Milliseconds since 1970 fit f64 exactly for the next 280,000 years.
    t.epoch_millis() as f64 / 1000.0
}

fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, ApiError> {
    registry
        .register(Box::new(metric.clone()))
        .map_err(ApiError::internal)?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str, value: i64) -> Result<(), ApiError> {
    let metric = register(
        registry,
        IntGauge::new(name, help).map_err(ApiError::internal)?,
    )?;
    metric.set(value);
    Ok(())
}

fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

async fn service_state(ctx: &AppContext, registry: &Registry) -> Result<(), ApiError> {
    let build = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "gitops_status_build_info",
                "Always 1; the labels say which build runs.",
            ),
            &["version"],
        )
        .map_err(ApiError::internal)?,
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

    let store = &ctx.store;
    gauge(
        registry,
        "gitops_status_write_queue_depth",
        "Reports waiting for the writer.",
        int(store.queued()),
    )?;
    gauge(
        registry,
        "gitops_status_write_queue_capacity",
        "Reports that may wait for the writer before more are refused (--write-queue).",
        int(store.queue_capacity()),
    )?;
    gauge(
        registry,
        "gitops_status_writer_up",
        "1 while the writer task runs.",
        i64::from(store.writer_up()),
    )?;
    gauge(
        registry,
        "gitops_status_database_writable",
        "0 after a write failed (disk full, read-only) until a write succeeds again.",
        i64::from(store.write_fault().is_none()),
    )?;
    let token_failure = ctx.auth.as_ref().and_then(|auth| auth.failure());
    let ready = ctx.supervisor.failure().is_none() && store.write_fault().is_none();
    gauge(
        registry,
        "gitops_status_ready",
        "1 when /ready would answer 200 (without its probes of the database).",
        i64::from(ready),
    )?;
    if let Some(auth) = &ctx.auth {
        gauge(
            registry,
            "gitops_status_token_file_loaded",
            "0 while the token file cannot be reloaded: then no token is accepted.",
            i64::from(token_failure.is_none()),
        )?;
        gauge(
            registry,
            "gitops_status_tokens",
            "Tokens in the token file last loaded.",
            int(auth.tokens().len()),
        )?;
    }

    let tasks = ctx.supervisor.states();
    let up = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "gitops_status_task_up",
                "1 while a background task runs, by task.",
            ),
            &["task"],
        )
        .map_err(ApiError::internal)?,
    )?;
    let restarts = register(
        registry,
        prometheus::IntCounterVec::new(
            Opts::new(
                "gitops_status_task_restarts_total",
                "Restarts of background tasks that ended before shutdown, by task.",
            ),
            &["task"],
        )
        .map_err(ApiError::internal)?,
    )?;
    for task in &tasks {
        up.with_label_values(&[task.name])
            .set(i64::from(task.running));
        restarts
            .with_label_values(&[task.name])
            .inc_by(task.restarts);
    }

    let files = store.file_sizes().await;
    gauge(
        registry,
        "gitops_status_database_size_bytes",
        "Size of the database: the SQLite file, or PostgreSQL's pg_database_size.",
        int(files.database),
    )?;
    gauge(
        registry,
        "gitops_status_wal_size_bytes",
        "Size of the SQLite write-ahead log (0 on PostgreSQL, whose WAL is the server's).",
        int(files.wal),
    )?;
    let history = store.history_stats().await?;
    gauge(
        registry,
        "gitops_status_history_rows",
        "Rows in the history (reports and retention records).",
        int(history.rows),
    )?;
    if let Some(oldest) = history.oldest_report_at {
        let metric = register(
            registry,
            Gauge::new(
                "gitops_status_oldest_report_timestamp_seconds",
                "When the oldest report still kept arrived (Unix time).",
            )
            .map_err(ApiError::internal)?,
        )?;
        metric.set(seconds(oldest));
    }
    Ok(())
}

async fn fleet(ctx: &AppContext, registry: &Registry, now: Timestamp) -> Result<(), ApiError> {
    let summary = ctx.store.summary(&FleetFilter::default(), now).await?;
    let hosts = register(
        registry,
        IntGaugeVec::new(
            Opts::new("gitops_status_hosts", "Hosts by current status."),
            &["status"],
        )
        .map_err(ApiError::internal)?,
    )?;
    for (status, count) in [
        (Status::Synced, summary.synced),
        (Status::OutOfSync, summary.out_of_sync),
        (Status::Failed, summary.failed),
        (Status::Unknown, summary.unknown),
    ] {
        hosts.with_label_values(&[status.as_str()]).set(int(count));
    }
    gauge(
        registry,
        "gitops_status_hosts_stale",
        "Hosts whose drift checks stopped arriving (--stale-after).",
        int(summary.stale),
    )?;
    Ok(())
}

/// One series per host, as Healthchecks exports its checks, written straight in the text
/// format (see `crate::metrics::Family`).
fn per_host(out: &mut String, hosts: &[crate::domain::HostGauge]) {
    use crate::metrics::Family;
    fn names(h: &crate::domain::HostGauge) -> [(&'static str, &str); 2] {
        [
            ("host", h.host.as_str()),
            ("server_group", h.server_group.as_str()),
        ]
    }
    let mut family = Family::gauge(
        out,
        "gitops_status_host_in_sync",
        "1 when the host's status is synced, else 0.",
    );
    for h in hosts {
        family.sample(&names(h), u8::from(h.status == Status::Synced));
    }
    let mut family = Family::gauge(
        out,
        "gitops_status_host_stale",
        "1 when the host's drift checks stopped arriving, else 0.",
    );
    for h in hosts {
        family.sample(&names(h), u8::from(h.stale));
    }
    let mut family = Family::gauge(
        out,
        "gitops_status_host_last_report_timestamp_seconds",
        "When the host's newest report arrived (Unix time).",
    );
    for h in hosts {
        family.sample(&names(h), seconds(h.last_report_at));
    }
    let mut family = Family::gauge(
        out,
        "gitops_status_host_status",
        "1 for the host's current status, 0 for the others (one series per status).",
    );
    for h in hosts {
        let [host, group] = names(h);
        for each in Status::ALL {
            family.sample(
                &[host, group, ("status", each.as_str())],
                u8::from(h.status == each),
            );
        }
    }
}
