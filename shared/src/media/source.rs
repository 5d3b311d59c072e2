//! The media source as a run reaches it: a bucket (its own endpoint and credentials where
//! set) or a directory, and the refusal of a source that holds its own backup.

use std::sync::Arc;

use serde::Deserialize;

use crate::App;
use crate::config::{Destination, MediaSource};
use crate::error::{Error, Result};
use crate::store::{LocalStore, ObjectStore, S3Access, S3Store};

/// The media source as this run reaches it.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    pub store: Arc<dyn ObjectStore>,
    /// Source keys start with this; mirror keys are what follows it.
    pub prefix: String,
    pub server_side: bool,
    pub describe: String,
}

/// Builds the source store from the configuration: its own endpoint and credentials (from
/// `BACKSTOP_MEDIA_SECRET_ID`) where set, the function's otherwise.
pub async fn connect_source(app: &App) -> Result<SourceHandle> {
    let media = &app.config.media;
    let Some(source) = &media.source else {
        return Err(Error::config(
            "BACKSTOP_MEDIA_SOURCE",
            "is required (s3://bucket/prefix or file:///dir)",
        ));
    };
    let describe = source.describe();
    match source {
        MediaSource::Local { root } => {
            // A mistyped path must not read as an empty source.
            match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => {}
                _ => {
                    return Err(Error::config(
                        "BACKSTOP_MEDIA_SOURCE",
                        format!("{} is not a directory this process can read", root.display()),
                    ));
                }
            }
            Ok(SourceHandle {
                store: app.layered(Arc::new(LocalStore::verbatim(root))),
                prefix: String::new(),
                server_side: false,
                describe,
            })
        }
        MediaSource::S3 { bucket, prefix } => {
            let mut access = S3Access { endpoint_url: media.endpoint_url.clone(), credentials: None };
            if let Some(secret_id) = &media.secret_id {
                access.credentials = Some(source_credentials(app, secret_id).await?);
            }
            let server_side = media.shares_destination_account() && app.store.bucket().is_some();
            let store =
                app.layered(Arc::new(S3Store::reaching(&app.sdk().await, bucket, &media.s3, &access)));
            Ok(SourceHandle { store, prefix: prefix.clone(), server_side, describe })
        }
    }
}

async fn source_credentials(app: &App, secret_id: &str) -> Result<aws_sdk_s3::config::Credentials> {
    #[derive(Deserialize)]
    struct Keys {
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    }
    let bad = |reason: &str| Error::Secret {
        secret_id: secret_id.to_owned(),
        reason: reason.to_owned(),
        source: None,
        retryable: false,
    };
    let text = app.secrets.secret_string(secret_id).await?;
    let keys: Keys = serde_json::from_str(&text)
        .map_err(|_| bad("is not a JSON object with access_key_id and secret_access_key"))?;
    let id = keys.access_key_id.filter(|k| !k.is_empty()).ok_or_else(|| bad("has no access_key_id"))?;
    let secret =
        keys.secret_access_key.filter(|k| !k.is_empty()).ok_or_else(|| bad("has no secret_access_key"))?;
    Ok(aws_sdk_s3::config::Credentials::new(id, secret, keys.session_token, None, "backstop-media-secret"))
}

/// Refuses a backup destination inside the media source (or the source inside what Backstop
/// writes): each run would back up its own mirror and grow without end.
pub(super) fn refuse_nested(source: &MediaSource, destination: &Destination, prefix: &str) -> Result<()> {
    let nested = match (source, destination) {
        (MediaSource::Local { root: src }, Destination::Local { root: dst }) => {
            let absolute = |p: &std::path::Path| {
                std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_owned())
            };
            let (src, dst) = (absolute(src), absolute(&dst.join(prefix)));
            dst.starts_with(&src) || src.starts_with(&dst)
        }
        (MediaSource::S3 { bucket: b1, prefix: p1 }, Destination::S3 { bucket: b2 }) => {
            b1 == b2 && (prefix.starts_with(p1.as_str()) || p1.starts_with(prefix))
        }
        _ => false,
    };
    if nested {
        return Err(Error::config(
            "BACKSTOP_MEDIA_SOURCE",
            format!(
                "{} holds the backup destination ({prefix} in {}) or lies inside it: every run would back up its own copies; \
                 give the media and the backups places apart (another bucket, or prefixes neither of which starts the other)",
                source.describe(),
                match destination {
                    Destination::S3 { bucket } => format!("s3://{bucket}"),
                    Destination::Local { root } => root.display().to_string(),
                }
            ),
        ));
    }
    Ok(())
}
