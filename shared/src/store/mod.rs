//! The object store port: what jobs need from S3 (or a local directory), as one narrow trait,
//! plus the streaming multipart writer every large upload goes through. Listings are paged
//! (key order, resumable from a key) so that jobs over millions of objects stay in bounded memory.

pub mod faulty;
mod local;
mod s3;
mod upload;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::AsyncRead;

pub use local::LocalStore;
pub use s3::{S3Access, S3Store};
pub use upload::{PartSizer, StreamUpload, UploadStats};

use crate::error::{Error, Result, StoreKind};

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// The store's entity tag, without quotes (an MD5 of the bytes for a single-part S3 upload
    /// without SSE-KMS; `None` for a local directory).
    pub etag: Option<String>,
    pub last_modified: Option<Timestamp>,
}

impl ObjectInfo {
    /// The ETag when it is the MD5 of the bytes (32 hex digits, no `-N` part count).
    pub fn md5_etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    /// More keys follow the last one of this page.
    pub truncated: bool,
}

/// What travels with an object's bytes: its content type and user metadata (`x-amz-meta-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub user: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// Metadata with only a content type.
    pub fn typed(content_type: &str) -> Self {
        ObjectMeta { content_type: Some(content_type.to_owned()), user: BTreeMap::new() }
    }
}

/// An object opened for reading: what it is, and its bytes as a stream.
pub struct Download {
    pub info: ObjectInfo,
    pub meta: ObjectMeta,
    pub body: Box<dyn AsyncRead + Unpin + Send>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("info", &self.info).field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// The source of a server-side copy: an object of this store's bucket (`bucket: None`) or of
/// another bucket the same credentials reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySource<'a> {
    pub bucket: Option<&'a str>,
    pub key: &'a str,
    /// The source's size: above 5 GB S3 copies in parts (`UploadPartCopy`).
    pub size: u64,
    /// Copy only while the source still has this ETag (`x-amz-copy-source-if-match`, on every
    /// part): an object replaced between listing and copy fails with
    /// [`StoreKind::PreconditionFailed`](crate::StoreKind) instead of a snapshot claiming a
    /// version the mirror does not hold, or a large copy stitched from two versions.
    pub if_match: Option<&'a str>,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<Timestamp>,
}

/// A part the store acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub number: i32,
    pub etag: Option<String>,
    pub checksum_sha256: Option<String>,
}

/// The port every job writes through. One real implementation per backend (S3, local
/// directory); methods are stateless so that concurrent part uploads can share one store.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// How `key` reads in messages (`s3://bucket/key`).
    fn locate(&self, key: &str) -> String;

    /// The S3 bucket this store is, for server-side copies out of it; `None` for a directory.
    fn bucket(&self) -> Option<&str>;

    /// Checks that the destination exists and can be reached (dry runs, preflight).
    async fn check(&self) -> Result<()>;

    /// Writes an object in one request with its metadata; returns its ETag where the store has one.
    async fn put_object(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<Option<String>>;

    /// Writes a small object in one request.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        self.put_object(key, body, &ObjectMeta::typed(content_type)).await.map(drop)
    }

    /// Writes a small object only if no object has the key (S3's `If-None-Match: *`, a local
    /// file created exclusively). Returns whether it was written; `false`: one exists.
    async fn put_new(&self, key: &str, body: Bytes, content_type: &str) -> Result<bool>;

    /// Reads a small object whole; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// What an object is (size, ETag), without its bytes; `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;

    /// Opens an object of any size for streaming, with what it is; `None` when it does not exist.
    async fn open(&self, key: &str) -> Result<Option<Download>>;

    /// Opens an object of any size for streaming; an error naming the key when it is missing.
    async fn get_stream(&self, key: &str) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
        match self.open(key).await? {
            Some(d) => Ok(d.body),
            None => Err(Error::Store {
                op: "get",
                location: self.locate(key),
                detail: "no such object".into(),
                source: None,
                retryable: false,
                kind: StoreKind::NotFound,
            }),
        }
    }

    /// One page (up to 1,000 objects) of the keys under `prefix` after `start_after`, in key
    /// (byte) order. Paging by the last key makes a listing resumable and its memory bounded.
    async fn list_page(&self, prefix: &str, start_after: Option<&str>) -> Result<ListPage>;

    /// Lists every object under `prefix`, in key order (for listings known to be small).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out: Vec<ObjectInfo> = Vec::new();
        loop {
            let after = out.last().map(|o| o.key.clone());
            let page = self.list_page(prefix, after.as_deref()).await?;
            out.extend(page.objects);
            if !page.truncated {
                return Ok(out);
            }
        }
    }

    /// Deletes one object (no error when it is already gone).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes many objects (S3: `DeleteObjects`, 1,000 keys a request, falling back to one
    /// request per key where a store lacks it). Returns the keys that could not be deleted.
    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, Error)>> {
        let mut failed = Vec::new();
        for key in keys {
            if let Err(e) = self.delete(key).await {
                failed.push((key.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Copies an object inside the store (or from another bucket on the same endpoint and
    /// credentials) without its bytes passing through here; content type and user metadata
    /// are kept. Returns the new object's ETag where the store has one.
    async fn copy(&self, source: CopySource<'_>, key: &str) -> Result<Option<String>>;

    /// Starts a multipart upload and returns its id.
    async fn create_multipart(&self, key: &str, meta: &ObjectMeta) -> Result<String>;

    /// Uploads part `number` (1-based); `sha256` is the part's digest, sent as the store's
    /// checksum when enabled.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        sha256: [u8; 32],
    ) -> Result<CompletedPart>;

    /// Makes the object visible from its parts, in number order; returns its ETag.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>>;

    /// Discards an upload and its parts.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()>;

    /// Lists uploads under `prefix` that were neither completed nor aborted.
    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>>;
}

/// An ETag as stores send it (`"…"`), without its quotes.
pub fn unquote_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}
