//! An object store layer that checks every call a job makes against the function's grants in
//! `backstop_core::access` (the table the Terraform roles are tested against): a call the
//! table does not allow is a role that would fail in AWS with AccessDenied.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backstop_core::Result;
use backstop_core::access::{self, Side, StoreCall};
use backstop_core::app::StoreLayer;
use backstop_core::store::{
    CompletedPart, CopySource, Download, ListPage, ObjectInfo, ObjectMeta, ObjectStore, PendingUpload,
};
use bytes::Bytes;

/// What the audited stores saw: calls outside the grants, and every action used.
#[derive(Debug, Default)]
pub struct Audit {
    pub denied: Mutex<Vec<String>>,
    pub used: Mutex<BTreeSet<(String, &'static str)>>,
}

impl Audit {
    /// The calls the grants do not allow (empty when the role suffices).
    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().expect("audit lock").clone()
    }

    /// `(side and scope, action)` for every call made.
    pub fn used(&self) -> BTreeSet<(String, &'static str)> {
        self.used.lock().expect("audit lock").clone()
    }
}

/// A store whose every call is checked against `function`'s grants.
#[derive(Debug)]
pub struct AuditStore {
    inner: Arc<dyn ObjectStore>,
    function: &'static str,
    side: Side,
    prefix: String,
    audit: Arc<Audit>,
}

impl AuditStore {
    pub fn wrap(
        inner: Arc<dyn ObjectStore>,
        function: &'static str,
        side: Side,
        prefix: &str,
        audit: Arc<Audit>,
    ) -> Arc<dyn ObjectStore> {
        Arc::new(AuditStore { inner, function, side, prefix: prefix.to_owned(), audit })
    }

    /// A layer for `App::source_layer`: the media source's store, audited.
    pub fn source_layer(function: &'static str, audit: Arc<Audit>) -> StoreLayer {
        StoreLayer(Arc::new(move |inner| {
            AuditStore::wrap(inner, function, Side::MediaSource, "", audit.clone())
        }))
    }

    fn note(&self, side: Side, call: StoreCall, key: &str) {
        let scope = match side {
            Side::Backup => {
                let rest = key.strip_prefix(&self.prefix).unwrap_or(key);
                // The scope as the table names them: `db/`, `media/`, `runs/{job}/`.
                let mut parts = rest.split('/');
                match (parts.next(), parts.next()) {
                    (Some("runs"), Some(job)) => format!("backup:runs/{job}/"),
                    (Some(first), _) => format!("backup:{first}/"),
                    _ => "backup:".into(),
                }
            }
            Side::MediaSource => "media-source".into(),
        };
        self.audit.used.lock().expect("audit lock").insert((scope, call.action()));
        if let Err(why) = access::allows(self.function, side, call, key, &self.prefix) {
            self.audit.denied.lock().expect("audit lock").push(why);
        }
    }

    fn own(&self, call: StoreCall, key: &str) {
        self.note(self.side, call, key);
    }
}

#[async_trait]
impl ObjectStore for AuditStore {
    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }

    fn bucket(&self) -> Option<&str> {
        self.inner.bucket()
    }

    async fn check(&self) -> Result<()> {
        // HeadBucket needs s3:ListBucket without a prefix: the whole bucket.
        self.own(StoreCall::List, "");
        self.inner.check().await
    }

    async fn put_object(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<Option<String>> {
        self.own(StoreCall::Write, key);
        self.inner.put_object(key, body, meta).await
    }

    async fn put_new(&self, key: &str, body: Bytes, content_type: &str) -> Result<bool> {
        self.own(StoreCall::Write, key);
        self.inner.put_new(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.own(StoreCall::Read, key);
        self.inner.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.own(StoreCall::Read, key);
        self.inner.head(key).await
    }

    async fn open(&self, key: &str) -> Result<Option<Download>> {
        self.own(StoreCall::Read, key);
        self.inner.open(key).await
    }

    async fn list_page(&self, prefix: &str, start_after: Option<&str>) -> Result<ListPage> {
        self.own(StoreCall::List, prefix);
        self.inner.list_page(prefix, start_after).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.own(StoreCall::Delete, key);
        self.inner.delete(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, backstop_core::Error)>> {
        for key in keys {
            self.own(StoreCall::Delete, key);
        }
        self.inner.delete_many(keys).await
    }

    async fn copy(&self, source: CopySource<'_>, key: &str) -> Result<Option<String>> {
        // A copy reads its source (this bucket, or the media source) and writes here.
        let source_side = if source.bucket.is_some() { Side::MediaSource } else { self.side };
        self.note(source_side, StoreCall::Read, source.key);
        self.own(StoreCall::Write, key);
        self.inner.copy(source, key).await
    }

    async fn create_multipart(&self, key: &str, meta: &ObjectMeta) -> Result<String> {
        self.own(StoreCall::Write, key);
        self.inner.create_multipart(key, meta).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        sha256: [u8; 32],
    ) -> Result<CompletedPart> {
        self.own(StoreCall::Write, key);
        self.inner.upload_part(key, upload_id, number, body, sha256).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>> {
        self.own(StoreCall::Write, key);
        self.inner.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.own(StoreCall::Abort, key);
        self.inner.abort_multipart(key, upload_id).await
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        self.own(StoreCall::ListUploads, prefix);
        self.inner.list_multipart(prefix).await
    }
}
