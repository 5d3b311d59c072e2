//! Moving media bytes: into the mirror (server-side when the source bucket is reached with the
//! backup bucket's endpoint and credentials, else streamed GET → PUT, never through a file),
//! into the trash, and back out for a restore. Every streamed copy is verified: the bytes read
//! must have the size the source announced and, where its ETag is an MD5, that MD5; the
//! destination checks the SHA-256 sent with every part.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, ReadBuf};

use super::snapshot::Entry;
use crate::config::S3Settings;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::store::{CopySource, ObjectInfo, ObjectStore, PartSizer, StreamUpload};

/// How a copy was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The bytes read matched the source's MD5 ETag and size.
    Md5,
    /// The size matched (the source offers no MD5: a multipart ETag, SSE-KMS, a directory);
    /// the destination checked the SHA-256 of every part it received.
    Size,
    /// Copied by the store itself (CopyObject), never passing through here.
    ServerSide,
}

/// What a streamed copy read and stored.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The source object as read (it may have changed since it was listed).
    pub source: ObjectInfo,
    pub stored_etag: Option<String>,
    pub verified: Verified,
    /// The MD5 of the bytes copied (hex).
    pub md5: String,
}

/// Streams `from_key` of `from` into `to_key` of `to`, keeping content type and metadata, and
/// verifies what was read. `expect` (size, MD5) is what a snapshot recorded, for restores.
pub async fn stream_copy(
    from: &dyn ObjectStore,
    from_key: &str,
    to: Arc<dyn ObjectStore>,
    to_key: &str,
    s3: &S3Settings,
    expect: Option<(u64, Option<&str>)>,
) -> Result<Copied> {
    let Some(download) = from.open(from_key).await? else {
        return Err(failed(from, from_key, "the object disappeared before it could be copied".into()));
    };
    let mut meta = download.meta;
    if meta.content_type.is_none() {
        meta.content_type = Some(guess_content_type(from_key).to_owned());
    }
    let info = download.info;
    let mut reader = Md5Reader { inner: download.body, md5: Md5::new(), bytes: 0 };
    let sizer = PartSizer::new(&S3Settings { equal_parts: false, ..s3.clone() }, Some(info.size));
    let mut upload = StreamUpload::begin(to.clone(), to_key, meta, sizer, 1).with_size_hint(info.size);
    if let Err(e) = upload.copy_from(&mut reader).await {
        upload.abort().await;
        return Err(e);
    }
    let md5 = hex::encode(reader.md5.finalize());
    let mut problems = Vec::new();
    if reader.bytes != info.size {
        problems.push(format!("read {} bytes, the source announced {}", reader.bytes, info.size));
    }
    let source_md5 = info.md5_etag().map(str::to_ascii_lowercase);
    if let Some(etag) = &source_md5
        && *etag != md5
    {
        problems.push(format!("MD5 of the bytes read is {md5}, the source's ETag is {etag}"));
    }
    if let Some((size, etag)) = expect {
        if size != reader.bytes {
            problems.push(format!("{} bytes, the snapshot recorded {size}", reader.bytes));
        }
        if let Some(e) = etag.filter(|e| e.len() == 32)
            && e.to_ascii_lowercase() != md5
        {
            problems.push(format!("MD5 {md5}, the snapshot recorded {e}"));
        }
    }
    if !problems.is_empty() {
        upload.abort().await;
        return Err(failed(from, from_key, format!("verification failed: {}", problems.join("; "))));
    }
    let stats = upload.complete().await?;
    Ok(Copied {
        source: info,
        stored_etag: stats.etag,
        verified: if source_md5.is_some() { Verified::Md5 } else { Verified::Size },
        md5,
    })
}

fn failed(store: &dyn ObjectStore, key: &str, detail: String) -> Error {
    Error::Store {
        op: "copy",
        location: store.locate(key),
        detail,
        source: None,
        retryable: true,
        kind: StoreKind::Other,
    }
}

/// Counts and hashes what passes through.
struct Md5Reader<R> {
    inner: R,
    md5: Md5,
    bytes: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Reader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            self.bytes += new.len() as u64;
            self.md5.update(new);
        }
        polled
    }
}

/// A content type for a file from a directory source, by its extension (S3 serves uploads
/// with it; the common web upload types).
pub fn guess_content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// Carries out media-sync's per-object work for one run.
#[derive(Debug, Clone)]
pub struct Copier {
    pub source: Arc<dyn ObjectStore>,
    pub source_prefix: String,
    pub mirror: Arc<dyn ObjectStore>,
    pub prefix: String,
    /// Source and mirror share endpoint and credentials: copy server-side.
    pub server_side: bool,
    pub s3: S3Settings,
    pub run_id: String,
}

impl Copier {
    /// Copies the source's current version of `listed` into the mirror.
    pub async fn copy_in(&self, listed: &ObjectInfo) -> Result<(Entry, Verified)> {
        let from = format!("{}{}", self.source_prefix, listed.key);
        let to = keys::media_current(&self.prefix, &listed.key);
        if self.server_side {
            let source = CopySource {
                bucket: self.source.bucket(),
                key: &from,
                size: listed.size,
                if_match: listed.etag.as_deref(),
            };
            let etag = self.mirror.copy(source, &to).await?;
            // Where the store ignores `if-match` (some S3-compatible servers), the copy's ETag
            // still tells: a single-part copy has the source's MD5. A different one means the
            // source was replaced under the copy; the entry would name a version the mirror
            // does not hold. (`current` may hold the newer bytes now: the last snapshot's entry
            // still finds its own version in the trash, which is written before a replace.)
            if let (Some(listed_md5), Some(copied)) = (listed.md5_etag(), etag.as_deref())
                && copied.len() == 32
                && !copied.eq_ignore_ascii_case(listed_md5)
            {
                return Err(Error::Store {
                    op: "copy",
                    location: self.source.locate(&from),
                    detail: format!(
                        "changed during the run (listed with ETag {listed_md5}, copied {copied}); the next run copies it"
                    ),
                    source: None,
                    retryable: true,
                    kind: StoreKind::PreconditionFailed,
                });
            }
            let entry = Entry {
                key: listed.key.clone(),
                size: listed.size,
                etag: listed.etag.clone(),
                modified: listed.last_modified,
                version: self.run_id.clone(),
                stored_etag: etag,
            };
            return Ok((entry, Verified::ServerSide));
        }
        let copied =
            stream_copy(self.source.as_ref(), &from, self.mirror.clone(), &to, &self.s3, None).await?;
        let entry = Entry {
            key: listed.key.clone(),
            size: copied.source.size,
            // A directory has no ETag: the MD5 of what was copied stands in, so that a restore
            // checks the mirror copy's bytes, not only its size.
            etag: copied.source.etag.or(Some(copied.md5)),
            modified: copied.source.last_modified.or(listed.last_modified),
            version: self.run_id.clone(),
            stored_etag: copied.stored_etag,
        };
        Ok((entry, copied.verified))
    }

    /// Keeps the mirror's copy of `old` in the trash, under the run that copied it in. A trash
    /// object that exists already holds that version (it is only ever written from `current`
    /// before `current` is replaced), so it is never written twice: a retried run cannot put a
    /// newer version in its place.
    pub async fn trash(&self, old: &Entry) -> Result<()> {
        let trash = keys::media_trash(&self.prefix, &old.version, &old.key);
        if self.mirror.head(&trash).await?.is_some() {
            return Ok(());
        }
        let current = keys::media_current(&self.prefix, &old.key);
        // Only the version the snapshot names goes to its trash key: if `current` holds
        // another (a concurrent run replaced it), the copy fails rather than mislabel it.
        let source =
            CopySource { bucket: None, key: &current, size: old.size, if_match: old.stored_etag.as_deref() };
        self.mirror.copy(source, &trash).await?;
        Ok(())
    }

    /// Removes the mirror's current copy of `key` (after [`Copier::trash`]).
    pub async fn delete_current(&self, key: &str) -> Result<()> {
        self.mirror.delete(&keys::media_current(&self.prefix, key)).await
    }
}

/// Where the bytes of a snapshot entry are now: the trash once replaced, else `current`. The
/// mirror copy's ETag tells them apart without a second request where the store has ETags.
pub async fn locate_version(mirror: &dyn ObjectStore, prefix: &str, entry: &Entry) -> Result<String> {
    let current = keys::media_current(prefix, &entry.key);
    let trash = keys::media_trash(prefix, &entry.version, &entry.key);
    if let Some(d) = &entry.stored_etag
        && mirror.head(&current).await?.is_some_and(|i| i.etag.as_ref() == Some(d) && i.size == entry.size)
    {
        return Ok(current);
    }
    if mirror.head(&trash).await?.is_some() {
        return Ok(trash);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn a_streamed_copy_is_verified_against_what_the_snapshot_recorded() {
        let dir = std::env::temp_dir().join(format!("backstop-copy-{}", uuid::Uuid::new_v4()));
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&dir));
        store.put("a.jpg", bytes::Bytes::from_static(b"hello"), "x").await.unwrap();
        let ok = stream_copy(store.as_ref(), "a.jpg", store.clone(), "b.jpg", &S3Settings::default(), None)
            .await
            .unwrap();
        assert_eq!((ok.source.size, ok.verified), (5, Verified::Size));
        assert_eq!(store.get("b.jpg").await.unwrap().unwrap(), &b"hello"[..]);
        let md5 = hex::encode(Md5::digest(b"hello"));
        stream_copy(
            store.as_ref(),
            "a.jpg",
            store.clone(),
            "c.jpg",
            &S3Settings::default(),
            Some((5, Some(&md5))),
        )
        .await
        .unwrap();
        let wrong = "0".repeat(32);
        let err = stream_copy(
            store.as_ref(),
            "a.jpg",
            store.clone(),
            "d.jpg",
            &S3Settings::default(),
            Some((5, Some(&wrong))),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("verification failed"), "{err}");
        assert!(store.head("d.jpg").await.unwrap().is_none(), "a copy that fails verification is not stored");
        assert_eq!(guess_content_type("x/Y.JPG"), "image/jpeg");
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }
}
