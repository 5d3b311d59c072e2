//! Logging set-up: JSON lines in Lambda (CloudWatch Logs Insights can query them), readable
//! text on a terminal. `RUST_LOG` overrides the level.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Whether someone watches the progress live (the CLI's bars on a terminal).
static LIVE: AtomicBool = AtomicBool::new(false);

/// Progress is drawn as it happens (the CLI on a terminal): long work reports it often.
pub fn live_progress() {
    LIVE.store(true, Ordering::Relaxed);
}

/// How often long work reports its progress: every 10 s into logs, 4 times a second to a bar.
/// Progress events carry `progress_done`, `progress_total` (0: not known) and
/// `progress_unit` besides their readable fields.
pub fn progress_every() -> Duration {
    if LIVE.load(Ordering::Relaxed) { Duration::from_millis(250) } else { Duration::from_secs(10) }
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if in_lambda {
        builder.json().with_current_span(false).with_ansi(false).without_time().try_init()
    } else {
        builder.try_init()
    };
}
