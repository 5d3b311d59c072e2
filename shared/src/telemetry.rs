//! Logging set-up: JSON lines in Lambda (CloudWatch Logs Insights can query them), readable
//! text on a terminal. `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

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
