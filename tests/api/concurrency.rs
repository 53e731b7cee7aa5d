use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

#[tokio::test]
async fn hundreds_of_concurrent_posts_are_all_accepted_and_all_in_history() {
    let app = spawn_app().await;
    const HOSTS: usize = 30;
    const REPORTS: usize = 400;
    // Create the hosts first so cron reports have a target.
    for h in 0..HOSTS {
        let body = json!({"server_group": "load", "host": format!("h{h}"), "status": "synced"});
        assert_eq!(app.pipeline(body).await.status(), 201);
    }

    let mut tasks = Vec::new();
    for i in 0..REPORTS {
        let client = app.client.clone();
        let base = app.url("");
        tasks.push(tokio::spawn(async move {
            let host = format!("h{}", i % HOSTS);
            let (path, body) = match i % 3 {
                0 => ("/status/pipeline", json!({"server_group": "load", "host": host, "status": "synced", "commit_sha": format!("c{i}")})),
                1 => ("/status/cron", json!({"server_group": "load", "host": host, "status": "out_of_sync", "changed_files": [format!("/f{i}")]})),
                _ => ("/api/status", json!({"repo": "load", "server": host, "sync_status": "SYNCED"})),
            };
            let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body["report_id"].as_i64())
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        let (status, id) = task.await.unwrap();
        assert!(status == 200, "every report accepted, got {status}");
        assert!(ids.insert(id.expect("report id")), "ids are unique");
    }

    assert_eq!(ids.len(), REPORTS);
    let total = HOSTS + REPORTS;
    assert_eq!(
        app.db().scalar("SELECT count(*) FROM reports").await as usize,
        total
    );
    let history = history_ids(&app).await;
    assert_eq!(history.len(), total);
    assert!(ids.iter().all(|id| history.contains(id)));
}

async fn history_ids(app: &TestApp) -> BTreeSet<i64> {
    app.history("?limit=1000")
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}
