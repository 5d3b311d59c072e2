//! A local directory as an object store: the CLI's default destination, and the way to keep a
//! copy on a laptop. Keys map to paths below the root; writes land under a temporary name and
//! are renamed into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CompletedPart, ObjectInfo, ObjectStore, PendingUpload};
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

    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<()> {
        write_atomically(&self.path(key)?, &body).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    async fn get_stream(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path).await.map_err(io_err("open", &path))?;
        Ok(Box::new(file))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_err("list", &dir))? {
                let path = entry.path();
                let meta = entry.metadata().await.map_err(io_err("stat", &path))?;
                let rel = path.strip_prefix(&self.root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                if meta.is_dir() {
                    if rel != UPLOADS_DIR {
                        dirs.push(path);
                    }
                } else if rel.starts_with(prefix) && !rel.contains(".tmp-") {
                    out.push(ObjectInfo { key: rel, size: meta.len() });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("delete", &path)(e)),
            _ => Ok(()),
        }
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> Result<String> {
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

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<()> {
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
        tokio::fs::remove_dir_all(&dir).await.map_err(io_err("complete upload", &dir))
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
                out.push(PendingUpload { key, upload_id: entry.file_name().to_string_lossy().into_owned() });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multipart_round_trip_and_abort_leave_only_complete_objects() {
        let dir = std::env::temp_dir().join(format!("backstop-local-{}", uuid::Uuid::new_v4()));
        let store = LocalStore::new(&dir);
        let id = store.create_multipart("a/b.bin", "x").await.unwrap();
        let p1 = store.upload_part("a/b.bin", &id, 1, Bytes::from_static(b"hello "), [0; 32]).await.unwrap();
        let p2 = store.upload_part("a/b.bin", &id, 2, Bytes::from_static(b"world"), [0; 32]).await.unwrap();
        assert_eq!(store.list_multipart("a/").await.unwrap().len(), 1);
        store.complete_multipart("a/b.bin", &id, vec![p1, p2]).await.unwrap();
        assert_eq!(store.get("a/b.bin").await.unwrap().unwrap(), Bytes::from_static(b"hello world"));

        let id = store.create_multipart("a/c.bin", "x").await.unwrap();
        store.upload_part("a/c.bin", &id, 1, Bytes::from_static(b"x"), [0; 32]).await.unwrap();
        store.abort_multipart("a/c.bin", &id).await.unwrap();
        let keys: Vec<_> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/b.bin"]);
        assert!(store.list_multipart("").await.unwrap().is_empty());
        assert!(store.path("../etc/passwd").is_err());
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }
}
