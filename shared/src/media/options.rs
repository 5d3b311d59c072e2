//! media-sync's options, as a payload or the CLI's flags give them, and their checks.

use serde::{Deserialize, Serialize};

use super::plan::Filter;
use crate::error::{Error, Result};

/// media-sync's options (payload or CLI flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSyncOptions {
    /// Count and list what would be copied and trashed; change nothing.
    pub dry_run: bool,
    /// Glob patterns over source keys (`*` spans `/`): only these are synced.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Copies in flight (default 16).
    pub concurrency: Option<usize>,
    /// Let through, for this run, what a guard would stop (an empty source, a mass delete).
    pub force: bool,
    /// The share of the last snapshot's objects a run may trash (default 0.2).
    pub max_delete_fraction: Option<f64>,
    /// `mirror` (default): the incremental mirror with snapshots; `archive`: one
    /// `media_{env}_{run_id}.tar.zst` of the whole source, as the nightly tarball; `check`: the
    /// mirror against the newest snapshot.
    pub mode: Mode,
    /// With `mode: "check"`: read back and hash every N-th object (default 100; 1: all; 0: none).
    pub rehash_every: Option<u64>,
}

/// What a run makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Mirror,
    Archive,
    /// No copy: the mirror checked against the newest snapshot (every version present, sizes
    /// and ETags, a sample re-hashed), failing the run when anything is missing.
    Check,
}

impl MediaSyncOptions {
    pub(super) fn validate(&self) -> Result<()> {
        if let Some(c) = self.concurrency
            && !(1..=64).contains(&c)
        {
            return Err(Error::Payload(format!("concurrency: {c} is not 1 to 64")));
        }
        if let Some(f) = self.max_delete_fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(Error::Payload(format!("max_delete_fraction: {f} is not between 0 and 1")));
        }
        for (name, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            if patterns.iter().any(|p| p.is_empty()) {
                return Err(Error::Payload(format!("{name}: an empty pattern matches nothing; remove it")));
            }
        }
        Ok(())
    }

    pub(super) fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(16)
    }
}

pub(super) fn filter(options: &MediaSyncOptions) -> Filter {
    Filter { include: options.include.clone(), exclude: options.exclude.clone() }
}
