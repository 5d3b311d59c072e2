//! Media snapshots: what the mirror held after a run, one JSON line per object in key order,
//! zstd-compressed, streamed in and out so that no run holds the whole set. The summary, a
//! small JSON object written after the entries, is the snapshot's commit marker (as a
//! manifest is a backup's): entries without a summary are an interrupted run's and are ignored.
//!
//! ```text
//! {"snapshot":1,"run_id":"…","taken":"…","source":"s3://uploads/media/"}   header
//! {"k":"a.jpg","s":1234,"e":"9b2c…","m":"2026-11-20T…Z","v":"2026…-ab12","d":"9b2c…"}
//! {"end":{"objects":1,"bytes":1234}}                                      trailer
//! ```
//!
//! `v` names the run that copied this version in: its bytes are at `media/current/{k}` while
//! that version is current, and at `media/trash/{v}/{k}` once replaced or deleted, so a
//! snapshot stays readable without ever being rewritten.

use std::sync::Arc;

use async_compression::tokio::bufread::ZstdDecoder;
use async_compression::tokio::write::ZstdEncoder;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

use crate::config::S3Settings;
use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::store::{ObjectMeta, ObjectStore, PartSizer, StreamUpload, UploadStats};

/// Snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One object as the mirror holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key in the source (relative to the source's prefix).
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "s")]
    pub size: u64,
    /// The source's ETag when the version was copied.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The source's last-modified time (what tells a directory's files apart).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<Timestamp>,
    /// The run that copied this version in.
    #[serde(rename = "v")]
    pub version: String,
    /// The mirror copy's ETag, to tell whether `current` still holds this version.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub stored_etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    snapshot: u32,
    run_id: String,
    taken: Timestamp,
    source: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Entry(Entry),
    End { end: Totals },
}

/// Counts of what a run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub new: u64,
    pub modified: u64,
    pub deleted: u64,
    pub failed: u64,
}

/// A snapshot's summary: written last, it is what makes the snapshot exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: u32,
    pub run_id: String,
    pub env: String,
    pub source: String,
    /// When the run began listing the source: the moment the snapshot stands for.
    pub taken: Timestamp,
    pub finished: Timestamp,
    pub snapshot_key: String,
    pub objects: u64,
    pub bytes: u64,
    pub changes: Changes,
    /// Changes left for the next run (a deadline stop); 0 when the mirror caught up.
    pub remaining: u64,
}

/// Streams entries into a compressed snapshot object (multipart, bounded memory).
#[derive(Debug)]
pub struct SnapshotWriter {
    key: String,
    encoder: ZstdEncoder<DuplexStream>,
    upload: JoinHandle<(StreamUpload, Result<()>)>,
    totals: Totals,
    last_key: Option<String>,
}

impl SnapshotWriter {
    /// Starts the snapshot of run `run_id` (taken at `taken`) at `key`.
    pub async fn begin(
        store: Arc<dyn ObjectStore>,
        key: &str,
        s3: &S3Settings,
        run_id: &str,
        taken: Timestamp,
        source: &str,
    ) -> Result<Self> {
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let mut upload = StreamUpload::begin(
            store,
            key,
            ObjectMeta::typed("application/zstd"),
            PartSizer::new(&S3Settings { equal_parts: false, ..s3.clone() }, None),
            1,
        );
        let upload = tokio::spawn(async move {
            let r = upload.copy_from(reader).await;
            (upload, r)
        });
        let mut w = SnapshotWriter {
            key: key.to_owned(),
            encoder: ZstdEncoder::new(writer),
            upload,
            totals: Totals::default(),
            last_key: None,
        };
        let header =
            Header { snapshot: SNAPSHOT_FORMAT, run_id: run_id.to_owned(), taken, source: source.to_owned() };
        w.line(&serde_json::to_vec(&header).expect("headers serialize")).await?;
        Ok(w)
    }

    async fn line(&mut self, json: &[u8]) -> Result<()> {
        let ctx = || format!("writing media snapshot {}", self.key);
        self.encoder.write_all(json).await.map_err(|e| Error::io(ctx(), e))?;
        self.encoder.write_all(b"\n").await.map_err(|e| Error::io(ctx(), e))
    }

    /// Appends an entry; keys must come in strictly increasing order (readers merge on it).
    pub async fn push(&mut self, entry: &Entry) -> Result<()> {
        if self.last_key.as_deref().is_some_and(|last| last >= entry.key.as_str()) {
            return Err(Error::Store {
                op: "write snapshot",
                location: self.key.clone(),
                detail: format!("entry {:?} is out of key order", entry.key),
                source: None,
                retryable: false,
                kind: StoreKind::Other,
            });
        }
        self.line(&serde_json::to_vec(entry).expect("entries serialize")).await?;
        self.totals.objects += 1;
        self.totals.bytes += entry.size;
        self.last_key = Some(entry.key.clone());
        Ok(())
    }

    /// Objects and bytes so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Writes the trailer and completes the object.
    pub async fn finish(mut self) -> Result<(UploadStats, Totals)> {
        let totals = self.totals;
        let trailer = serde_json::json!({ "end": totals });
        let written = async {
            self.line(trailer.to_string().as_bytes()).await?;
            self.encoder.shutdown().await.map_err(|e| Error::io(format!("finishing {}", self.key), e))
        }
        .await;
        let (upload, read) = (&mut self.upload).await.map_err(|e| Error::Store {
            op: "write snapshot",
            location: self.key.clone(),
            detail: format!("upload task failed: {e}"),
            source: None,
            retryable: true,
            kind: StoreKind::Other,
        })?;
        match written.and(read) {
            Ok(()) => Ok((upload.complete().await?, totals)),
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// Discards the snapshot (nothing of it stays).
    pub async fn abort(mut self) {
        let _ = self.encoder.shutdown().await;
        drop(self.encoder);
        if let Ok((upload, _)) = self.upload.await {
            upload.abort().await;
        }
    }
}

type EntryLines = Lines<BufReader<ZstdDecoder<BufReader<Box<dyn tokio::io::AsyncRead + Unpin + Send>>>>>;

/// Reads a snapshot's entries in key order, one at a time.
pub struct SnapshotReader {
    key: String,
    lines: EntryLines,
    pub run_id: String,
    pub taken: Timestamp,
    done: bool,
    seen: Totals,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("key", &self.key)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    /// Opens the snapshot at `key` and reads its header.
    pub async fn open(store: &dyn ObjectStore, key: &str) -> Result<Self> {
        let body = store.get_stream(key).await?;
        let mut lines = BufReader::new(ZstdDecoder::new(BufReader::new(body))).lines();
        let bad = |detail: String| Error::Store {
            op: "read snapshot",
            location: store.locate(key),
            detail,
            source: None,
            retryable: false,
            kind: StoreKind::Other,
        };
        let first = lines
            .next_line()
            .await
            .map_err(|e| bad(format!("unreadable: {e}")))?
            .ok_or_else(|| bad("empty".into()))?;
        let header: Header =
            serde_json::from_str(&first).map_err(|e| bad(format!("no snapshot header: {e}")))?;
        if header.snapshot > SNAPSHOT_FORMAT {
            return Err(bad(format!(
                "snapshot format {} is newer than this Backstop ({SNAPSHOT_FORMAT})",
                header.snapshot
            )));
        }
        Ok(SnapshotReader {
            key: store.locate(key),
            lines,
            run_id: header.run_id,
            taken: header.taken,
            done: false,
            seen: Totals::default(),
        })
    }

    /// The next entry; `None` after the trailer. A snapshot cut short (no trailer, or totals
    /// that differ from the entries) is an error, never a shorter set.
    pub async fn next(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        let bad = |detail: String| Error::Store {
            op: "read snapshot",
            location: self.key.clone(),
            detail,
            source: None,
            retryable: false,
            kind: StoreKind::Other,
        };
        let Some(line) = self.lines.next_line().await.map_err(|e| bad(format!("unreadable: {e}")))? else {
            return Err(bad("ends without its trailer: the snapshot is truncated".into()));
        };
        match serde_json::from_str::<Line>(&line).map_err(|e| bad(format!("malformed line: {e}")))? {
            Line::Entry(e) => {
                self.seen.objects += 1;
                self.seen.bytes += e.size;
                Ok(Some(e))
            }
            Line::End { end } => {
                self.done = true;
                if end != self.seen {
                    return Err(bad(format!("trailer says {end:?}, entries hold {:?}", self.seen)));
                }
                Ok(None)
            }
        }
    }
}

/// Every snapshot's summary under `prefix`, oldest first (keys sort by time).
pub async fn list_summaries(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<Summary>> {
    let listed = list_all_summaries(store, prefix).await?;
    // One unreadable summary must not hide the others; it is reported and skipped.
    for (key, e) in &listed.unreadable {
        tracing::warn!(key = %key, error = %e.report(), "skipping an unreadable media snapshot summary");
    }
    Ok(listed.readable)
}

/// Every summary under `prefix`: those read (oldest first), and those that could not be read
/// with why. Retention needs the second list: a snapshot it cannot read may list trash.
#[derive(Debug, Default)]
pub struct Summaries {
    pub readable: Vec<Summary>,
    pub unreadable: Vec<(String, Error)>,
}

/// Lists and reads every summary, keeping the unreadable ones (a summary deleted meanwhile is
/// simply gone).
pub async fn list_all_summaries(store: &dyn ObjectStore, prefix: &str) -> Result<Summaries> {
    let mut out = Summaries::default();
    for obj in store.list(&keys::media_snapshots_scope(prefix)).await? {
        if keys::is_media_summary(&obj.key) {
            match read_summary(store, &obj.key).await {
                Ok(Some(s)) => out.readable.push(s),
                Ok(None) => {}
                Err(e) => out.unreadable.push((obj.key, e)),
            }
        }
    }
    out.readable.sort_by(|a, b| a.taken.cmp(&b.taken).then_with(|| a.run_id.cmp(&b.run_id)));
    Ok(out)
}

/// The newest snapshot's summary, if any snapshot is complete.
pub async fn newest_summary(store: &dyn ObjectStore, prefix: &str) -> Result<Option<Summary>> {
    Ok(list_summaries(store, prefix).await?.pop())
}

async fn read_summary(store: &dyn ObjectStore, key: &str) -> Result<Option<Summary>> {
    let Some(bytes) = store.get(key).await? else { return Ok(None) };
    let summary: Summary = serde_json::from_slice(&bytes).map_err(|e| Error::Store {
        op: "read",
        location: store.locate(key),
        detail: format!("not a media snapshot summary: {e}"),
        source: None,
        retryable: false,
        kind: StoreKind::Other,
    })?;
    if summary.format > SNAPSHOT_FORMAT {
        return Err(Error::Store {
            op: "read",
            location: store.locate(key),
            detail: format!("summary format {} is newer than this Backstop", summary.format),
            source: None,
            retryable: false,
            kind: StoreKind::Other,
        });
    }
    Ok(Some(summary))
}

/// Writes the summary (the commit marker) beside its snapshot.
pub async fn write_summary(store: &dyn ObjectStore, summary: &Summary) -> Result<String> {
    let key = keys::media_summary(&summary.snapshot_key);
    let body = serde_json::to_vec_pretty(summary).expect("summaries serialize");
    store.put(&key, body.into(), "application/json").await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    fn entry(key: &str, size: u64) -> Entry {
        Entry {
            key: key.into(),
            size,
            etag: Some("e".into()),
            modified: None,
            version: "r1".into(),
            stored_etag: None,
        }
    }

    #[tokio::test]
    async fn entries_round_trip_and_a_cut_snapshot_is_an_error() {
        let dir = std::env::temp_dir().join(format!("backstop-snap-{}", uuid::Uuid::new_v4()));
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&dir));
        let taken = Timestamp::now();
        let mut w =
            SnapshotWriter::begin(store.clone(), "s.jsonl.zst", &S3Settings::default(), "r1", taken, "src")
                .await
                .unwrap();
        let entries: Vec<Entry> = (0..5000).map(|i| entry(&format!("k/{i:06} ü#?"), i)).collect();
        for e in &entries {
            w.push(e).await.unwrap();
        }
        assert!(w.push(&entry("a", 1)).await.is_err(), "out of order is refused");
        let (_, totals) = w.finish().await.unwrap();
        assert_eq!(totals.objects, 5000);

        let mut r = SnapshotReader::open(store.as_ref(), "s.jsonl.zst").await.unwrap();
        assert_eq!(r.run_id, "r1");
        let mut read = Vec::new();
        while let Some(e) = r.next().await.unwrap() {
            read.push(e);
        }
        assert_eq!(read, entries);

        // The same snapshot without its trailer: an error, not 4,999 objects.
        let plain = {
            let bytes = store.get("s.jsonl.zst").await.unwrap().unwrap();
            zstd::decode_all(&bytes[..]).unwrap()
        };
        let cut = &plain[..plain[..plain.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1];
        store.put("cut.jsonl.zst", zstd::encode_all(cut, 3).unwrap().into(), "x").await.unwrap();
        let mut r = SnapshotReader::open(store.as_ref(), "cut.jsonl.zst").await.unwrap();
        let err = loop {
            match r.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a cut snapshot read as complete"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("truncated"), "{err}");
        tokio::fs::remove_dir_all(dir).await.unwrap();
    }
}
