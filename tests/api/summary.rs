//! `GET /summary` and `GET /groups`: counts for stat panels.

use gitops_status::domain::Period;
use serde_json::json;

use crate::helpers::expect;
use crate::staleness::{cron, deploy, fleet_app};

#[tokio::test]
async fn summary_counts_hosts_by_status_staleness_and_drift() {
    let (app, clock) = fleet_app("*=1h").await;
    assert_eq!(
        app.get_json("/summary").await,
        json!({"hosts": 0, "synced": 0, "out_of_sync": 0, "failed": 0, "unknown": 0,
               "stale": 0, "drifted_files": 0, "oldest_drift_since": null})
    );
    deploy(&app, "a", "h1", "c1", "synced").await;
    deploy(&app, "a", "h2", "c1", "failed").await;
    cron(&app, "b", "h3", "unknown", "2026-08-31T20:00:00Z").await;
    cron(&app, "b", "h4", "synced", "2026-08-31T21:00:00Z").await;
    let drift = json!({"server_group": "b", "host": "h4", "status": "out_of_sync",
                       "changed_files": ["/etc/x", "/etc/y"], "last_cron_check": "2026-08-31T22:00:00Z"});
    expect(app.cron(drift).await, 200).await;
    clock.advance(Period::from_secs(2 * 3600).unwrap());

    assert_eq!(
        app.get_json("/summary").await,
        json!({"hosts": 4, "synced": 1, "out_of_sync": 1, "failed": 1, "unknown": 1,
               "stale": 2, "drifted_files": 2, "oldest_drift_since": "2026-08-31T20:00:00.000Z"})
    );
    assert_eq!(
        app.get_json("/summary?server_group=a&status=synced").await,
        json!({"hosts": 1, "synced": 1, "out_of_sync": 0, "failed": 0, "unknown": 0,
               "stale": 0, "drifted_files": 0, "oldest_drift_since": null})
    );
    let groups = app.get_json("/groups").await;
    assert_eq!(
        groups,
        json!([
            {"server_group": "a", "hosts": 2, "synced": 1, "out_of_sync": 0, "failed": 1,
             "unknown": 0, "stale": 0, "drifted_files": 0,
             "oldest_drift_since": "2026-09-01T00:00:00.000Z"},
            {"server_group": "b", "hosts": 2, "synced": 0, "out_of_sync": 1, "failed": 0,
             "unknown": 1, "stale": 2, "drifted_files": 2,
             "oldest_drift_since": "2026-08-31T20:00:00.000Z"},
        ])
    );
    assert_eq!(
        app.get_json("/groups?stale=true")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
