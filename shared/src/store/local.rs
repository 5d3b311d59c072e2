//! A local directory as an object store: the CLI's default destination, and the way to keep a
//! copy on a laptop. Keys map to paths below the root; writes land under a temporary name and
//! are renamed into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    CompletedPart, CopySource, Download, ListPage, ObjectInfo, ObjectMeta, ObjectStore, PendingUpload,
};
use crate::error::{Error, Result};

/// Uploads in progress live here, below the root, out of `list`'s way.
const UPLOADS_DIR: &str = ".uploads";

/// A directory standing in for a bucket.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        // Keys come from our own naming, but a database name is user input: refuse anything
        // that could leave the root.
        if key.split('/').any(|seg| seg == ".." || seg == ".") || key.starts_with('/') {
            return Err(store_err("resolve", &self.root.join(key), format!("unsafe key {key:?}"), None));
        }
        Ok(self.root.join(key))
    }

    fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.root.join(UPLOADS_DIR).join(upload_id)
    }
}

fn store_err(op: &'static str, path: &Path, detail: String, source: Option<std::io::Error>) -> Error {
    Error::Store {
        op,
        location: path.display().to_string(),
        detail,
        source: source.map(|e| Box::new(e) as _),
        retryable: false,
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| store_err(op, path, e.to_string(), Some(e))
}

async fn write_atomically(path: &Path, body: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_err("create directory", parent))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, body).await.map_err(io_err("write", &tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(io_err("rename", path))
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn locate(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    async fn check(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.root).await.map_err(io_err("create directory", &self.root))
    }

    fn bucket(&self) -> Option<&str> {
        None
    }

    /// A directory keeps bytes only: the content type and user metadata are not stored.
    async fn put_object(&self, key: &str, body: Bytes, _meta: &ObjectMeta) -> Result<Option<String>> {
        write_atomically(&self.path(key)?, &body).await?;
        Ok(None)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: meta.len(),
                etag: None,
                last_modified: modified(&meta),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    async fn open(&self, key: &str) -> Result<Option<Download>> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let meta = file.metadata().await.map_err(io_err("stat", &path))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let info =
            ObjectInfo { key: key.to_owned(), size: meta.len(), etag: None, last_modified: modified(&meta) };
        Ok(Some(Download { info, meta: ObjectMeta::default(), body: Box::new(file) }))
    }

    async fn list_page(&self, prefix: &str, start_after: Option<&str>) -> Result<ListPage> {
        let (root, prefix, after) = (self.root.clone(), prefix.to_owned(), start_after.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &prefix, after.as_deref(), &mut out)
                .map_err(|(path, e)| io_err("list", &path)(e))?;
            let truncated = out.len() > PAGE;
            out.truncate(PAGE);
            Ok(ListPage { objects: out, truncated })
        })
        .await
        .map_err(|e| store_err("list", &self.root, format!("listing task failed: {e}"), None))?
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("delete", &path)(e)),
            _ => Ok(()),
        }
    }

    async fn copy(&self, source: CopySource<'_>, key: &str) -> Result<Option<String>> {
        if source.bucket.is_some() {
            return Err(store_err(
                "copy",
                &self.root.join(key),
                "a local directory cannot copy from a bucket server-side".into(),
                None,
            ));
        }
        let (from, to) = (self.path(source.key)?, self.path(key)?);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_err("create directory", parent))?;
        }
        let tmp = to.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::copy(&from, &tmp).await.map_err(io_err("copy", &from))?;
        tokio::fs::rename(&tmp, &to).await.map_err(io_err("rename", &to))?;
        Ok(None)
    }

    async fn create_multipart(&self, key: &str, _meta: &ObjectMeta) -> Result<String> {
        self.path(key)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&id);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err("start upload", &dir))?;
        tokio::fs::write(dir.join("key"), key).await.map_err(io_err("start upload", &dir))?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        _key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        _sha256: [u8; 32],
    ) -> Result<CompletedPart> {
        let path = self.upload_dir(upload_id).join(format!("{number:05}.part"));
        tokio::fs::write(&path, &body).await.map_err(io_err("upload part", &path))?;
        Ok(CompletedPart { number, etag: None, checksum_sha256: None })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>> {
        let target = self.path(key)?;
        let dir = self.upload_dir(upload_id);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_err("create directory", parent))?;
        }
        let tmp = target.with_extension(format!("tmp-{upload_id}"));
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io_err("complete upload", &tmp))?;
        for part in &parts {
            let path = dir.join(format!("{:05}.part", part.number));
            let mut f = tokio::fs::File::open(&path).await.map_err(io_err("complete upload", &path))?;
            tokio::io::copy(&mut f, &mut out).await.map_err(io_err("complete upload", &tmp))?;
        }
        out.sync_all().await.map_err(io_err("complete upload", &tmp))?;
        drop(out);
        tokio::fs::rename(&tmp, &target).await.map_err(io_err("complete upload", &target))?;
        tokio::fs::remove_dir_all(&dir).await.map_err(io_err("complete upload", &dir))?;
        Ok(None)
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        let dir = self.upload_dir(upload_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("abort upload", &dir)(e)),
            _ => Ok(()),
        }
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let base = self.root.join(UPLOADS_DIR);
        let mut out = Vec::new();
        let mut entries = match tokio::fs::read_dir(&base).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list uploads", &base)(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(io_err("list uploads", &base))? {
            let key = tokio::fs::read_to_string(entry.path().join("key")).await.unwrap_or_default();
            if key.starts_with(prefix) {
                let initiated = entry.metadata().await.ok().as_ref().and_then(modified);
                out.push(PendingUpload {
                    key,
                    upload_id: entry.file_name().to_string_lossy().into_owned(),
                    initiated,
                });
            }
        }
        Ok(out)
    }
}

/// Objects per listing page, as S3 returns them.
const PAGE: usize = 1000;

fn modified(meta: &std::fs::Metadata) -> Option<jiff::Timestamp> {
    meta.modified().ok().and_then(|t| jiff::Timestamp::try_from(t).ok())
}

/// Collects, in key order, up to `PAGE + 1` files below `root/dir` (`dir` is `""` or ends in
/// `/`) whose keys start with `prefix` and sort after `after`. Entries are visited sorted by
/// name with a `/` after directories' names, which is exactly the order of the keys they hold
/// (`a-b` < `a/…` < `a0`); a directory whose keys all sort before `after`, or outside
/// `prefix`, is not opened, so each page costs about one walk down to where it starts.
fn walk(
    root: &Path,
    dir: &str,
    prefix: &str,
    after: Option<&str>,
    out: &mut Vec<ObjectInfo>,
) -> std::result::Result<(), (PathBuf, std::io::Error)> {
    let path = root.join(dir);
    let entries = match std::fs::read_dir(&path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((path, e)),
    };
    let mut named = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| (path.clone(), e))?;
        let meta = entry.metadata().map_err(|e| (entry.path(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (dir.is_empty() && name == UPLOADS_DIR) || name.contains(".tmp-") {
            continue;
        }
        let key = if meta.is_dir() { format!("{dir}{name}/") } else { format!("{dir}{name}") };
        named.push((key, meta));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, meta) in named {
        if out.len() > PAGE {
            break;
        }
        if meta.is_dir() {
            let overlaps_prefix = key.starts_with(prefix) || prefix.starts_with(&key);
            let all_before = after.is_some_and(|a| a > key.as_str() && !a.starts_with(&key));
            if overlaps_prefix && !all_before {
                walk(root, &key, prefix, after, out)?;
            }
        } else if meta.is_file() && key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a) {
            let last_modified = modified(&meta);
            out.push(ObjectInfo { key, size: meta.len(), etag: None, last_modified });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multipart_round_trip_and_abort_leave_only_complete_objects() {
        let dir = std::env::temp_dir().join(format!("backstop-local-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        let id = store.create_multipart("a/b.bin", &ObjectMeta::default()).await.unwrap();
        let p1 = store.upload_part("a/b.bin", &id, 1, Bytes::from_static(b"hello "), [0; 32]).await.unwrap();
        let p2 = store.upload_part("a/b.bin", &id, 2, Bytes::from_static(b"world"), [0; 32]).await.unwrap();
        assert_eq!(store.list_multipart("a/").await.unwrap().len(), 1);
        store.complete_multipart("a/b.bin", &id, vec![p1, p2]).await.unwrap();
        assert_eq!(store.get("a/b.bin").await.unwrap().unwrap(), Bytes::from_static(b"hello world"));

        let id = store.create_multipart("a/c.bin", &ObjectMeta::default()).await.unwrap();
        store.upload_part("a/c.bin", &id, 1, Bytes::from_static(b"x"), [0; 32]).await.unwrap();
        store.abort_multipart("a/c.bin", &id).await.unwrap();
        let keys: Vec<_> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/b.bin"]);
        assert!(store.list_multipart("").await.unwrap().is_empty());
        assert!(store.path("../etc/passwd").is_err());
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;

    #[tokio::test]
    async fn pages_come_in_key_order_and_resume_after_a_key() {
        let dir = std::env::temp_dir().join(format!("backstop-list-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        // Names chosen so that directory order and key order differ ('-' < '/' < '0').
        let mut keys = vec!["a-b".to_owned(), "a/x".to_owned(), "a0".to_owned(), "b/c/d e".to_owned()];
        keys.extend((0..2100).map(|i| format!("many/{i:05}")));
        for k in &keys {
            store.put(k, Bytes::from_static(b"x"), "x").await.unwrap();
        }
        keys.sort();
        assert_eq!(store.list("").await.unwrap().into_iter().map(|o| o.key).collect::<Vec<_>>(), keys);
        let page = store.list_page("", Some("a/x")).await.unwrap();
        assert_eq!(page.objects[0].key, "a0");
        assert!(page.truncated && page.objects.len() == PAGE);
        let tail = store.list_page("many/", Some("many/02050")).await.unwrap();
        assert_eq!(tail.objects.len(), 49);
        assert!(!tail.truncated);
        assert_eq!(store.list("b/").await.unwrap()[0].key, "b/c/d e");
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }
}
