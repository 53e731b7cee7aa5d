//! The tamper-evident history: every report row chained to the one before it.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::helpers::{
    binary, cron_at, expect, on_postgres, pipeline_at, spawn_app, sqlite_only, TestApp,
};

const GENESIS: &str = gitops_status::domain::chain::GENESIS;

/// `gitops-status verify --db PATH`: exit code and stdout.
fn verify(db: &Path) -> (i32, String) {
    let output = Command::new(binary())
        .arg("verify")
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Ten reports for two hosts.
async fn ten_reports(app: &TestApp) {
    for host in ["a", "b"] {
        expect(
            app.pipeline(pipeline_at("g", host, "synced", "2026-04-26T10:00:00Z"))
                .await,
            201,
        )
        .await;
        for minute in 1..5 {
            let time = format!("2026-04-26T10:0{minute}:00Z");
            expect(
                app.cron(cron_at("g", host, "synced", &[], &time)).await,
                200,
            )
            .await;
        }
    }
}

/// Lets the test edit rows as an attacker with the file would: without the triggers.
async fn drop_triggers(app: &TestApp) {
    let sql = if on_postgres() {
        "DROP TRIGGER reports_are_append_only_update ON reports; \
         DROP TRIGGER reports_are_append_only_delete ON reports;"
    } else {
        "DROP TRIGGER reports_are_append_only_update; \
         DROP TRIGGER reports_are_append_only_delete;"
    };
    app.db().execute(sql).await.unwrap();
}

#[tokio::test]
async fn history_rows_link_to_the_row_before_them() {
    let app = spawn_app().await;
    ten_reports(&app).await;

    let mut rows = app.history("").await;
    rows.reverse();

    assert_eq!(rows[0]["prev_hash"], GENESIS);
    for pair in rows.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let hashes: std::collections::HashSet<_> = rows.iter().map(|r| r["hash"].clone()).collect();
    assert_eq!(hashes.len(), rows.len());
}

#[tokio::test]
async fn verify_counts_an_intact_chain_while_the_server_runs() {
    let app = spawn_app().await;
    ten_reports(&app).await;

    let (code, out) = verify(&app.db_path);

    assert_eq!(code, 0, "{out}");
    let head = app.history("?limit=1").await[0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        out.trim(),
        format!(
            "verified 10 rows (ids 1..10), 0 rows removed by retention; chain head {head}; \
             2 host rows match their reports; 2 transitions match their reports"
        )
    );
    // The server keeps writing after a verify.
    expect(
        app.cron(cron_at("g", "a", "synced", &[], "2026-04-26T11:00:00Z"))
            .await,
        200,
    )
    .await;
    assert_eq!(verify(&app.db_path).0, 0);
}

#[tokio::test]
async fn verify_of_an_empty_history() {
    let app = spawn_app().await;

    let (code, out) = verify(&app.db_path);

    assert_eq!(code, 0);
    assert!(out.contains("verified 0 rows"), "{out}");
}

#[tokio::test]
async fn verify_names_a_changed_row() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    drop_triggers(&app).await;

    app.db()
        .execute("UPDATE reports SET status = 'out_of_sync' WHERE id = 7")
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        "row 7: its content does not match its hash: the row was changed"
    );
}

#[tokio::test]
async fn rows_record_their_chain_format_and_verify_names_one_it_does_not_know() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    assert!(app
        .history("")
        .await
        .iter()
        .all(|row| row["chain_format"] == 1));
    drop_triggers(&app).await;

    app.db()
        .execute("UPDATE reports SET chain_format = 2 WHERE id = 4")
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        "row 4: it records chain format 2, which this gitops-status does not know (it knows \
         format 1); verify it with a newer release"
    );
}

#[tokio::test]
async fn verify_refuses_a_database_of_another_schema_version_naming_both() {
    if sqlite_only("PostgreSQL's schema has one migration so far: there is no older version to be")
    {
        return;
    }
    let app = spawn_app().await;
    ten_reports(&app).await;
    let latest = app
        .db()
        .scalar("SELECT max(version) FROM _sqlx_migrations")
        .await;
    // As a database the previous release wrote looks until the server migrates it.
    app.db()
        .execute(&format!(
            "DELETE FROM _sqlx_migrations WHERE version = {latest}"
        ))
        .await
        .unwrap();

    let output = Command::new(binary())
        .arg("verify")
        .arg("--db")
        .arg(&app.db_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "has schema version {} and this gitops-status reads version {latest}: start the \
             server on it once",
            latest - 1
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn verify_names_a_removed_row() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    drop_triggers(&app).await;

    app.db()
        .execute("DELETE FROM reports WHERE id = 4")
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        "row 4: deleted outside retention: no retention record covers it"
    );
}

#[tokio::test]
async fn verify_names_reordered_rows() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    drop_triggers(&app).await;

    // Swap rows 3 and 4 (their ids, so their order in the chain).
    app.db()
        .execute(
            "UPDATE reports SET id = 1000 WHERE id = 3; \
             UPDATE reports SET id = 3 WHERE id = 4; \
             UPDATE reports SET id = 4 WHERE id = 1000;",
        )
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert!(out.starts_with("row 3: "), "{out}");
}

#[tokio::test]
async fn verify_names_a_rewritten_link() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    drop_triggers(&app).await;

    // A forged row 6 with a self-consistent hash, but not linked to row 5.
    let forged = gitops_status::domain::chain::link(GENESIS, "forged");
    app.db()
        .execute(&format!(
            "UPDATE reports SET prev_hash = '{GENESIS}', hash = '{forged}' WHERE id = 6"
        ))
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("row 6: its prev_hash is not the hash of row 5"),
        "{out}"
    );
}

#[tokio::test]
async fn rows_deleted_from_the_start_by_hand_are_named() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    // A newer deployment of host a: no host points at rows 1..3 any more.
    expect(
        app.pipeline(pipeline_at("g", "a", "synced", "2026-04-26T12:00:00Z"))
            .await,
        200,
    )
    .await;
    assert_eq!(
        app.db()
            .scalar(&format!(
                "SELECT count(*) FROM hosts WHERE 3 >= {}(last_report_id, status_report_id, \
                 files_report_id, coalesce(pipeline_report_id, 99), coalesce(cron_report_id, 99))",
                // The smallest of several values: SQLite's min, PostgreSQL's least.
                if on_postgres() { "least" } else { "min" }
            ))
            .await,
        0
    );
    drop_triggers(&app).await;

    // What retention does, but without its record in the chain.
    app.db()
        .execute("DELETE FROM reports WHERE id <= 3")
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        "row 1: deleted outside retention: no retention record covers it \
         (rows 1..3 are missing)"
    );
}

#[tokio::test]
async fn verify_reports_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x42; 8192]).unwrap();

    let output = Command::new(binary())
        .args(["verify", "--db"])
        .arg(&path)
        .output()
        .unwrap();

    assert_ne!(output.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("not a database"), "{all}");
}

/// The README's recipe for checking one row by hand gives the row's stored hash.
#[tokio::test]
async fn an_auditor_checks_a_row_by_hand_with_sqlite3_and_sha256sum() {
    if sqlite_only(
        "runs sqlite3 on the file; tests/postgres/recipe.sh runs the README's psql recipe",
    ) {
        return;
    }
    let app = spawn_app().await;
    ten_reports(&app).await;
    // A row with awkward content: quotes, a newline, unicode and unknown members.
    let body = json!({"server_group": "g", "host": "a", "status": "failed",
                      "validation_message": "line 1\nline \"2\" — ok", "extra": {"n": [1, 2.5]}});
    expect(app.pipeline(body).await, 200).await;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let recipe = readme
        .split("<!-- auditor-recipe:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- auditor-recipe:end -->").next())
        .expect("the README has the auditor's recipe");
    let script = recipe
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("id=42", "id=11")
        .replace(
            "db=data/gitops-status.db",
            &format!("db='{}'", app.db_path.display()),
        );

    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], lines[1], "stored hash vs recomputed");
    assert_eq!(lines[0], app.history("?limit=1").await[0]["hash"]);
}

#[tokio::test]
async fn verify_names_a_host_whose_status_row_was_edited() {
    let app = spawn_app().await;
    ten_reports(&app).await;
    assert_eq!(verify(&app.db_path).0, 0);

    // GET /status serves hosts.status_row: an edit there would show a state no report made.
    app.db()
        .execute(if on_postgres() {
            "UPDATE hosts SET status_row = \
                 jsonb_set(status_row::jsonb, '{commit_sha}', '\"forged\"')::text \
                 WHERE host = 'b'"
        } else {
            "UPDATE hosts SET status_row = json_set(status_row, '$.commit_sha', 'forged') \
                 WHERE host = 'b'"
        })
        .await
        .unwrap();

    let (code, out) = verify(&app.db_path);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim(),
        "host g/b: its status_row differs from what its reports make of it"
    );
    assert_eq!(app.host("g", "b").await["commit_sha"], "forged");
}
