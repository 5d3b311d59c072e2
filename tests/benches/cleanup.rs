//! Benchmark: notification-cleanup against one plain `DELETE … WHERE created_at < …`, on
//! 3M rows with 1M to delete, each while another session inserts into the same table.
//! Prints a Markdown table: total time, longest batch (the longest lock hold), and the p99
//! latency of the concurrent inserts beside its idle value.
//!
//!   cargo bench -p backstop-tests --bench cleanup   # BENCH_CLEANUP_ROWS=3000000, BENCH_CLEANUP_BATCHES=5000,1000

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backstop_core::App;
use backstop_core::cleanup::NotificationCleanup;
use backstop_core::config::{Config, DbConfig, Destination};
use backstop_core::run;
use backstop_tests::{TestDb, connect};
use serde_json::json;

async fn load(db: &TestDb, rows: i64) {
    let c = db.client().await.unwrap();
    c.batch_execute(
        "drop table if exists notifications_notification;
         create table notifications_notification (
             id bigserial primary key, recipient_id bigint not null, read boolean not null,
             verb text not null, data jsonb, created_at timestamptz not null);",
    )
    .await
    .unwrap();
    // A third of the rows are old and read: those are the ones to delete.
    c.execute(
        "insert into notifications_notification (recipient_id, read, verb, data, created_at)
         select g % 5000, g % 3 = 0, 'commented on your post',
                jsonb_build_object('post', g, 'by', 'user' || (g % 977)),
                case when g % 3 = 0 then now() - interval '200 days' + (g % 86400) * interval '1 second'
                     else now() - (g % 80) * interval '1 day' end
         from generate_series(1, $1::bigint) g",
        &[&rows],
    )
    .await
    .unwrap();
    c.batch_execute("create index on notifications_notification (created_at)").await.unwrap();
    // VACUUM must be a statement of its own (a multi-statement string runs as one transaction).
    c.batch_execute("vacuum analyze notifications_notification").await.unwrap();
}

/// Inserts rows one at a time until `stop`, returning each insert's latency.
async fn insert_loop(url: String, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let c = connect(&url).await.unwrap();
    let stmt = c
        .prepare("insert into notifications_notification (recipient_id, read, verb, created_at) values (1, false, 'new', now())")
        .await
        .unwrap();
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        c.execute(&stmt, &[]).await.unwrap();
        lat.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    lat
}

fn p99(mut lat: Vec<Duration>) -> Duration {
    lat.sort();
    lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
}

/// Runs `work` while inserts go on; returns the work's result and the inserts' p99.
async fn with_inserts<F: std::future::Future<Output = T>, T>(db: &TestDb, work: F) -> (T, Duration, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let inserter = tokio::spawn(insert_loop(db.url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    let lat = inserter.await.unwrap();
    let n = lat.len();
    (out, p99(lat), n)
}

#[tokio::main]
async fn main() {
    let rows: i64 =
        std::env::var("BENCH_CLEANUP_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000_000);
    let db = TestDb::create("bench_cleanup").await.unwrap();
    eprintln!("loading {rows} rows into {}", db.name);
    load(&db, rows).await;

    let (_, idle_p99, idle_n) = with_inserts(&db, tokio::time::sleep(Duration::from_secs(5))).await;

    let dir = std::env::temp_dir().join(format!("backstop-bench-{}", db.name));
    let mut config = Config::from_lookup(|_| None, Some(Destination::Local { root: dir.clone() })).unwrap();
    config.db = DbConfig::Url(db.url.clone());
    let app = App::with_config(config).await.unwrap();
    let batches: Vec<u32> = std::env::var("BENCH_CLEANUP_BATCHES")
        .unwrap_or_else(|_| "5000,1000".into())
        .split(',')
        .map(|b| b.trim().parse().expect("BENCH_CLEANUP_BATCHES: numbers"))
        .collect();
    let mut rows_out = Vec::new();
    let mut bk_deleted = 0;
    for (i, batch_size) in batches.iter().enumerate() {
        if i > 0 {
            eprintln!("reloading for batch size {batch_size}");
            load(&db, rows).await;
        }
        let payload = json!({ "batch_size": batch_size, "rules": [{"table": "notifications_notification",
            "older_than": "90d", "timestamp_column": "created_at",
            "filter": [{"column": "read", "op": "=", "value": true}]}] });
        let started = Instant::now();
        let (record, bk_p99, bk_n) =
            with_inserts(&db, run::execute::<NotificationCleanup>(&app, &payload, None)).await;
        let bk_total = started.elapsed();
        assert_eq!(record.status, run::Status::Succeeded, "{:?}", record.error);
        let rule = &record.outputs["rules"][0];
        bk_deleted = rule["deleted"].as_i64().unwrap();
        let bk_batches = rule["batches"].as_i64().unwrap();
        let bk_longest = Duration::from_millis(rule["longest_batch_ms"].as_u64().unwrap());
        rows_out.push(format!(
            "| backstop notification-cleanup (batch {batch_size}, {bk_batches} batches) | {:.1} | {:.1} | {:.1} | {:.2}× | {bk_n} |",
            bk_total.as_secs_f64(),
            bk_longest.as_secs_f64() * 1000.0,
            bk_p99.as_secs_f64() * 1000.0,
            bk_p99.as_secs_f64() / idle_p99.as_secs_f64()
        ));
    }

    eprintln!("reloading for the plain DELETE");
    load(&db, rows).await;
    let c = db.client().await.unwrap();
    let started = Instant::now();
    let (deleted, del_p99, del_n) = with_inserts(
        &db,
        c.execute(
            "delete from notifications_notification where created_at < now() - interval '90 days' and read",
            &[],
        ),
    )
    .await;
    let del_total = started.elapsed();
    let deleted = deleted.unwrap() as i64;
    assert_eq!(deleted, bk_deleted, "both delete the same rows");

    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "\n{rows} rows, {deleted} to delete (old and read); inserts every ~2 ms from another session.\n"
    );
    println!("| method | total s | longest lock hold ms | insert p99 ms | p99 vs idle | inserts |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    println!("| idle (no delete) | – | – | {} | 1.00× | {idle_n} |", ms(idle_p99));
    for row in &rows_out {
        println!("{row}");
    }
    println!(
        "| one plain DELETE | {:.1} | {} | {} | {:.2}× | {del_n} |",
        del_total.as_secs_f64(),
        ms(del_total),
        ms(del_p99),
        del_p99.as_secs_f64() / idle_p99.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}
