//! The object store port: what jobs need from S3 (or a local directory), as one narrow trait,
//! plus the streaming multipart writer every large upload goes through.

mod local;
mod s3;
mod upload;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStore;
pub use s3::S3Store;
pub use upload::{PartSizer, StreamUpload, UploadStats};

use crate::error::Result;

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
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

    /// Checks that the destination exists and can be reached (dry runs, preflight).
    async fn check(&self) -> Result<()>;

    /// Writes a small object in one request.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()>;

    /// Reads a small object whole; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// Opens an object of any size for streaming; an error naming the key when it is missing.
    async fn get_stream(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>>;

    /// Lists every object under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Deletes one object (no error when it is already gone).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Starts a multipart upload and returns its id.
    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String>;

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

    /// Makes the object visible from its parts, in number order.
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<()>;

    /// Discards an upload and its parts.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()>;

    /// Lists uploads under `prefix` that were neither completed nor aborted.
    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>>;
}
