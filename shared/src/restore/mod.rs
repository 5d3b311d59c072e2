//! Restore: the other half of a backup. `script` reads plain SQL dumps as psql would,
//! `apply` replays them into a database without psql, `run` is `backstop restore`: find,
//! verify, check the target, replay.

mod apply;
mod run;
mod script;

pub use apply::{ApplyStats, apply_plain};
pub use run::{ObjectCheck, RestoreReport, RestoreRequest, RestoreSource, TableCount, restore};
pub use script::{Item, ScriptError, ScriptReader};
