//! Streams any `AsyncRead` into a multipart upload with bounded memory: at most
//! `concurrency` parts in flight plus the one being filled, whatever the stream's length.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use super::{CompletedPart, ObjectMeta, ObjectStore};
use crate::config::{MIN_PART_SIZE, S3Settings};
use crate::error::{Error, Result, StoreKind};

/// S3's limits: parts per upload and bytes per part.
pub const MAX_PARTS: u64 = 10_000;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Without equal parts, the part size doubles after this many parts, so a stream much larger
/// than its estimate still fits in 10,000 parts (8 MiB start: ~8 TB, beyond S3's 5 TB).
const PARTS_PER_STEP: i32 = 1_000;

/// Chooses the size of each part. Pure, so the arithmetic is pinned by tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSizer {
    first: usize,
    equal: bool,
}

impl PartSizer {
    /// `estimate` is an upper bound of the stream's size where known (the database size for an
    /// uncompressed dump, which compression only shrinks).
    pub fn new(settings: &S3Settings, estimate: Option<u64>) -> Self {
        let mib = 1024 * 1024;
        // Leave 10% of the parts as head room for a wrong estimate.
        let needed = estimate.map_or(0, |e| e.div_ceil(MAX_PARTS * 9 / 10)) as usize;
        let first = settings.part_size.max(needed).max(MIN_PART_SIZE).div_ceil(mib) * mib;
        PartSizer { first: first.min(MAX_PART_SIZE), equal: settings.equal_parts }
    }

    /// The size of part `number` (1-based).
    pub fn size_of(&self, number: i32) -> usize {
        if self.equal {
            return self.first;
        }
        let doublings = ((number - 1).max(0) / PARTS_PER_STEP).min(10) as u32;
        self.first.saturating_mul(1 << doublings).min(MAX_PART_SIZE)
    }
}

/// What a finished upload wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStats {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    pub parts: u32,
    /// The stored object's ETag, where the store has one.
    pub etag: Option<String>,
}

/// A multipart upload being fed from a stream. Call [`StreamUpload::complete`] only once the
/// producer is known to have succeeded; on any doubt call [`StreamUpload::abort`].
///
/// The multipart upload starts with the second part: a stream that fits in one part (most
/// tables of a backup set) is written with one plain PUT at [`StreamUpload::complete`].
#[derive(Debug)]
pub struct StreamUpload {
    store: Arc<dyn ObjectStore>,
    key: String,
    meta: ObjectMeta,
    upload_id: Option<String>,
    /// The whole stream, when it ended within the first part.
    single: Option<Bytes>,
    sizer: PartSizer,
    concurrency: usize,
    in_flight: JoinSet<Result<CompletedPart>>,
    done: Vec<CompletedPart>,
    hasher: Sha256,
    next_part: i32,
    /// Bytes read from the stream so far.
    written: u64,
    /// The stream's expected length, when known: a small object's buffer is sized to it, not
    /// to a whole part.
    size_hint: Option<u64>,
}

impl StreamUpload {
    /// Prepares the upload; nothing is sent until the first part fills or the stream ends.
    pub fn begin(
        store: Arc<dyn ObjectStore>,
        key: &str,
        meta: ObjectMeta,
        sizer: PartSizer,
        concurrency: usize,
    ) -> Self {
        StreamUpload {
            store,
            key: key.to_owned(),
            meta,
            upload_id: None,
            single: None,
            sizer,
            concurrency: concurrency.max(1),
            in_flight: JoinSet::new(),
            done: Vec::new(),
            hasher: Sha256::new(),
            next_part: 1,
            written: 0,
            size_hint: None,
        }
    }

    /// Tells the upload how long the stream is expected to be (a copy of a listed object), so
    /// that the first buffer is no larger than needed; a longer stream is still read whole.
    pub fn with_size_hint(mut self, size: u64) -> Self {
        self.size_hint = Some(size);
        self
    }

    /// Reads `reader` to its end, uploading a part each time one fills.
    pub async fn copy_from<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> Result<()> {
        loop {
            let size = self.sizer.size_of(self.next_part);
            // One more byte than the hint, so that reaching the end is seen without growing.
            let capacity = match self.size_hint {
                Some(hint) if self.next_part == 1 => (hint.saturating_add(1)).min(size as u64) as usize,
                _ => size,
            };
            let mut buf = Vec::with_capacity(capacity);
            let filled = (&mut reader).take(size as u64).read_to_end(&mut buf).await.map_err(|e| {
                Error::io(format!("reading the stream for {}", self.store.locate(&self.key)), e)
            })?;
            self.written += filled as u64;
            let at_end = filled < size;
            self.hasher.update(&buf);
            if at_end && self.next_part == 1 {
                self.single = Some(Bytes::from(buf));
            } else if filled > 0 {
                self.send_part(Bytes::from(buf)).await?;
            }
            if at_end {
                return Ok(());
            }
        }
    }

    async fn send_part(&mut self, body: Bytes) -> Result<()> {
        while self.in_flight.len() >= self.concurrency {
            self.join_one().await?;
        }
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.store.create_multipart(&self.key, &self.meta).await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let (store, key, number) = (self.store.clone(), self.key.clone(), self.next_part);
        self.next_part += 1;
        self.in_flight.spawn(async move {
            let digest: [u8; 32] = Sha256::digest(&body).into();
            store.upload_part(&key, &id, number, body, digest).await
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined.map_err(|e| Error::Store {
                op: "upload part",
                location: self.store.locate(&self.key),
                detail: format!("upload task failed: {e}"),
                source: None,
                retryable: true,
                kind: StoreKind::Other,
            })??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Waits for the parts in flight and makes the object visible.
    pub async fn complete(mut self) -> Result<UploadStats> {
        if let Some(body) = self.single.take() {
            let etag = self.store.put_object(&self.key, body, &self.meta).await?;
            return Ok(UploadStats {
                key: self.key,
                bytes: self.written,
                sha256: hex::encode(self.hasher.finalize()),
                parts: 1,
                etag,
            });
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                self.abort().await;
                return Err(e);
            }
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.number);
        let count = parts.len() as u32;
        let id = self.upload_id.clone().expect("a stream longer than one part started the upload");
        let etag = match self.store.complete_multipart(&self.key, &id, parts).await {
            Ok(etag) => etag,
            Err(e) => {
                self.abort().await;
                return Err(e);
            }
        };
        Ok(UploadStats {
            key: self.key,
            bytes: self.written,
            sha256: hex::encode(self.hasher.finalize()),
            parts: count,
            etag,
        })
    }

    /// Cancels parts in flight and discards the upload, so no orphaned parts keep costing
    /// money. A failure to abort is logged: the caller is already failing with the first error.
    pub async fn abort(mut self) {
        self.in_flight.shutdown().await;
        let Some(id) = self.upload_id.take() else { return };
        if let Err(e) = self.store.abort_multipart(&self.key, &id).await {
            tracing::error!(key = %self.key, upload_id = %id, error = %e.report(),
                "could not abort the multipart upload; a bucket lifecycle rule should clean it up");
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn settings(part_mb: usize, equal: bool) -> S3Settings {
        S3Settings { part_size: part_mb * MIB, equal_parts: equal, ..S3Settings::default() }
    }

    #[rstest]
    #[case(8, false, None, 1, 8 * MIB)]
    #[case(8, false, None, 1_000, 8 * MIB)]
    #[case(8, false, None, 1_001, 16 * MIB)]
    #[case(8, false, None, 10_000, 4096 * MIB)]
    #[case(8, true, None, 10_000, 8 * MIB)]
    // 1 TiB estimate: parts must be ≥ 1 TiB / 9000 ≈ 116.5 MiB, rounded up to whole MiB.
    #[case(8, true, Some(1u64 << 40), 1, 117 * MIB)]
    #[case(8, true, Some(1u64 << 40), 9_999, 117 * MIB)]
    #[case(5, false, Some(100), 1, 5 * MIB)]
    fn part_sizes(
        #[case] part_mb: usize,
        #[case] equal: bool,
        #[case] estimate: Option<u64>,
        #[case] number: i32,
        #[case] expected: usize,
    ) {
        assert_eq!(PartSizer::new(&settings(part_mb, equal), estimate).size_of(number), expected);
    }

    #[test]
    fn growing_parts_cover_s3s_largest_object() {
        let sizer = PartSizer::new(&settings(8, false), None);
        let total: u64 = (1..=MAX_PARTS as i32).map(|n| sizer.size_of(n) as u64).sum();
        assert!(total >= 5 * (1u64 << 40), "{total}");
    }
}
