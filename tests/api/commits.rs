//! `GET /commits` and `GET /commits/{commit_sha}`: rollouts and convergence.

use gitops_status::domain::Period;
use serde_json::{json, Value};

use crate::helpers::expect_error;
use crate::staleness::{deploy, fleet_app};

#[tokio::test]
async fn commits_show_how_far_each_rollout_has_converged() {
    let (app, clock) = fleet_app("*=1h").await;
    for host in ["h1", "h2", "h3"] {
        deploy(&app, "web", host, "c1", "synced").await;
    }
    deploy(&app, "db", "d1", "c1", "synced").await;
    clock.advance(Period::MINUTE);
    deploy(&app, "web", "h1", "c2", "synced").await;
    clock.advance(Period::MINUTE);
    deploy(&app, "web", "h2", "c2", "failed").await;

    let rows = app.get_json("/commits").await;
    let keys: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["server_group"].as_str().unwrap().into(),
                r["commit_sha"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("web".into(), "c2".into()),
            ("db".into(), "c1".into()),
            ("web".into(), "c1".into())
        ]
    );
    assert_eq!(
        rows[0],
        json!({"server_group": "web", "commit_sha": "c2", "branch": "main",
               "first_reported": "2026-09-01T00:01:00.000Z",
               "last_reported": "2026-09-01T00:02:00.000Z",
               "hosts_on_commit": 2, "hosts_in_group": 3, "converged": false, "hosts_failed": 1})
    );
    assert_eq!(rows[1]["converged"], json!(true));
    assert_eq!(rows[2]["hosts_on_commit"], json!(1));

    let web = app
        .get_json("/commits?server_group=web&commit_sha=c*&from=2026-09-01T00:01:00Z")
        .await;
    assert_eq!(web.as_array().unwrap().len(), 1);
    let limited = app.get_json("/commits?limit=1").await;
    assert_eq!(limited.as_array().unwrap().len(), 1);

    let hosts = app.get_json("/commits/c2").await;
    let on: Vec<(&str, bool)> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["on_commit"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(on, [("h1", true), ("h2", true), ("h3", false)]);
    assert_eq!(hosts[2]["current_commit_sha"], json!("c1"));
    assert_eq!(hosts[2]["since"], json!("2026-09-01T00:00:00.000Z"));
    assert_eq!(hosts[1]["status"], json!("failed"));
    assert_eq!(hosts[0]["since"], json!("2026-09-01T00:01:00.000Z"));
    // Both groups reported c1.
    assert_eq!(
        app.get_json("/commits/c1").await.as_array().unwrap().len(),
        4
    );
    assert_eq!(app.get_json("/commits/unknown").await, Value::Array(vec![]));
    let details = expect_error(app.get("/commits?limit=0").await, 422).await;
    assert_eq!(details[0].0, "limit");
}
