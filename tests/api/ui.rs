//! The status page for people without Grafana: `/ui/`.

use serde_json::json;

use crate::helpers::{
    cron_at, expect, pipeline_at, spawn_app, spawn_app_with, token_file, TestApp,
};

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
    // It reloads itself every 30 s (a script file: no inline script, no meta refresh), says
    // so, and links to stopping it; the choice stays in the form and the links.
    assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("<script src=\"/ui/reload.js\" defer></script>"));
    assert!(html.contains("<body data-reload=\"30\">"), "{html}");
    assert!(
        html.contains("href=\"/ui/?refresh=0\">stop reloading"),
        "{html}"
    );
    let stopped = page(&app, "/ui/?status=failed&refresh=0").await;
    assert!(!stopped.contains("<script") && !stopped.contains("data-reload"));
    assert!(
        stopped.contains("name=\"refresh\" value=\"0\""),
        "the form keeps it"
    );
    assert!(
        stopped.contains("href=\"/ui/?status=failed\">Reload this view every 30 s"),
        "{stopped}"
    );
    assert!(
        stopped.contains("sort=host&#38;order=asc&#38;refresh=0"),
        "{stopped}"
    );
    assert!(page(&app, "/ui/?refresh=600")
        .await
        .contains("data-reload=\"600\""));
    assert_eq!(app.get("/ui/?refresh=1").await.status(), 422);
    let script = app.get("/ui/reload.js").await;
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
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

/// The classes of the timeline's ticks, oldest first.
fn ticks(html: &str) -> Vec<String> {
    html.split("<li class=\"tick b-")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(class, _)| class.to_owned()))
        .collect()
}

/// The rows of the table whose caption is `caption`.
fn table_rows(html: &str, caption: &str) -> usize {
    html.split_once(&format!("<caption>{caption}"))
        .and_then(|(_, rest)| rest.split_once("</table>"))
        .map(|(table, _)| table.matches("<tr>").count().saturating_sub(1))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_host_page_tells_its_story() {
    let app = spawn_app().await;
    let mut deploy = pipeline_at(
        "rsyslog-prod",
        "rsyslog-01",
        "synced",
        "2026-05-01T10:00:00Z",
    );
    deploy["commit_sha"] = json!("abc1234567890");
    deploy["validation_message"] = json!("<script>alert('x')</script> & more");
    expect(app.pipeline(deploy).await, 201).await;
    let drift = cron_at(
        "rsyslog-prod",
        "rsyslog-01",
        "out_of_sync",
        &["/etc/rsyslog.d/<b>50.conf</b>"],
        "2026-05-01T11:00:00Z",
    );
    expect(app.cron(drift).await, 200).await;
    let failed = pipeline_at(
        "rsyslog-prod",
        "rsyslog-01",
        "failed",
        "2026-05-01T11:30:00Z",
    );
    expect(app.pipeline(failed).await, 200).await;

    let html = page(&app, "/ui/hosts/rsyslog-prod/rsyslog-01").await;

    assert_eq!(ticks(&html), ["synced", "out_of_sync", "failed"]);
    assert!(html.contains("✗ failed"), "{html}");
    // Three transitions; the older two with how long their status lasted.
    assert_eq!(table_rows(&html, "Changes of status"), 3, "{html}");
    // Newest first: failed (so far), out of sync for 30 min, synced for an hour.
    let at = |text: &str| html.find(text).unwrap_or_else(|| panic!("{text}: {html}"));
    assert!(at(" so far</td>") < at("<td>30m 0s</td>"), "{html}");
    assert!(at("<td>30m 0s</td>") < at("<td>1h 0m</td>"), "{html}");
    assert!(
        html.contains("href=\"/ui/commits/abc1234567890\""),
        "{html}"
    );
    // The changed file, the validation message and the raw bodies are text, not markup.
    assert!(html.contains("&#60;b&#62;50.conf&#60;/b&#62;"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<b>50"),
        "{html}"
    );
    assert!(html.contains("&#60;script&#62;alert("), "{html}");
    assert_eq!(table_rows(&html, "Reports as received"), 3);
    assert_eq!(html.matches("<summary>raw body</summary>").count(), 3);
    assert!(
        html.contains("&#34;last_cron_check&#34;: &#34;2026-05-01T11:00:00Z&#34;"),
        "{html}"
    );
}

#[tokio::test]
async fn a_host_history_is_paged_and_unknown_hosts_are_404_pages() {
    let app = spawn_app().await;
    let created = pipeline_at("g", "h", "synced", "2026-05-01T09:00:00Z");
    expect(app.pipeline(created).await, 201).await;
    for minute in 0..29 {
        let time = format!("2026-05-01T10:{minute:02}:00Z");
        expect(app.cron(cron_at("g", "h", "synced", &[], &time)).await, 200).await;
    }
    let first = page(&app, "/ui/hosts/g/h").await;
    assert_eq!(table_rows(&first, "Reports as received"), 25);
    assert!(first.contains("Reports 1–25, newest first."), "{first}");
    assert!(first.contains("href=\"/ui/hosts/g/h?page=2#history\" rel=\"next\""));
    let second = page(&app, "/ui/hosts/g/h?page=2").await;
    assert_eq!(table_rows(&second, "Reports as received"), 5);
    assert!(second.contains("rel=\"prev\"") && !second.contains("rel=\"next\""));
    assert_eq!(ticks(&first).len(), 30);

    for unknown in ["/ui/hosts/g/nobody", "/ui/hosts/bad%20group/h"] {
        let response = app.get(unknown).await;
        assert_eq!(response.status(), 404, "{unknown}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert!(response.text().await.unwrap().contains("Unknown host"));
    }
    assert_eq!(app.get("/ui/hosts/g/h?page=0").await.status(), 422);
}

#[tokio::test]
async fn a_commit_page_shows_who_runs_it_and_who_does_not_yet() {
    let app = spawn_app().await;
    for (host, commit, answer) in [
        ("web-1", "aaa111", 201),
        ("web-2", "aaa111", 201),
        ("web-1", "bbb222", 200),
    ] {
        let mut body = pipeline_at("nginx-prod", host, "synced", "2026-05-01T10:00:00Z");
        body["commit_sha"] = json!(commit);
        expect(app.pipeline(body).await, answer).await;
    }

    let html = page(&app, "/ui/commits/bbb222").await;

    assert!(
        html.contains("<strong>1</strong> of <strong>2</strong> hosts"),
        "{html}"
    );
    assert_eq!(table_rows(&html, "Not yet on this commit"), 1, "{html}");
    assert_eq!(table_rows(&html, "Running it"), 1, "{html}");
    let waiting = html.split_once("Not yet on this commit").unwrap().1;
    assert!(
        waiting.contains(">web-2</a>") && waiting.contains(">aaa111<"),
        "{html}"
    );
    assert!(html.contains("data-reload=\"30\"") && !html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("href=\"/ui/commits/bbb222?refresh=0\">stop reloading"));
    let stopped = page(&app, "/ui/commits/bbb222?refresh=0").await;
    assert!(!stopped.contains("data-reload"));
    assert!(stopped.contains("href=\"/ui/commits/bbb222\">Reload this page every 30 s"));
    let everyone = page(&app, "/ui/commits/aaa111").await;
    assert!(
        everyone.contains("<strong>1</strong> of <strong>2</strong>"),
        "{everyone}"
    );
    for unknown in ["/ui/commits/ccc333", "/ui/commits/aaa*"] {
        assert_eq!(app.get(unknown).await.status(), 404, "{unknown}");
    }
}

#[tokio::test]
async fn with_read_requires_token_a_page_asks_for_a_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, tokens) = token_file(dir.path(), &[("reader", &["read"]), ("ci", &["write:g"])]);
    // A token of someone else's making, with characters a cookie cannot carry as they are.
    let odd = "odd%41;token,=x";
    let line = gitops_status::auth::file_line("odd", odd, &["read".to_owned()]).unwrap();
    let mut file = std::fs::read_to_string(&path).unwrap();
    file.push_str(&format!("{line}\n"));
    std::fs::write(&path, file).unwrap();
    let app = spawn_app_with(dir, |s| {
        s.tokens = Some(path);
        s.read_requires_token = true;
    })
    .await;
    let created = app
        .post_as(
            &tokens["ci"],
            "/status/pipeline",
            &pipeline_at("g", "h", "synced", "2026-05-01T10:00:00Z"),
        )
        .await;
    assert_eq!(created.status(), 201);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Without a token: the sign-in form, which comes back to the page asked for.
    let asked = client
        .get(app.url("/ui/hosts/g/h?page=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 401);
    assert!(asked.headers().contains_key("content-security-policy"));
    let form = asked.text().await.unwrap();
    assert!(form.contains("action=\"/ui/sign-in\""), "{form}");
    assert!(
        form.contains("name=\"next\" value=\"/ui/hosts/g/h?page=1\""),
        "{form}"
    );
    for open in ["/ui/style.css", "/ui/favicon.svg", "/ui/reload.js"] {
        let status = client.get(app.url(open)).send().await.unwrap().status();
        assert_eq!(status, 200, "{open} needs no token");
    }

    let sign_in = |token: &str, next: &str, https: bool| {
        let mut request = client
            .post(app.url("/ui/sign-in"))
            .form(&[("token", token), ("next", next)]);
        if https {
            request = request.header("x-forwarded-proto", "https");
        }
        request.send()
    };
    // Another site's page cannot sign a visitor in (or out).
    let forged = client
        .post(app.url("/ui/sign-in"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", tokens["reader"].as_str()), ("next", "/ui/")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(!forged.headers().contains_key("set-cookie"));
    let forged_out = client
        .post(app.url("/ui/sign-out"))
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_out.status(), 403);

    let odd_in = sign_in(odd, "/ui/", false).await.unwrap();
    assert_eq!(odd_in.status(), 303);
    let odd_pair = odd_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let odd_page = client
        .get(app.url("/ui/"))
        .header("cookie", &odd_pair)
        .send()
        .await
        .unwrap();
    assert_eq!(odd_page.status(), 200, "the odd token's cookie: {odd_pair}");

    let unknown = sign_in("not-a-token", "/ui/", false).await.unwrap();
    assert_eq!(unknown.status(), 401);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("That token is not known"));
    let writer = sign_in(&tokens["ci"], "/ui/", false).await.unwrap();
    assert_eq!(writer.status(), 403);
    assert!(writer
        .text()
        .await
        .unwrap()
        .contains("needs the read scope"));

    let signed = sign_in(&tokens["reader"], "/ui/hosts/g/h?page=1", false)
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/ui/hosts/g/h?page=1");
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/ui/",
        "Max-Age=2592000",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    for path in ["/ui/", "/ui/hosts/g/h", "/ui/commits/none"] {
        let status = client
            .get(app.url(path))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 404, "{path}: {status}");
    }
    let with_cookie = client
        .get(app.url("/ui/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert!(with_cookie
        .text()
        .await
        .unwrap()
        .contains("action=\"/ui/sign-out\""));
    // The cookie opens the pages only: the API still wants the bearer token.
    let api = client
        .get(app.url("/status"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // A bearer token works on pages as on the API.
    let bearer = client
        .get(app.url("/ui/"))
        .bearer_auth(&tokens["reader"])
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // Behind an HTTPS ingress the cookie is Secure; elsewhere is never a place to go back to.
    let secure = sign_in(&tokens["reader"], "//evil.example/", true)
        .await
        .unwrap();
    assert_eq!(secure.status(), 303);
    assert_eq!(secure.headers()["location"], "/ui/");
    assert!(secure.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));

    let out = client
        .post(app.url("/ui/sign-out"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}
