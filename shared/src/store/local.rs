//! A local directory as an object store: the CLI's default destination, and the way to keep a
//! copy on a laptop. Keys map to paths below the root; writes land under a temporary name and
//! are renamed into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    CompletedPart, CopySource, Download, ListPage, ObjectInfo, ObjectMeta, ObjectStore, PendingUpload,
};
use crate::error::{Error, Result, StoreKind};

/// Uploads in progress live here, below the root, out of `list`'s way.
/// Where multipart uploads are assembled. A `~` name no key can map to (see [`encode_segment`]).
const UPLOADS_DIR: &str = "~uploads";
/// Temporary files start with this (short, so a 250-byte name can still be written beside it).
const TMP_PREFIX: &str = "~tmp-";

/// How keys become file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// The backup store: every key maps to its own path, reversibly (`a//b`, `/x`, `x`, `..`
    /// included), and Backstop's own working files can never be mistaken for objects.
    Escaped,
    /// A media source or restore target: file names are the keys, as people see them; a key
    /// a file system cannot hold (an empty, `.` or `..` segment) is refused, naming it.
    Verbatim,
}

/// A directory standing in for a bucket.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    names: Names,
    /// A restore target: nothing is written through a symbolic link below the root (a
    /// symlinked subdirectory would send restored files outside the target).
    confined: bool,
}

/// A key segment as a file name: an empty, `.` or `..` segment, or one starting with `~`,
/// gets a `~` in front; anything else is itself. Reversible, and no key maps to a name that
/// starts with `~` followed by anything else (`~uploads`, `~tmp-…` are Backstop's own).
fn encode_segment(seg: &str) -> std::borrow::Cow<'_, str> {
    if seg.is_empty() || seg == "." || seg == ".." || seg.starts_with('~') {
        format!("~{seg}").into()
    } else {
        seg.into()
    }
}

/// The key segment a file name stands for; `None` for Backstop's own working files.
fn decode_name(name: &str) -> Option<&str> {
    match name.strip_prefix('~') {
        None => Some(name),
        Some(rest) if rest.is_empty() || rest == "." || rest == ".." || rest.starts_with('~') => Some(rest),
        Some(_) => None,
    }
}

impl LocalStore {
    /// The backup store in a directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into(), names: Names::Escaped, confined: false }
    }

    /// A directory whose file names are the keys themselves: a media source (listed whole,
    /// symbolic links followed) or a media restore target.
    pub fn verbatim(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into(), names: Names::Verbatim, confined: false }
    }

    /// A media restore target: file names are the keys, and no write follows a symbolic link
    /// below the root (parents are created one by one, each checked to be a real directory).
    pub fn restore_target(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into(), names: Names::Verbatim, confined: true }
    }

    /// Creates the directories above `path`; in a confined store, one at a time below the
    /// root, refusing any that is a symbolic link (or not a directory).
    async fn parents(&self, path: &Path) -> Result<()> {
        let Some(parent) = path.parent() else { return Ok(()) };
        if !self.confined {
            return tokio::fs::create_dir_all(parent).await.map_err(io_err("create directory", parent));
        }
        tokio::fs::create_dir_all(&self.root).await.map_err(io_err("create directory", &self.root))?;
        let below = parent
            .strip_prefix(&self.root)
            .map_err(|_| store_err("resolve", path, "outside the target directory".into(), None))?;
        let mut at = self.root.clone();
        for part in below.components() {
            at.push(part);
            match tokio::fs::symlink_metadata(&at).await {
                Ok(m) if m.is_dir() => {}
                Ok(m) => {
                    let what = if m.file_type().is_symlink() { "a symbolic link" } else { "not a directory" };
                    return Err(store_err(
                        "write",
                        &at,
                        format!("is {what}: a restore never writes through it"),
                        None,
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match tokio::fs::create_dir(&at).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err("create directory", &at)(e)),
                    }
                }
                Err(e) => return Err(io_err("stat", &at)(e)),
            }
        }
        Ok(())
    }

    /// Writes `body` to `path` through a temporary file beside it, renamed into place (a
    /// rename replaces a symbolic link itself, never what it points to).
    async fn write_atomically(&self, path: &Path, body: &[u8]) -> Result<()> {
        self.parents(path).await?;
        let tmp = temporary(path);
        tokio::fs::write(&tmp, body).await.map_err(io_err("write", &tmp))?;
        tokio::fs::rename(&tmp, path).await.map_err(io_err("rename", path))
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        match self.names {
            Names::Escaped => {
                let encoded: Vec<_> = key.split('/').map(encode_segment).collect();
                Ok(self.root.join(encoded.join("/")))
            }
            Names::Verbatim => {
                if key.split('/').any(|seg| seg.is_empty() || seg == ".." || seg == ".") {
                    return Err(store_err(
                        "resolve",
                        &self.root,
                        format!("the key {key:?} cannot be a file name here (an empty, `.` or `..` segment)"),
                        None,
                    ));
                }
                Ok(self.root.join(key))
            }
        }
    }

    fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.root.join(UPLOADS_DIR).join(upload_id)
    }
}

/// A temporary file beside `path`: a name of its own, short whatever `path`'s length.
fn temporary(path: &Path) -> PathBuf {
    let name = format!("{TMP_PREFIX}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    path.parent().map_or_else(|| PathBuf::from(&name), |p| p.join(&name))
}

fn store_err(op: &'static str, path: &Path, detail: String, source: Option<std::io::Error>) -> Error {
    let kind = match source.as_ref().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::NotFound) => StoreKind::NotFound,
        Some(std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) => {
            StoreKind::Denied
        }
        _ => StoreKind::Other,
    };
    Error::Store {
        op,
        location: path.display().to_string(),
        detail,
        source: source.map(|e| Box::new(e) as _),
        retryable: false,
        kind,
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| store_err(op, path, e.to_string(), Some(e))
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn locate(&self, key: &str) -> String {
        self.path(key).unwrap_or_else(|_| self.root.join(key)).display().to_string()
    }

    async fn check(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.root).await.map_err(io_err("create directory", &self.root))
    }

    fn bucket(&self) -> Option<&str> {
        None
    }

    /// A directory keeps bytes only: the content type and user metadata are not stored.
    async fn put_object(&self, key: &str, body: Bytes, _meta: &ObjectMeta) -> Result<Option<String>> {
        self.write_atomically(&self.path(key)?, &body).await?;
        Ok(None)
    }

    async fn put_new(&self, key: &str, body: Bytes, _content_type: &str) -> Result<bool> {
        use tokio::io::AsyncWriteExt;
        let path = self.path(key)?;
        self.parents(&path).await?;
        let mut file = match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err("create", &path)(e)),
        };
        file.write_all(&body).await.map_err(io_err("write", &path))?;
        file.sync_all().await.map_err(io_err("write", &path))?;
        Ok(true)
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
        let names = self.names;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            use std::os::unix::fs::MetadataExt;
            let walk = Walk { names, prefix: &prefix, after: after.as_deref() };
            let mut ancestors: Vec<(u64, u64)> =
                std::fs::metadata(&root).map(|m| vec![(m.dev(), m.ino())]).unwrap_or_default();
            walk.dir(&root, "", &mut ancestors, &mut out).map_err(|(path, e)| io_err("list", &path)(e))?;
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
        self.parents(&to).await?;
        let tmp = temporary(&to);
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
        self.parents(&target).await?;
        let tmp = temporary(&target);
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
        // The last upload leaves no empty working directory behind (a restore target stays clean).
        let _ = tokio::fs::remove_dir(self.root.join(UPLOADS_DIR)).await;
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

/// One listing walk: collects, in key order, up to `PAGE + 1` files whose keys start with
/// `prefix` and sort after `after`. Entries are visited sorted by key with a `/` after
/// directories' keys, which is exactly the order of the keys they hold (`a-b` < `a/…` < `a0`);
/// a directory whose keys all sort before `after`, or outside `prefix`, is not opened, so each
/// page costs about one walk down to where it starts.
///
/// Symbolic links are followed (a symlinked `avatars/` on another disk is media too); a link
/// back to a directory being walked is a loop and is not entered again, and a dangling link is
/// said in the log. A file that vanishes between the directory read and its stat (an app's
/// temporary upload) is simply not in this listing.
struct Walk<'a> {
    names: Names,
    prefix: &'a str,
    after: Option<&'a str>,
}

type WalkError = (PathBuf, std::io::Error);

impl Walk<'_> {
    /// Walks `path`, the directory holding keys `dir…` (`dir` is `""` or ends in `/`);
    /// `ancestors` are the (device, inode) of the directories above, for loop detection.
    fn dir(
        &self,
        path: &Path,
        dir: &str,
        ancestors: &mut Vec<(u64, u64)>,
        out: &mut Vec<ObjectInfo>,
    ) -> std::result::Result<(), WalkError> {
        use std::os::unix::fs::MetadataExt;
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err((path.to_owned(), e)),
        };
        let mut named = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| (path.to_owned(), e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                tracing::warn!(path = %entry.path().display(), "a file name that is not UTF-8 cannot be a key: left out");
                continue;
            };
            let name = match self.names {
                Names::Escaped => match decode_name(name) {
                    Some(n) => n.to_owned(),
                    None => continue,
                },
                Names::Verbatim => name.to_owned(),
            };
            let meta = match std::fs::metadata(entry.path()) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.file_type().is_symlink()) {
                        tracing::warn!(path = %entry.path().display(), "a dangling symbolic link: left out");
                    }
                    continue;
                }
                Err(e) => return Err((entry.path(), e)),
            };
            let key = if meta.is_dir() { format!("{dir}{name}/") } else { format!("{dir}{name}") };
            named.push((key, entry.path(), meta));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, path, meta) in named {
            if out.len() > PAGE {
                break;
            }
            if meta.is_dir() {
                let overlaps_prefix = key.starts_with(self.prefix) || self.prefix.starts_with(&key);
                let all_before = self.after.is_some_and(|a| a > key.as_str() && !a.starts_with(&key));
                if !overlaps_prefix || all_before {
                    continue;
                }
                let id = (meta.dev(), meta.ino());
                if ancestors.contains(&id) {
                    tracing::warn!(path = %path.display(), "a symbolic link back to a directory above it: not walked twice");
                    continue;
                }
                ancestors.push(id);
                let walked = self.dir(&path, &key, ancestors, out);
                ancestors.pop();
                walked?;
            } else if meta.is_file()
                && key.starts_with(self.prefix)
                && self.after.is_none_or(|a| key.as_str() > a)
            {
                let last_modified = modified(&meta);
                out.push(ObjectInfo { key, size: meta.len(), etag: None, last_modified });
            }
        }
        Ok(())
    }
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
        assert!(store.path("../etc/passwd").unwrap().starts_with(&dir), "no key leaves the root");
        assert!(LocalStore::verbatim(&dir).path("../etc/passwd").is_err());
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

#[cfg(test)]
mod naming_tests {
    use super::*;

    fn temp(label: &str) -> PathBuf {
        std::env::temp_dir().join(format!("backstop-{label}-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn keys_a_file_system_would_merge_stay_apart_and_list_as_written() {
        let dir = temp("collide");
        let store = LocalStore::new(&dir);
        let keys = [
            "m/current/x",
            "m/current//x",
            "m/a/b",
            "m/a//b",
            "m/~home",
            "m/..",
            "m/.",
            "m/~uploads",
            "m/~tmp-1234",
            "m/.uploads",
            "m/report.tmp-1",
        ];
        for (i, k) in keys.iter().enumerate() {
            store.put(k, Bytes::from(format!("{i}")), "x").await.unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(store.get(k).await.unwrap().unwrap(), Bytes::from(format!("{i}")), "{k}");
        }
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        want.sort();
        let listed: Vec<String> = store.list("m/").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(listed, want);
        // Deleting one never touches the other.
        store.delete("m/current//x").await.unwrap();
        assert!(store.get("m/current/x").await.unwrap().is_some());
        assert!(store.get("m/current//x").await.unwrap().is_none());
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }

    #[tokio::test]
    async fn a_name_of_250_bytes_is_written_whole() {
        let dir = temp("long");
        let name = "é".repeat(125);
        assert_eq!(name.len(), 250);
        for store in [LocalStore::new(&dir), LocalStore::verbatim(&dir)] {
            let key = format!("d/{name}");
            store.put(&key, Bytes::from_static(b"long"), "x").await.unwrap();
            let id = store.create_multipart(&key, &ObjectMeta::default()).await.unwrap();
            let p = store.upload_part(&key, &id, 1, Bytes::from_static(b"parts"), [0; 32]).await.unwrap();
            store.complete_multipart(&key, &id, vec![p]).await.unwrap();
            assert_eq!(store.get(&key).await.unwrap().unwrap(), Bytes::from_static(b"parts"));
        }
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }

    #[tokio::test]
    async fn a_source_directory_follows_symbolic_links_and_stops_at_loops() {
        let dir = temp("links");
        let elsewhere = temp("links-target");
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::create_dir_all(elsewhere.join("2026")).unwrap();
        std::fs::write(elsewhere.join("2026/a.png"), b"a").unwrap();
        std::fs::write(dir.join("media/real.txt"), b"r").unwrap();
        std::fs::write(dir.join(".uploads"), b"u").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("media/avatars")).unwrap();
        std::os::unix::fs::symlink(dir.join("media/real.txt"), dir.join("media/link.txt")).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("media/loop")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("media/dangling")).unwrap();
        let source = LocalStore::verbatim(&dir);
        let keys: Vec<String> = source.list("").await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, [".uploads", "media/avatars/2026/a.png", "media/link.txt", "media/real.txt"]);
        tokio::fs::remove_dir_all(dir).await.unwrap();
        tokio::fs::remove_dir_all(elsewhere).await.unwrap();
    }

    #[tokio::test]
    async fn files_vanishing_while_a_directory_is_listed_do_not_fail_the_listing() {
        let dir = temp("vanish");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("keep.txt"), b"k").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let p = dir.join(format!("tmp/upload-{}", i % 50));
                    let _ = std::fs::write(&p, b"x");
                    let _ = std::fs::remove_file(&p);
                    i += 1;
                }
            })
        };
        let source = LocalStore::verbatim(&dir);
        for _ in 0..200 {
            let keys = source.list("").await.unwrap();
            assert!(keys.iter().any(|o| o.key == "keep.txt"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }

    #[tokio::test]
    async fn a_restore_target_never_writes_through_a_symbolic_link() {
        let dir = temp("confined");
        let outside = temp("confined-outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("a.png"), b"precious").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("avatars")).unwrap();
        let target = LocalStore::restore_target(&dir);
        let err = target.put("avatars/a.png", Bytes::from_static(b"restored"), "x").await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(outside.join("a.png")).unwrap(), b"precious");
        // A file that is a link is replaced by the restored file, not written through.
        std::fs::write(outside.join("b.png"), b"precious").unwrap();
        std::os::unix::fs::symlink(outside.join("b.png"), dir.join("b.png")).unwrap();
        target.put("b.png", Bytes::from_static(b"restored"), "x").await.unwrap();
        assert_eq!(std::fs::read(outside.join("b.png")).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(dir.join("b.png")).unwrap().file_type().is_symlink());
        target.put("new/deep/c.png", Bytes::from_static(b"c"), "x").await.unwrap();
        assert_eq!(std::fs::read(dir.join("new/deep/c.png")).unwrap(), b"c");
        tokio::fs::remove_dir_all(dir).await.unwrap();
        tokio::fs::remove_dir_all(outside).await.unwrap();
    }
}
