//! What each function may do in AWS: the IAM actions its code calls, on the resources it
//! touches. One table, read three ways: the Terraform module's roles are tested against it
//! (`tests/infra`), the CLI prints it (`backstop permissions`), and the end-to-end tests run
//! every job through stores that check each call against it (`backstop_tests::audit`).
//!
//! Resources are named, not written as ARNs: `Bucket` is the backup bucket itself (listings,
//! with the key prefixes a listing may ask for), `Objects(scope)` the keys under
//! `{BACKSTOP_PREFIX}{scope}`, `Media*` the media source, `*Secret` and `Topic` what the
//! environment names. The module maps each name to an ARN.

use serde::Serialize;

/// A resource a function touches, by role (the module maps each to an ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "scope")]
pub enum Target {
    /// The backup bucket; listings only under these scopes (below `BACKSTOP_PREFIX`).
    Bucket(&'static [&'static str]),
    /// Objects under `{BACKSTOP_PREFIX}{scope}` in the backup bucket.
    Objects(&'static str),
    /// The media source bucket (listing under its prefix).
    MediaBucket,
    /// Objects under the media source's prefix.
    MediaObjects,
    /// The database secret (`BACKSTOP_DB_SECRET_ID`), when passwords come from one.
    DbSecret,
    /// The database user of RDS IAM authentication (`BACKSTOP_DB_IAM_URL`), when used instead.
    DbUser,
    /// The media source's credentials (`BACKSTOP_MEDIA_SECRET_ID`), when set.
    MediaSecret,
    /// The outcome topic (`BACKSTOP_SNS_TOPIC_ARN`).
    Topic,
}

impl Target {
    /// The name the Terraform module's `local.resources` map uses for this target.
    pub fn name(&self) -> String {
        match self {
            Target::Bucket(_) => "bucket".into(),
            Target::Objects(scope) => format!("objects:{scope}"),
            Target::MediaBucket => "media_bucket".into(),
            Target::MediaObjects => "media_objects".into(),
            Target::DbSecret => "db_secret".into(),
            Target::DbUser => "db_user".into(),
            Target::MediaSecret => "media_secret".into(),
            Target::Topic => "topic".into(),
        }
    }
}

/// Actions on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub actions: &'static [&'static str],
    pub target: Target,
}

const fn grant(actions: &'static [&'static str], target: Target) -> Grant {
    Grant { actions, target }
}

const PUBLISH: Grant = grant(&["sns:Publish"], Target::Topic);
const DB_SECRET: Grant = grant(&["secretsmanager:GetSecretValue"], Target::DbSecret);
const DB_IAM: Grant = grant(&["rds-db:connect"], Target::DbUser);

/// Every function and what its code calls. The scopes follow `keys`: backups under `db/`,
/// media under `media/`, each job's run records under `runs/{job}/`.
pub const FUNCTIONS: &[(&str, &[Grant])] = &[
    (
        "db-backup",
        &[
            grant(&["s3:ListBucket", "s3:ListBucketMultipartUploads"], Target::Bucket(&["db/"])),
            grant(
                &["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                Target::Objects("db/"),
            ),
            grant(&["s3:PutObject"], Target::Objects("runs/db-backup/")),
            DB_SECRET,
            DB_IAM,
            PUBLISH,
        ],
    ),
    (
        "media-sync",
        &[
            grant(&["s3:ListBucket", "s3:ListBucketMultipartUploads"], Target::Bucket(&["media/"])),
            grant(
                &["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                Target::Objects("media/"),
            ),
            grant(&["s3:PutObject"], Target::Objects("runs/media-sync/")),
            grant(&["s3:ListBucket"], Target::MediaBucket),
            grant(&["s3:GetObject"], Target::MediaObjects),
            grant(&["secretsmanager:GetSecretValue"], Target::MediaSecret),
            PUBLISH,
        ],
    ),
    (
        "notification-cleanup",
        &[
            grant(&["s3:PutObject"], Target::Objects("runs/notification-cleanup/")),
            DB_SECRET,
            DB_IAM,
            PUBLISH,
        ],
    ),
    (
        "retention-prune",
        &[
            grant(
                &["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                Target::Bucket(&["db/", "media/", "runs/"]),
            ),
            grant(&["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], Target::Objects("db/")),
            grant(&["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], Target::Objects("media/")),
            grant(&["s3:DeleteObject"], Target::Objects("runs/")),
            grant(&["s3:PutObject"], Target::Objects("runs/retention-prune/")),
            PUBLISH,
        ],
    ),
];

/// The grants of function `name`; `None` for a name that is not a function.
pub fn grants(name: &str) -> Option<&'static [Grant]> {
    FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
}

/// A call on the object store port, by the IAM action it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCall {
    /// `check` (HeadBucket), `list_page`/`list` (ListObjectsV2).
    List,
    /// `list_multipart` (ListMultipartUploads).
    ListUploads,
    /// `get`, `head`, `open`, and a copy's source.
    Read,
    /// `put_object`, multipart create/part/complete, and a copy's destination.
    Write,
    /// `delete`, `delete_many` (DeleteObjects needs DeleteObject on each key).
    Delete,
    /// `abort_multipart`.
    Abort,
}

impl StoreCall {
    pub fn action(self) -> &'static str {
        match self {
            StoreCall::List => "s3:ListBucket",
            StoreCall::ListUploads => "s3:ListBucketMultipartUploads",
            StoreCall::Read => "s3:GetObject",
            StoreCall::Write => "s3:PutObject",
            StoreCall::Delete => "s3:DeleteObject",
            StoreCall::Abort => "s3:AbortMultipartUpload",
        }
    }
}

/// Which bucket a store call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The backup bucket, whose keys start with `BACKSTOP_PREFIX`.
    Backup,
    /// The media source.
    MediaSource,
}

/// Whether `function`'s grants allow `call` on `key` (for listings: the listed prefix) of the
/// bucket on `side`, where backup keys start with `prefix`. The reason, when not.
pub fn allows(function: &str, side: Side, call: StoreCall, key: &str, prefix: &str) -> Result<(), String> {
    let grants = grants(function).ok_or_else(|| format!("{function:?} is not a function"))?;
    let action = call.action();
    let bucket_level = matches!(call, StoreCall::List | StoreCall::ListUploads);
    let covered = grants.iter().filter(|g| g.actions.contains(&action)).any(|g| match (side, g.target) {
        // IAM has no prefix condition for ListBucketMultipartUploads: it is bucket-wide.
        (Side::Backup, Target::Bucket(_)) if call == StoreCall::ListUploads => true,
        (Side::Backup, Target::Bucket(scopes)) if bucket_level => {
            // A listing asks for a prefix; the policy's s3:prefix condition is `{scope}*`.
            key.strip_prefix(prefix).is_some_and(|rest| scopes.iter().any(|s| rest.starts_with(s)))
        }
        (Side::Backup, Target::Objects(scope)) if !bucket_level => {
            key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(scope))
        }
        (Side::MediaSource, Target::MediaBucket) => bucket_level,
        (Side::MediaSource, Target::MediaObjects) => !bucket_level,
        _ => false,
    });
    if covered {
        Ok(())
    } else {
        Err(format!("{function} is not granted {action} on {side:?} key {key:?} (prefix {prefix:?})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_with_a_function_has_grants_and_publishes() {
        for name in ["db-backup", "media-sync", "notification-cleanup", "retention-prune"] {
            let g = grants(name).unwrap_or_else(|| panic!("{name} has no grants"));
            assert!(g.contains(&PUBLISH), "{name} must be able to publish its outcome");
            assert!(
                g.iter().any(|g| matches!(g.target, Target::Objects(s) if s == format!("runs/{name}/"))
                    && g.actions.contains(&"s3:PutObject")),
                "{name} must be able to write its run record"
            );
        }
    }

    #[test]
    fn scopes_are_checked_below_the_prefix() {
        let ok = allows("db-backup", Side::Backup, StoreCall::Write, "bk/db/shop/x.sql.zst", "bk/");
        assert_eq!(ok, Ok(()));
        let media = allows("db-backup", Side::Backup, StoreCall::Write, "bk/media/current/a", "bk/");
        assert!(media.unwrap_err().contains("s3:PutObject"));
        // Another job's records are not db-backup's to write.
        assert!(
            allows("db-backup", Side::Backup, StoreCall::Write, "bk/runs/media-sync/r.json", "bk/").is_err()
        );
        assert!(
            allows("retention-prune", Side::Backup, StoreCall::Delete, "bk/runs/media-sync/r.json", "bk/")
                .is_ok()
        );
        assert!(
            allows("retention-prune", Side::Backup, StoreCall::List, "bk/", "bk/").is_err(),
            "whole-prefix listing"
        );
        assert!(allows("media-sync", Side::MediaSource, StoreCall::Write, "uploads/a", "bk/").is_err());
    }
}
