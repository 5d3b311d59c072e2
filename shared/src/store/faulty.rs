//! A test double for the store port: a real store wrapped so that chosen operations on chosen
//! keys fail with a chosen kind. The paths where one key of a batch is refused are where
//! deletions go wrong, so retention and media are tested through this over a real store.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    CompletedPart, CopySource, Download, ListPage, ObjectInfo, ObjectMeta, ObjectStore, PendingUpload,
};
use crate::error::{Error, Result, StoreKind};

/// The operations a fault can be set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `delete` and each key of `delete_many` (refused keys come back as the batch's failures).
    Delete,
    /// `get`, `open` and `head`.
    Get,
    /// `put_object`: with [`Fault::after_write`], the object is written and then the call fails
    /// (a response lost on the way back).
    Put,
    /// `copy`: with [`Fault::before`], a closure runs first (the source changes under the copy).
    Copy,
    /// `list_page` (matched on the prefix): with [`Fault::before`], the listed place changes.
    List,
}

/// What runs before a faulted operation, given its key.
pub type Hook = dyn Fn(&str) + Send + Sync;

/// One fault: `op` on keys containing `key_contains` fails with `kind`, `times` times (`None`:
/// always).
pub struct Fault {
    pub op: Op,
    pub key_contains: String,
    pub kind: StoreKind,
    pub times: Option<usize>,
    pub after_write: bool,
    /// Runs before the operation on a matching key (with `times(0)`, this is all it does).
    pub before: Option<Box<Hook>>,
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fault")
            .field("op", &self.op)
            .field("key_contains", &self.key_contains)
            .field("kind", &self.kind)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

impl Fault {
    /// `op` on keys containing `key_contains` always fails with `kind`.
    pub fn new(op: Op, key_contains: &str, kind: StoreKind) -> Self {
        Fault { op, key_contains: key_contains.into(), kind, times: None, after_write: false, before: None }
    }

    /// Only the first `n` matching calls fail.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// For [`Op::Put`]: the write lands, then the call fails.
    pub fn after_write(mut self) -> Self {
        self.after_write = true;
        self
    }

    /// Runs `f(key)` before the operation on a matching key.
    pub fn before(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.before = Some(Box::new(f));
        self
    }
}

/// A store whose chosen operations fail; everything else goes to `inner`.
#[derive(Debug)]
pub struct FaultyStore {
    pub inner: Arc<dyn ObjectStore>,
    faults: Mutex<Vec<Fault>>,
    injected: std::sync::atomic::AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultyStore { inner, faults: Mutex::new(Vec::new()), injected: Default::default() }
    }

    /// Adds a fault.
    pub fn fail(&self, fault: Fault) -> &Self {
        self.faults.lock().expect("faults lock").push(fault);
        self
    }

    /// How many operations failed by a fault so far.
    pub fn injected(&self) -> usize {
        self.injected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.faults.lock().expect("faults lock").clear();
    }

    /// Whether `op` on `key` fails now, and how (running a fault's `before` hook first).
    fn check(&self, op: Op, key: &str) -> Option<(StoreKind, bool)> {
        let mut faults = self.faults.lock().expect("faults lock");
        for f in faults.iter_mut().filter(|f| f.op == op && key.contains(&f.key_contains)) {
            if let Some(before) = &f.before {
                before(key);
            }
            match &mut f.times {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            self.injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some((f.kind, f.after_write));
        }
        None
    }

    fn error(&self, op: &'static str, key: &str, kind: StoreKind) -> Error {
        Error::Store {
            op,
            location: self.inner.locate(key),
            detail: format!("injected fault: {kind:?}"),
            source: None,
            retryable: matches!(kind, StoreKind::Throttled | StoreKind::Other),
            kind,
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    fn locate(&self, key: &str) -> String {
        self.inner.locate(key)
    }

    fn bucket(&self) -> Option<&str> {
        self.inner.bucket()
    }

    async fn check(&self) -> Result<()> {
        self.inner.check().await
    }

    async fn put_object(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<Option<String>> {
        match self.check(Op::Put, key) {
            Some((kind, true)) => {
                self.inner.put_object(key, body, meta).await?;
                Err(self.error("put", key, kind))
            }
            Some((kind, false)) => Err(self.error("put", key, kind)),
            None => self.inner.put_object(key, body, meta).await,
        }
    }

    async fn put_new(&self, key: &str, body: Bytes, content_type: &str) -> Result<bool> {
        match self.check(Op::Put, key) {
            Some((kind, true)) => {
                self.inner.put_new(key, body, content_type).await?;
                Err(self.error("put", key, kind))
            }
            Some((kind, false)) => Err(self.error("put", key, kind)),
            None => self.inner.put_new(key, body, content_type).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.check(Op::Get, key) {
            Some((kind, _)) => Err(self.error("get", key, kind)),
            None => self.inner.get(key).await,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.check(Op::Get, key) {
            Some((kind, _)) => Err(self.error("head", key, kind)),
            None => self.inner.head(key).await,
        }
    }

    async fn open(&self, key: &str) -> Result<Option<Download>> {
        match self.check(Op::Get, key) {
            Some((kind, _)) => Err(self.error("get", key, kind)),
            None => self.inner.open(key).await,
        }
    }

    async fn list_page(&self, prefix: &str, start_after: Option<&str>) -> Result<ListPage> {
        match self.check(Op::List, prefix) {
            Some((kind, _)) => Err(self.error("list", prefix, kind)),
            None => self.inner.list_page(prefix, start_after).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.check(Op::Delete, key) {
            Some((kind, _)) => Err(self.error("delete", key, kind)),
            None => self.inner.delete(key).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, Error)>> {
        let (mut refused, mut pass) = (Vec::new(), Vec::new());
        for key in keys {
            match self.check(Op::Delete, key) {
                Some((kind, _)) => refused.push((key.clone(), self.error("delete", key, kind))),
                None => pass.push(key.clone()),
            }
        }
        refused.extend(self.inner.delete_many(&pass).await?);
        Ok(refused)
    }

    async fn copy(&self, source: CopySource<'_>, key: &str) -> Result<Option<String>> {
        match self.check(Op::Copy, source.key) {
            Some((kind, _)) => Err(self.error("copy", key, kind)),
            None => self.inner.copy(source, key).await,
        }
    }

    async fn create_multipart(&self, key: &str, meta: &ObjectMeta) -> Result<String> {
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
        self.inner.upload_part(key, upload_id, number, body, sha256).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.inner.abort_multipart(key, upload_id).await
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        self.inner.list_multipart(prefix).await
    }
}
