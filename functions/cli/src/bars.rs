//! Progress bars on a terminal: the core's progress events (those carrying `progress_done`)
//! become one bar per piece of work (indicatif) instead of a log line each; every other line is
//! printed above the bars. Off a terminal (a pipe, cron, CI) nothing changes: plain lines.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// The field that makes an event a progress event.
const DONE: &str = "progress_done";

/// Installs text logs and bars on stderr.
pub fn init() {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let env = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(Above(multi.clone()))
        .with_filter(env())
        .with_filter(filter::filter_fn(|meta| meta.fields().field(DONE).is_none()));
    let bars = Bars { multi, bars: Mutex::default() }.with_filter(env());
    let _ = tracing_subscriber::registry().with(lines).with(bars).try_init();
    backstop_core::telemetry::live_progress();
}

/// Writes log lines above the bars.
#[derive(Clone)]
struct Above(MultiProgress);

impl std::io::Write for Above {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Above {
    type Writer = Above;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Bars {
    multi: MultiProgress,
    /// By the event's message and what it is about (a database, a part's table).
    bars: Mutex<HashMap<String, ProgressBar>>,
}

/// What a progress event says.
#[derive(Default)]
struct Seen {
    message: String,
    done: u64,
    total: u64,
    unit: String,
    about: String,
}

impl Visit for Seen {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            DONE => self.done = value,
            "progress_total" => self.total = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "progress_unit" => self.unit = value.to_owned(),
            "database" | "about" => self.about = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "database" | "about" => self.about = format!("{value:?}").trim_matches('"').to_owned(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Bars {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().fields().field(DONE).is_none() {
            return;
        }
        let mut seen = Seen::default();
        event.record(&mut seen);
        let label = if seen.about.is_empty() {
            seen.message.clone()
        } else {
            format!("{} {}", seen.message, seen.about)
        };
        let mut bars = self.bars.lock().expect("bars lock");
        let bar = bars.entry(label.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(seen.total));
            let counts = if seen.unit == "bytes" {
                "{bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{human_pos}/{human_len} {unit} {per_sec}"
            };
            let template =
                format!("{{msg}} [{{wide_bar}}] {counts} eta {{eta}}").replace("{unit}", &seen.unit);
            bar.set_style(
                ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(label);
            bar
        });
        bar.set_length(seen.total.max(seen.done));
        bar.set_position(seen.done);
        if seen.total > 0 && seen.done >= seen.total {
            bar.finish();
        }
    }
}
