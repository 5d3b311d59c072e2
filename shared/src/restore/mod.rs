//! Restore: the other half of a backup. So far, the reader of plain SQL dumps that lets
//! Backstop replay a dump without `psql` (see `script`).

mod script;

pub use script::{Item, ScriptError, ScriptReader};
