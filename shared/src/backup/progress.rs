//! One progress ticker for both engines: counters the dump bumps, logged at a steady interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::run::human_bytes;

/// Tables done and bytes read of one database's dump.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    database: String,
    /// Tables to dump (0: not counted, as with pg_dump).
    total_tables: usize,
    /// The size on disk (the catalog's), for scale.
    total_bytes: u64,
    pub(crate) tables: Arc<AtomicUsize>,
    pub(crate) bytes: Arc<AtomicU64>,
}

impl Progress {
    pub(crate) fn new(database: &str, total_tables: usize, total_bytes: u64) -> Self {
        Progress::counting(database, total_tables, total_bytes, Arc::default())
    }

    /// Over a byte counter someone else bumps (pg_dump's output as it is read).
    pub(crate) fn counting(
        database: &str,
        total_tables: usize,
        total_bytes: u64,
        bytes: Arc<AtomicU64>,
    ) -> Self {
        Progress { database: database.to_owned(), total_tables, total_bytes, tables: Arc::default(), bytes }
    }

    /// Logs what was dumped and the rate until dropped (the ticker is aborted with the dump,
    /// also when the deadline drops it: a warm Lambda would otherwise go on logging into later
    /// invocations).
    pub(crate) fn start(&self) -> tokio_util::task::AbortOnDropHandle<()> {
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(self.clone().report()))
    }

    async fn report(self) {
        let start = Instant::now();
        let mut tick = tokio::time::interval(crate::telemetry::progress_every());
        tick.tick().await;
        loop {
            tick.tick().await;
            let bytes = self.bytes.load(Ordering::Relaxed);
            let rate = format!(
                "{}/s",
                human_bytes((bytes as f64 / start.elapsed().as_secs_f64().max(0.001)) as u64)
            );
            let tables = format!("{}/{}", self.tables.load(Ordering::Relaxed), self.total_tables);
            let tables_done = self.tables.load(Ordering::Relaxed) as u64;
            let (done, total, unit) = match self.total_tables {
                0 => (bytes, 0, "bytes"),
                n => (tables_done, n as u64, "tables"),
            };
            tracing::info!(
                database = %self.database,
                progress_done = done,
                progress_total = total,
                progress_unit = unit,
                tables = (self.total_tables > 0).then_some(tables.as_str()),
                dumped = %human_bytes(bytes),
                on_disk = %human_bytes(self.total_bytes),
                rate = %rate,
                "dump in progress"
            );
        }
    }
}
