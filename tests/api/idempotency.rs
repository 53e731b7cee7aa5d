//! `Idempotency-Key`: a repeat of a report never writes a second row.

use gitops_status::domain::Period;
use reqwest::Response;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{expect, expect_error, seed_pipeline, spawn_app_with, TestApp};
use crate::staleness::fleet_app;

async fn post(app: &TestApp, path: &str, key: &str, body: &Value) -> Response {
    app.client
        .post(app.url(path))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn rows(app: &TestApp) -> i64 {
    app.db().scalar("SELECT count(*) FROM reports").await
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_and_writes_nothing() {
    let (app, _clock) = fleet_app("*=1h").await;
    let first = post(&app, "/status/pipeline", "deploy-42", &seed_pipeline()).await;
    assert!(!replayed(&first));
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.unwrap();
    for _ in 0..2 {
        let again = post(&app, "/status/pipeline", "deploy-42", &seed_pipeline()).await;
        assert_eq!(again.status(), 201, "the first answer's status");
        assert!(replayed(&again));
        assert_eq!(again.text().await.unwrap(), first_body);
    }
    assert_eq!(rows(&app).await, 1);

    // v1 and cron too; a key is per request, not per endpoint.
    let v1 = json!({"repo": "g", "server": "h", "sync_status": "SYNCED"});
    let a = expect(post(&app, "/api/status", "v1-1", &v1).await, 200).await;
    let b = post(&app, "/api/status", "v1-1", &v1).await;
    assert!(replayed(&b));
    assert_eq!(expect(b, 200).await, a);
    let drift = json!({"server_group": "g", "host": "h", "status": "out_of_sync"});
    let c = expect(post(&app, "/status/cron", "cron-1", &drift).await, 200).await;
    let d = expect(post(&app, "/status/cron", "cron-1", &drift).await, 200).await;
    assert_eq!(c, d);
    assert_eq!(rows(&app).await, 3);

    // A decommission repeated answers its first 200, not a 404.
    let gone = |app: &TestApp| {
        app.client
            .delete(app.url("/status/g/h"))
            .header("Idempotency-Key", "retire-h")
            .send()
    };
    let first = expect(gone(&app).await.unwrap(), 200).await;
    let again = gone(&app).await.unwrap();
    assert!(replayed(&again));
    assert_eq!(expect(again, 200).await, first);
    assert_eq!(rows(&app).await, 4);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422_and_stores_nothing() {
    let (app, _clock) = fleet_app("*=1h").await;
    expect(
        post(&app, "/status/pipeline", "k", &seed_pipeline()).await,
        201,
    )
    .await;
    let mut other = seed_pipeline();
    other["commit_sha"] = json!("fff");
    let details = expect_error(post(&app, "/status/pipeline", "k", &other).await, 422).await;
    assert_eq!(details[0].0, "Idempotency-Key");
    assert!(
        details[0].1.contains("different request"),
        "{}",
        details[0].1
    );
    // Another endpoint with the key is another request as well.
    let v1 = json!({"repo": "g", "server": "h", "sync_status": "SYNCED"});
    expect_error(post(&app, "/api/status", "k", &v1).await, 422).await;
    for bad in ["", "has space", &"x".repeat(256), "naïve"] {
        let response = app
            .client
            .post(app.url("/status/pipeline"))
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            )
            .json(&other)
            .send()
            .await
            .unwrap();
        let details = expect_error(response, 422).await;
        assert_eq!(details[0].0, "Idempotency-Key", "{bad:?}");
    }
    assert_eq!(rows(&app).await, 1);
}

#[tokio::test]
async fn requests_racing_with_one_key_write_one_row() {
    let (app, _clock) = fleet_app("*=1h").await;
    let mut posts = JoinSet::new();
    for _ in 0..24 {
        let request = app
            .client
            .post(app.url("/status/pipeline"))
            .header("Idempotency-Key", "race")
            .json(&seed_pipeline());
        posts.spawn(async move { request.send().await.unwrap() });
    }
    let mut fresh = 0;
    let mut ids = std::collections::BTreeSet::new();
    while let Some(answer) = posts.join_next().await {
        let answer = answer.unwrap();
        if !replayed(&answer) {
            fresh += 1;
        }
        let body = expect(answer, 201).await;
        ids.insert(body["report_id"].as_i64().unwrap());
    }
    assert_eq!(
        fresh, 1,
        "one request wrote; the others were answered from it"
    );
    assert_eq!(ids.len(), 1);
    assert_eq!(rows(&app).await, 1);
}

#[tokio::test]
async fn a_key_holds_across_a_restart_and_is_forgotten_after_the_window() {
    let (app, clock) = fleet_app("*=1h").await;
    let first = expect(
        post(&app, "/status/pipeline", "k", &seed_pipeline()).await,
        201,
    )
    .await;
    let dir = app.stop().await;
    let same_clock = clock.clone();
    let app = spawn_app_with(dir, move |s| s.clock = same_clock).await;
    let again = post(&app, "/status/pipeline", "k", &seed_pipeline()).await;
    assert!(replayed(&again));
    assert_eq!(expect(again, 201).await, first);
    assert_eq!(rows(&app).await, 1);
    drop(clock);

    // After the window (24h by default) the key is new again.
    let (app, clock) = fleet_app("*=1h").await;
    expect(
        post(&app, "/status/pipeline", "k", &seed_pipeline()).await,
        201,
    )
    .await;
    clock.advance(Period::from_secs(25 * 3600).unwrap());
    let later = post(&app, "/status/pipeline", "k", &seed_pipeline()).await;
    assert!(!replayed(&later));
    expect(later, 200).await;
    assert_eq!(rows(&app).await, 2);
}
