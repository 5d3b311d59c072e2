//! The fault suite's figures: every kind of injected fault, repeated, with what the runs left —
//! the README's table. Needs the local stack (scripts/stack.sh up).
//!
//!   cargo bench -p backstop-tests --bench faults          # FAULT_RUNS=5 per kind, FAULT_KINDS=11,12 for some

use backstop_tests::fault_suite::{self, Trial};

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("FAULT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    // FAULT_KINDS=11,12 runs only those kinds.
    let only: Option<Vec<usize>> = std::env::var("FAULT_KINDS")
        .ok()
        .map(|v| v.split(',').filter_map(|k| k.trim().parse().ok()).collect());
    let mut rows: Vec<Vec<Trial>> = Vec::new();
    for kind in 0..13 {
        if only.as_ref().is_some_and(|o| !o.contains(&kind)) {
            continue;
        }
        let mut trials = Vec::new();
        for i in 0..runs {
            let label = format!("fb{kind}_{i}");
            trials.push(match kind {
                0 => fault_suite::uploads_slowed_and_reset(&label).await,
                1 => fault_suite::completion_applied_then_failed(&label).await,
                2 => fault_suite::downloads_cut(&label).await,
                3 => fault_suite::secrets_throttled(&label, 1).await,
                4 => fault_suite::secrets_throttled(&label, usize::MAX).await,
                5 => fault_suite::one_upload_slowed_three_times(&label).await,
                6 => fault_suite::media_copies_cut_and_slowed(&label).await,
                7 => fault_suite::retention_deletes_slowed_and_reads_cut(&label).await,
                8 => fault_suite::cleanup_backend_terminated(&label).await,
                11 => fault_suite::retention_deletes_refused_and_summaries_unreadable(&label).await,
                12 => fault_suite::media_sources_changed_during_copy(&label).await,
                kind => {
                    let engine = if kind == 9 { "native" } else { "pg_dump" };
                    match fault_suite::pg_restarted_mid_dump(&label, engine).await {
                        Ok(t) => t,
                        Err(why) => {
                            eprintln!("skipped: no PostgreSQL server of our own: {why}");
                            break;
                        }
                    }
                }
            });
        }
        let Some(first) = trials.first() else { continue };
        eprintln!("{}: done", first.kind);
        rows.push(trials);
    }
    println!(
        "| fault | runs | faults injected | runs succeeded | marked good, not restorable | open uploads left | failures not recorded | not published | secret found | deleted outside a rule | clean run after it stuck |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for trials in &rows {
        let count = |f: fn(&Trial) -> bool| trials.iter().filter(|t| f(t)).count();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            trials[0].kind,
            trials.len(),
            trials.iter().map(|t| t.faults).sum::<usize>(),
            count(|t| t.succeeded),
            count(|t| t.good_but_unrestorable),
            trials.iter().map(|t| t.open_uploads).sum::<usize>(),
            count(|t| t.unrecorded),
            count(|t| t.unpublished),
            trials.iter().map(|t| t.secret_leaks).sum::<usize>(),
            trials.iter().map(|t| t.deleted_outside_rule).sum::<usize>(),
            count(|t| t.stuck),
        );
    }
}
