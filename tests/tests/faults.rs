//! The fault suite: each kind of fault injected once into a real run (S3, SNS and Secrets
//! Manager through a fault-injecting proxy in front of the loopback server; PostgreSQL real),
//! and the invariants asserted — transient faults absorbed, no backup marked good that does
//! not restore, no multipart upload left open, every failure recorded and published, no secret
//! anywhere. `tests/benches/faults.rs` repeats them for the README's figures.

use backstop_tests::fault_suite::{self, Trial};

/// The invariants every trial keeps, whatever its outcome.
fn assert_kept(t: &Trial) {
    assert!(t.faults > 0, "{}: no fault was injected", t.kind);
    assert!(!t.good_but_unrestorable, "{}: marked good but does not restore: {}", t.kind, t.summary);
    assert_eq!(t.open_uploads, 0, "{}: multipart uploads left open", t.kind);
    assert!(!t.unrecorded, "{}: no run record", t.kind);
    assert!(!t.unpublished, "{}: outcome not published", t.kind);
    assert_eq!(t.secret_leaks, 0, "{}: the secret leaked", t.kind);
    assert_eq!(t.deleted_outside_rule, 0, "{}: deleted what its rule keeps", t.kind);
    assert!(!t.stuck, "{}: a clean run after it did not finish the work", t.kind);
}

#[tokio::test]
async fn slowdowns_and_resets_on_uploads_are_absorbed_and_the_backup_restores() {
    let t = fault_suite::uploads_slowed_and_reset("fault_up").await;
    assert_kept(&t);
    assert!(t.succeeded, "the SDK's retries absorb transient faults: {}", t.summary);
}

#[tokio::test]
async fn three_slowdowns_in_a_row_are_waited_out() {
    // The SDK alone gives up after three attempts; Backstop allows six (BACKSTOP_S3_MAX_ATTEMPTS).
    let t = fault_suite::one_upload_slowed_three_times("fault_up3").await;
    assert_kept(&t);
    assert_eq!(t.faults, 3);
    assert!(t.succeeded, "{}", t.summary);
}

#[tokio::test]
async fn a_completion_applied_and_then_failed_never_reads_as_a_good_backup_that_is_not() {
    // Either outcome is honest: success (the retried completion found the object made, and it
    // restores) or a recorded failure with no manifest.
    let t = fault_suite::completion_applied_then_failed("fault_complete").await;
    assert_kept(&t);
}

#[tokio::test]
async fn a_cut_download_fails_the_restore_drill_naming_the_object() {
    let t = fault_suite::downloads_cut("fault_get").await;
    assert_kept(&t);
    assert!(!t.succeeded && t.summary.contains(".sql.zst"), "{}", t.summary);
}

#[tokio::test]
async fn a_throttled_secret_read_is_retried_and_a_persistent_one_fails_as_retryable() {
    let t = fault_suite::secrets_throttled("fault_sm1", 1).await;
    assert_kept(&t);
    assert!(t.succeeded, "one throttle is absorbed: {}", t.summary);
    let t = fault_suite::secrets_throttled("fault_sm2", usize::MAX).await;
    assert_kept(&t);
    assert!(!t.succeeded && t.summary.contains("Throttl"), "{}", t.summary);
}

#[tokio::test]
async fn media_copies_cut_or_slowed_are_copied_again_and_never_land_partial() {
    let t = fault_suite::media_copies_cut_and_slowed("fault_media").await;
    assert_kept(&t);
    // A cut download is read again within the run (the SDK's own retries end when the body starts).
    assert!(t.succeeded, "{}", t.summary);
}

#[tokio::test]
async fn a_server_restarted_mid_dump_fails_the_run_and_the_next_one_restores() {
    for engine in ["native", "pg_dump"] {
        // GIVEN a database on a server of its own, WHEN it restarts while the dump's COPY runs
        let t = match fault_suite::pg_restarted_mid_dump(&format!("restart_{engine}"), engine).await {
            Ok(t) => t,
            Err(why) => return eprintln!("SKIPPED: no PostgreSQL server of the test's own: {why}"),
        };
        // THEN the run failed, recorded and published, no manifest, no open upload, and the
        // next run restores
        eprintln!("{}: {}", t.kind, t.summary);
        assert_eq!(t.faults, 1, "the restart came after the dump: {}", t.summary);
        assert!(!t.succeeded, "{}", t.summary);
        assert_kept(&t);
    }
}

#[tokio::test]
async fn retention_under_failing_deletes_and_cut_reads_keeps_what_its_rule_keeps() {
    // GIVEN a real backup and 12 back-dated ones, WHEN retention-prune (keep 5 dailies) runs
    // while deletes are slowed or fail after applying and manifest reads are cut
    let t = fault_suite::retention_deletes_slowed_and_reads_cut("fault_prune").await;
    // THEN nothing kept went, the newest restores, and a clean run deletes the rest
    assert_kept(&t);
}

#[tokio::test]
async fn cleanup_whose_backend_is_terminated_deletes_nothing_outside_its_rule() {
    // GIVEN 60,000 notifications, WHEN notification-cleanup's backend is terminated a few
    // batches in and SNS refuses its first publish
    let t = fault_suite::cleanup_backend_terminated("fault_cleanup").await;
    // THEN no row outside the rule went, the outcome was recorded and published, and a clean
    // run deleted the rest
    assert_kept(&t);
}

#[tokio::test]
async fn retention_with_refused_deletes_and_an_unreadable_summary_keeps_what_they_name() {
    // GIVEN a real backup, 12 back-dated ones and three media snapshots; WHEN retention-prune
    // runs while the store denies some deletes, locks one and cannot read a summary
    let t = fault_suite::retention_deletes_refused_and_summaries_unreadable("fault_refused").await;
    // THEN nothing refused lost a part, no trash went, and the denied deletes failed the run
    assert_kept(&t);
    assert!(!t.succeeded, "a denied delete is a failure: {}", t.summary);
    assert!(t.summary.contains("injected fault: Denied"), "{}", t.summary);
}

#[tokio::test]
async fn media_objects_replaced_during_their_copy_fail_and_the_snapshot_stays_true() {
    let t = fault_suite::media_sources_changed_during_copy("fault_race").await;
    assert_kept(&t);
    assert!(!t.succeeded, "a raced object is a failed key: {}", t.summary);
    assert!(t.summary.contains("changed during the run"), "{}", t.summary);
}
