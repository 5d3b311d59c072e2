//! Restore: the other half of a backup. So far: reading plain SQL dumps as psql would
//! (`script`) and replaying them into a database without psql (`apply`).

mod apply;
mod script;

pub use apply::{ApplyStats, apply_plain};
pub use script::{Item, ScriptError, ScriptReader};
