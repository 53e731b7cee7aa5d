//! The status page for people without Grafana: `/ui/`.

use serde_json::json;

use crate::helpers::{expect, pipeline_at, spawn_app, TestApp};

async fn page(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    response.text().await.unwrap()
}

/// The hosts of the table, in the page's order.
fn hosts(html: &str) -> Vec<String> {
    html.split("<a href=\"/ui/hosts/")
        .skip(1)
        .filter_map(|rest| rest.split_once("\">").map(|(_, after)| after))
        .filter_map(|after| after.split_once("</a>").map(|(name, _)| name.to_owned()))
        .collect()
}

async fn seed(app: &TestApp) {
    for (group, host, status) in [
        ("nginx-prod", "web-1", "synced"),
        ("nginx-prod", "web-2", "failed"),
        ("rsyslog-prod", "rsyslog-01", "out_of_sync"),
    ] {
        expect(
            app.pipeline(pipeline_at(group, host, status, "2026-05-01T10:00:00Z"))
                .await,
            201,
        )
        .await;
    }
}

#[tokio::test]
async fn the_fleet_page_lists_every_host_with_counts_words_and_symbols() {
    let app = spawn_app().await;
    seed(&app).await;

    let html = page(&app, "/ui/").await;

    assert_eq!(hosts(&html), ["web-1", "web-2", "rsyslog-01"]);
    assert!(html.contains("<strong>3</strong> hosts"), "{html}");
    assert!(
        html.contains("✗ failed") && html.contains("⚠ out of sync") && html.contains("✓ synced")
    );
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    assert!(!html.contains("<script"), "no script at all");
    assert!(html.contains("Hosts 1–3 of 3."), "{html}");
}

#[tokio::test]
async fn filters_are_query_parameters_and_sorting_is_a_link() {
    let app = spawn_app().await;
    seed(&app).await;

    assert_eq!(hosts(&page(&app, "/ui/?status=failed").await), ["web-2"]);
    assert_eq!(
        hosts(&page(&app, "/ui/?server_group=rsyslog-*").await),
        ["rsyslog-01"]
    );
    assert_eq!(hosts(&page(&app, "/ui/?q=web-").await), ["web-1", "web-2"]);
    assert_eq!(
        hosts(&page(&app, "/ui/?stale=true").await),
        Vec::<String>::new()
    );
    // The filter stays in the form and in the sort links.
    let html = page(&app, "/ui/?q=web-").await;
    assert!(html.contains("name=\"q\" value=\"web-\""), "{html}");
    assert!(
        html.contains("href=\"/ui/?q=web-&#38;sort=host&#38;order=asc\""),
        "{html}"
    );
    // Worst status first, then by host name descending.
    assert_eq!(
        hosts(&page(&app, "/ui/?sort=status&order=desc").await),
        ["web-2", "rsyslog-01", "web-1"]
    );
    assert_eq!(
        hosts(&page(&app, "/ui/?sort=host&order=desc").await),
        ["web-2", "web-1", "rsyslog-01"]
    );
    let refused = app.get("/ui/?status=broken&sort=nope").await;
    assert_eq!(refused.status(), 422);
    assert_eq!(app.get("/ui/?colour=red").await.status(), 400);
}

#[tokio::test]
async fn what_a_report_sent_is_escaped() {
    let app = spawn_app().await;
    let mut body = pipeline_at("g", "h", "synced", "2026-05-01T10:00:00Z");
    body["branch"] = json!("<script>alert(1)</script>");
    expect(app.pipeline(body).await, 201).await;

    let html = page(&app, "/ui/").await;

    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;"),
        "{html}"
    );
    let html = page(&app, "/ui/?q=%3Cscript%3E").await;
    assert_eq!(hosts(&html), ["h"]);
    assert!(!html.contains("value=\"<script>"), "{html}");
}

#[tokio::test]
async fn many_hosts_are_paged() {
    let app = spawn_app().await;
    for n in 0..150 {
        expect(
            app.pipeline(pipeline_at(
                "g",
                &format!("h{n:03}"),
                "synced",
                "2026-05-01T10:00:00Z",
            ))
            .await,
            201,
        )
        .await;
    }
    let first = page(&app, "/ui/").await;
    assert_eq!(hosts(&first).len(), 100);
    assert!(first.contains("Hosts 1–100 of 150."), "{first}");
    assert!(
        first.contains("href=\"/ui/?page=2\" rel=\"next\""),
        "{first}"
    );
    let second = page(&app, "/ui/?page=2").await;
    assert_eq!(hosts(&second).len(), 50);
    assert_eq!(hosts(&second)[0], "h100");
    assert!(second.contains("rel=\"prev\"") && !second.contains("rel=\"next\""));
    let past = page(&app, "/ui/?page=9").await;
    assert!(past.contains("past the end: 150 hosts"), "{past}");
}

#[tokio::test]
async fn a_browser_asking_for_the_root_is_sent_to_the_page() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let browser = client
        .get(app.url("/"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 303);
    assert_eq!(browser.headers()["location"], "/ui/");
    for accept in ["application/json", "*/*", "application/json, text/html"] {
        let api = client
            .get(app.url("/"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200, "{accept}");
        let body: serde_json::Value = api.json().await.unwrap();
        assert_eq!(body["service"], "gitops-status");
    }
    let bare = client.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/ui/");
}
