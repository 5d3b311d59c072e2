//! Restore: the other half of a backup. `script` reads plain SQL dumps as psql would,
//! `apply` replays them into a database without psql, `select` decides what `--tables` keeps
//! of each statement, `run` is `backstop restore`: find, verify, check the target, replay.
//! `verify` is the monthly restore drill as a job: restore into a scratch database, compare
//! rows and content hashes with the manifest, drop it.

mod apply;
mod post;
mod run;
mod script;
mod select;
mod verify;

pub use apply::{ApplyStats, apply_plain, apply_selected};
pub use run::{ObjectCheck, RestoreReport, RestoreRequest, RestoreSource, TableCount, restore, restore_with};
pub use script::{Item, ScriptError, ScriptReader};
pub use select::{TableSelection, Verdict, parse_qualified};
pub use verify::{TableCheck, Verify, VerifyOptions};
