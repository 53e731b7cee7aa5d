//! `/ui/`: the fleet. Counts at the top (the same query as `/summary`), then a page of hosts
//! with filters that work without JavaScript (query parameters named as `/status` names
//! them, plus `q` for text), sortable columns, and a reload every 30 s that a link stops.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::api::auth::PAGE_COOKIE;
use crate::api::error::ApiError;
use crate::api::AppContext;
use crate::domain::{AnyOf, FleetFilter, FleetOrder, FleetRow, FleetSummary, SortKey, Status};

use super::{encode, status_look};

/// Hosts per page: at 10,000 hosts a page renders in a few milliseconds and stays readable.
const PAGE_SIZE: u64 = 100;
/// The longest text filter taken.
const MAX_TEXT: usize = 128;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    server_group: Option<String>,
    status: Option<String>,
    stale: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    page: Option<String>,
    refresh: Option<String>,
}

/// The form's values as they came (echoed into the form and every link).
#[derive(Clone, Debug, Default)]
struct Form {
    server_group: String,
    status: String,
    stale: String,
    q: String,
    sort: String,
    order: String,
    /// Seconds between reloads; empty: none.
    refresh: String,
}

struct Column {
    title: &'static str,
    link: String,
    /// `ascending`/`descending` on the sorted column, else empty.
    sorted: &'static str,
}

struct Row {
    server_group: String,
    host: String,
    host_link: String,
    commit_link: String,
    status_class: &'static str,
    status_symbol: &'static str,
    status_text: &'static str,
    stale: bool,
    status_since: String,
    commit: String,
    branch: String,
    last_report: String,
    changed_files: u64,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    title: &'static str,
    refresh_seconds: u32,
    summary: FleetSummary,
    form: Form,
    status_options: Vec<(&'static str, &'static str)>,
    stale_options: Vec<(&'static str, &'static str)>,
    columns: Vec<Column>,
    rows: Vec<Row>,
    page_info: String,
    previous_link: String,
    next_link: String,
    /// This view reloading itself every REFRESH_SECONDS, or not reloading.
    refresh_link: String,
    /// No filters, the reload kept.
    clear_link: String,
    /// The browser keeps a read token (it may sign out).
    signed_in: bool,
}

impl Form {
    /// `/ui/?…` with these values, `sort`/`order`/`page` replaced.
    fn link(&self, sort: &str, order: &str, page: u64) -> String {
        let mut pairs = Vec::new();
        for (name, value) in [
            ("server_group", self.server_group.as_str()),
            ("status", self.status.as_str()),
            ("stale", self.stale.as_str()),
            ("q", self.q.as_str()),
            ("sort", sort),
            ("order", order),
            ("refresh", self.refresh.as_str()),
        ] {
            if !value.is_empty() {
                pairs.push(format!("{name}={}", encode(value)));
            }
        }
        if page > 1 {
            pairs.push(format!("page={page}"));
        }
        if pairs.is_empty() {
            "/ui/".to_owned()
        } else {
            format!("/ui/?{}", pairs.join("&"))
        }
    }
}

fn parse(query: &PageQuery) -> Result<(FleetFilter, Option<String>, FleetOrder, u64), ApiError> {
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let mut problems = Vec::new();
    let mut filter = FleetFilter::default();
    let group = text(&query.server_group);
    if !group.is_empty() {
        match AnyOf::parse_csv(&group) {
            Ok(groups) => filter.server_group = groups,
            Err(p) => problems.push(crate::api::error::FieldProblem::new("server_group", p)),
        }
    }
    let status = text(&query.status);
    if !status.is_empty() {
        match Status::parse(&status) {
            Ok(s) => filter.status = AnyOf(vec![s]),
            Err(p) => problems.push(crate::api::error::FieldProblem::new("status", p)),
        }
    }
    match text(&query.stale).as_str() {
        "" => {}
        "true" => filter.stale = Some(true),
        "false" => filter.stale = Some(false),
        other => problems.push(crate::api::error::FieldProblem::new(
            "stale",
            format!("must be true or false; got {other:?}"),
        )),
    }
    let q = text(&query.q);
    if q.chars().count() > MAX_TEXT {
        problems.push(crate::api::error::FieldProblem::new(
            "q",
            format!("must be at most {MAX_TEXT} characters"),
        ));
    }
    let sort = text(&query.sort);
    let key = if sort.is_empty() {
        SortKey::default()
    } else {
        SortKey::parse(&sort).unwrap_or_else(|| {
            let names: Vec<&str> = SortKey::ALL.iter().map(|k| k.as_str()).collect();
            problems.push(crate::api::error::FieldProblem::new(
                "sort",
                format!("must be one of {}; got {sort:?}", names.join(", ")),
            ));
            SortKey::default()
        })
    };
    let descending = match text(&query.order).as_str() {
        "" | "asc" => false,
        "desc" => true,
        other => {
            problems.push(crate::api::error::FieldProblem::new(
                "order",
                format!("must be asc or desc; got {other:?}"),
            ));
            false
        }
    };
    let page = match text(&query.page).as_str() {
        "" => 1,
        other => match other.parse::<u64>() {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => {
                problems.push(crate::api::error::FieldProblem::new(
                    "page",
                    "must be a whole number from 1 to 1000000",
                ));
                1
            }
        },
    };
    if let Err(problem) = super::parse_refresh(query.refresh.as_deref()) {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(ApiError::Unprocessable(problems));
    }
    Ok((
        filter,
        (!q.is_empty()).then_some(q),
        FleetOrder { key, descending },
        page,
    ))
}

fn row(host: FleetRow) -> Row {
    let (symbol, word) = status_look(host.status);
    Row {
        host_link: super::host_link(&host.server_group, &host.host),
        commit_link: host
            .commit_sha
            .as_deref()
            .map(super::commit_link)
            .unwrap_or_default(),
        server_group: host.server_group.as_str().to_owned(),
        host: host.host.as_str().to_owned(),
        status_class: host.status.as_str(),
        status_symbol: symbol,
        status_text: word,
        stale: host.stale,
        status_since: host.status_since.map(|t| t.to_string()).unwrap_or_default(),
        commit: host
            .commit_sha
            .map(|c| c.chars().take(12).collect())
            .unwrap_or_default(),
        branch: host.branch.unwrap_or_default(),
        last_report: host.last_report_at.to_string(),
        changed_files: host.changed_files_count,
    }
}

pub async fn page(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, text, order, page) = parse(&query)?;
    let now = ctx.clock.now();
    let summary = ctx.store.summary(&FleetFilter::default(), now).await?;
    let offset = (page - 1) * PAGE_SIZE;
    let hosts = ctx
        .store
        .fleet_page(&filter, text.as_deref(), order, (offset, PAGE_SIZE), now)
        .await?;
    let value = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let form = Form {
        server_group: value(&query.server_group),
        status: value(&query.status),
        stale: value(&query.stale),
        q: value(&query.q),
        sort: value(&query.sort),
        order: value(&query.order),
        // As given (links keep it); empty for the default.
        refresh: value(&query.refresh),
    };
    let columns = [
        ("Group", Some(SortKey::Group)),
        ("Host", Some(SortKey::Host)),
        ("Status", Some(SortKey::Status)),
        ("Stale", None),
        ("Status since", Some(SortKey::Since)),
        ("Commit", Some(SortKey::Commit)),
        ("Branch", None),
        ("Last report", Some(SortKey::LastReport)),
        ("Changed files", Some(SortKey::Changed)),
    ]
    .into_iter()
    .map(|(title, key)| match key {
        Some(key) => {
            let current = key == order.key;
            // A click on the sorted column turns its order round.
            let next = if current && !order.descending {
                "desc"
            } else {
                "asc"
            };
            Column {
                title,
                link: form.link(key.as_str(), next, 1),
                sorted: match (current, order.descending) {
                    (false, _) => "",
                    (true, false) => "ascending",
                    (true, true) => "descending",
                },
            }
        }
        None => Column {
            title,
            link: String::new(),
            sorted: "",
        },
    })
    .collect();
    let shown = u64::try_from(hosts.hosts.len()).unwrap_or(0);
    let page_info = if hosts.total == 0 {
        "No hosts.".to_owned()
    } else if shown == 0 {
        format!("Page {page} is past the end: {} hosts in all.", hosts.total)
    } else {
        format!(
            "Hosts {}–{} of {}.",
            offset + 1,
            offset + shown,
            hosts.total
        )
    };
    let sort = form.sort.clone();
    let order_text = form.order.clone();
    let previous_link = if page > 1 {
        form.link(&sort, &order_text, page - 1)
    } else {
        String::new()
    };
    let next_link = if offset + shown < hosts.total {
        form.link(&sort, &order_text, page + 1)
    } else {
        String::new()
    };
    let refresh_seconds =
        super::parse_refresh(Some(&form.refresh)).unwrap_or(super::REFRESH_SECONDS);
    let refresh_link = Form {
        // Reloading: a link to stop; stopped: a link back to the default.
        refresh: if refresh_seconds > 0 {
            "0".to_owned()
        } else {
            String::new()
        },
        ..form.clone()
    }
    .link(&sort, &order_text, page);
    let clear_link = Form {
        refresh: form.refresh.clone(),
        ..Form::default()
    }
    .link("", "", 1);
    let template = FleetPage {
        title: "Fleet",
        refresh_seconds,
        refresh_link,
        clear_link,
        summary,
        status_options: vec![
            ("", "any"),
            ("synced", "✓ synced"),
            ("out_of_sync", "⚠ out of sync"),
            ("failed", "✗ failed"),
            ("unknown", "? unknown"),
        ],
        stale_options: vec![("", "any"), ("true", "stale"), ("false", "not stale")],
        form,
        columns,
        rows: hosts.hosts.into_iter().map(row).collect(),
        page_info,
        previous_link,
        next_link,
        signed_in: req
            .cookie(PAGE_COOKIE)
            .is_some_and(|c| !c.value().is_empty()),
    };
    super::html(template.render())
}
