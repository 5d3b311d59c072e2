//! retention-prune (issue 12, in progress): the keep-policy planner. The job that lists
//! backups by manifest and deletes what the plan lets go is to come; the planner is pure and
//! pinned by tables first, as the design asks.

mod plan;

pub use plan::{Candidate, Decision, Keep, KeepRules, kept_per_reason, parse_within, plan};
