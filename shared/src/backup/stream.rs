//! Stream plumbing for dumps: a reader that counts bytes and keeps the stream's tail (to check
//! the dump ended where it should), the compressor, on a thread of its own, and
//! [`store_compressed`], which both engines write every object through.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::task::JoinSet;
use tokio_util::io::SyncIoBridge;

use super::ObjectEntry;
use super::options::{Compression, Level};
use crate::App;
use crate::config::{MIN_PART_SIZE, S3Settings};
use crate::error::{Error, Result};
use crate::store::{PartSizer, StreamUpload};

/// Bytes of the tail kept for the end-of-dump check.
const TAIL: usize = 256;

/// Counts what passes through and remembers the last bytes.
#[derive(Debug)]
pub struct Tap<R> {
    inner: R,
    count: Arc<AtomicU64>,
    tail: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<R> Tap<R> {
    pub fn new(inner: R) -> Self {
        Tap { inner, count: Arc::default(), tail: Arc::default() }
    }

    /// Shared counter of bytes read.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }

    /// Shared view of the last bytes read.
    pub fn tail(&self) -> Arc<std::sync::Mutex<Vec<u8>>> {
        self.tail.clone()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Tap<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            self.count.fetch_add(new.len() as u64, Ordering::Relaxed);
            let mut tail = self.tail.lock().expect("tail lock");
            tail.extend_from_slice(&new[new.len().saturating_sub(TAIL)..]);
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
        }
        poll
    }
}

/// Uncompressed bytes the compressor takes per read, and the pipes' buffers.
pub const CHUNK: usize = 256 * 1024;

/// zstd's multi-threaded mode, one worker per stream, 1 MiB jobs: the format `zstd -T1`
/// writes, a few MB of memory per stream, and on SQL dumps ~1.5% smaller and faster than the
/// single-threaded mode (scripts/bench.sh; BENCHMARKS.md).
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// What [`Level::Auto`] decides on: the first bytes of a stream (one zstd job).
const AUTO_SAMPLE: usize = ZSTD_JOB_SIZE as usize;
/// zstd levels [`Level::Auto`] tries, cheapest first, before the default level.
const AUTO_CHEAPER: [i32; 2] = [1, 2];

/// The level [`Level::Auto`] compresses a stream with, from a sample of its start: the cheapest
/// level whose output is at least 2% smaller than the default level's, else the default.
///
/// zstd's faster levels look for longer matches, and on random-looking text (hex digests,
/// tokens, UUIDs: common in web applications' tables) they find fewer useless short ones, so
/// they are both faster and smaller there; on prose, code and JSON they are 4–8% larger. The
/// margin keeps a sample that is not quite like the rest of the stream from making it larger.
pub fn auto_level(sample: &[u8]) -> std::io::Result<i32> {
    let default = Compression::Zstd.default_level();
    if sample.is_empty() {
        return Ok(default);
    }
    let reference = zstd::bulk::compress(sample, default)?.len();
    for level in AUTO_CHEAPER {
        if zstd::bulk::compress(sample, level)?.len() * 50 <= reference * 49 {
            return Ok(level);
        }
    }
    Ok(default)
}

/// A compressor on a thread of its own (the codecs block, at high levels for long: on the
/// async runtime they would starve the deadline timer and the uploads). Write the dump into
/// `input` and shut it down; read the compressed stream from `output`; then [`Compressor::finish`]
/// says whether the stream is whole.
#[derive(Debug)]
pub struct Compressor {
    pub input: DuplexStream,
    pub output: DuplexStream,
    pub done: CompressorDone,
}

/// The compressor thread's verdict.
#[derive(Debug)]
pub struct CompressorDone(tokio::task::JoinHandle<std::io::Result<Compressed>>);

/// What a compressor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed {
    /// Uncompressed bytes read.
    pub read: u64,
    /// The level it compressed with.
    pub level: i32,
}

impl Compressor {
    pub fn spawn(compression: Compression, level: Level) -> Self {
        let (input, from_producer) = tokio::io::duplex(CHUNK);
        let (to_consumer, output) = tokio::io::duplex(CHUNK);
        // The bridges block on the runtime from the blocking thread; `io::copy` reads through
        // the BufReader's buffer, so each read takes a whole chunk.
        let mut reader = std::io::BufReader::with_capacity(CHUNK, SyncIoBridge::new(from_producer));
        let writer = SyncIoBridge::new(to_consumer);
        let thread = tokio::task::spawn_blocking(move || {
            // The sample Auto decides on is also the start of the stream.
            let mut start = Vec::new();
            let level = match (level, compression) {
                (Level::Fixed(level), _) => level,
                (Level::Auto, Compression::Gzip) => compression.default_level(),
                (Level::Auto, Compression::Zstd) => {
                    (&mut reader).take(AUTO_SAMPLE as u64).read_to_end(&mut start)?;
                    auto_level(&start)?
                }
            };
            let read = match compression {
                Compression::Zstd => {
                    let mut encoder = zstd::stream::write::Encoder::new(writer, level)?;
                    encoder.multithread(1)?;
                    // Each frame carries its content checksum: zstd -d and every restore check it.
                    encoder.include_checksum(true)?;
                    encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                    let read = feed(&mut encoder, start, &mut reader)?;
                    end(encoder.finish()?)?;
                    read
                }
                Compression::Gzip => {
                    let mut encoder =
                        flate2::write::GzEncoder::new(writer, flate2::Compression::new(level as u32));
                    let read = feed(&mut encoder, start, &mut reader)?;
                    end(encoder.finish()?)?;
                    read
                }
            };
            Ok(Compressed { read, level })
        });
        Compressor { input, output, done: CompressorDone(thread) }
    }
}

impl CompressorDone {
    /// Waits for the thread: what it read and the level it used, once the compressed stream
    /// is complete and flushed; an error if it failed (its output is then cut short).
    pub async fn finish(self) -> std::io::Result<Compressed> {
        self.0.await.map_err(std::io::Error::other)?
    }
}

/// Where a producer writes: the input of the compressor in front of the upload, buffered (COPY
/// hands over a row at a time; each write to the pipe would wake the compressor's thread).
pub type Sink = tokio::io::BufWriter<DuplexStream>;

/// How much memory one stream's upload may hold: parts in flight, and their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub concurrency: usize,
    pub part_size: usize,
}

impl Budget {
    /// The configured single stream's budget (`upload_concurrency` parts in flight plus the one
    /// filling) shared by `streams` concurrent streams: each keeps one part in flight and one
    /// filling, of at least S3's 5 MiB; so four workers hold about what one stream would.
    pub fn shared(s3: &S3Settings, streams: usize) -> Self {
        let streams = streams.max(1);
        let total = s3.part_size * (s3.upload_concurrency + 1);
        let per_stream = (s3.upload_concurrency / streams).max(1);
        let part_size = (total / (streams * (per_stream + 1))).clamp(MIN_PART_SIZE, s3.part_size);
        Budget { concurrency: per_stream, part_size }
    }
}

/// One object to write through [`store_compressed`].
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub key: &'a str,
    /// The manifest's `kind` of the object.
    pub kind: &'a str,
    pub compression: Compression,
    pub level: Level,
    /// An upper bound of the uncompressed size where known, for the part size.
    pub estimate: u64,
    pub budget: Budget,
}

/// Streams what `produce` writes, compressed on a thread of its own (so parallel producers
/// compress in parallel), into `target.key`. The object is completed only when the upload,
/// the compressor and the producer all succeeded; otherwise the upload is aborted and the
/// first failure in the pipeline is returned as the cause.
pub async fn store_compressed<T, F, Fut>(
    app: &App,
    target: Target<'_>,
    produce: F,
) -> Result<(ObjectEntry, T)>
where
    T: Send + 'static,
    F: FnOnce(Sink) -> Fut,
    Fut: Future<Output = Result<(Sink, T)>> + Send + 'static,
{
    let Target { key, kind, compression, level, estimate, budget } = target;
    let Compressor { input, output, done } = Compressor::spawn(compression, level);
    let work = produce(tokio::io::BufWriter::with_capacity(CHUNK, input));
    // In a set of its own, so that dropping this future (the deadline) aborts the producer too.
    let mut producer = JoinSet::new();
    producer.spawn(async move {
        let (mut sink, value) = work.await?;
        // Ends the compressed frame; without it the object would be cut short.
        sink.shutdown().await.map_err(|e| Error::io("writing the dump stream", e))?;
        Ok(value)
    });
    let s3 = S3Settings { part_size: budget.part_size, ..app.config.s3.clone() };
    let mut upload = StreamUpload::begin(
        app.store.clone(),
        key,
        crate::store::ObjectMeta::typed(compression.content_type()),
        PartSizer::new(&s3, Some(estimate)),
        budget.concurrency,
    );
    let copied = upload.copy_from(output).await;
    // The stream ended (or failed): the producer's and the compressor's verdicts decide whether
    // it was complete.
    let produced = match producer.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            Err(Error::Dump { database: key.to_owned(), reason: format!("producer failed: {e}") })
        }
        None => unreachable!("one producer was spawned"),
    };
    let compressed = done
        .finish()
        .await
        .map_err(|e| Error::Dump { database: key.to_owned(), reason: format!("compressing failed: {e}") });
    // A failed upload breaks the compressor's pipe and then the producer's; a failed compressor
    // breaks the producer's; a failed producer ends the stream early (the others succeed). So the
    // first error in this order is the cause.
    let (value, compressed) = match (copied, compressed, produced) {
        (Ok(()), Ok(c), Ok(v)) => (v, c),
        (Err(e), ..) | (Ok(()), Err(e), _) | (Ok(()), Ok(_), Err(e)) => {
            upload.abort().await;
            return Err(e);
        }
    };
    let stats = upload.complete().await?;
    let entry = ObjectEntry {
        key: stats.key,
        kind: kind.to_owned(),
        bytes: stats.bytes,
        uncompressed_bytes: compressed.read,
        sha256: stats.sha256,
        parts: stats.parts,
        table: None,
        rows: None,
        level: Some(compressed.level),
    };
    Ok((entry, value))
}

/// Writes the sample read ahead (freed at once: it would otherwise hold a MiB per stream to
/// the end), then the rest of the stream, into `encoder`; the bytes written.
fn feed(encoder: &mut impl Write, start: Vec<u8>, reader: &mut impl Read) -> std::io::Result<u64> {
    encoder.write_all(&start)?;
    let sampled = start.len() as u64;
    drop(start);
    Ok(sampled + std::io::copy(reader, encoder)?)
}

/// Flushes and closes the compressed stream, so its reader sees the end.
fn end(mut writer: SyncIoBridge<DuplexStream>) -> std::io::Result<()> {
    writer.flush()?;
    writer.shutdown()
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn workers_share_one_streams_memory() {
        let mib = 1024 * 1024;
        let s3 =
            crate::config::S3Settings { part_size: 8 * mib, upload_concurrency: 2, ..Default::default() };
        assert_eq!(Budget::shared(&s3, 1), Budget { concurrency: 2, part_size: 8 * mib });
        assert_eq!(Budget::shared(&s3, 2), Budget { concurrency: 1, part_size: 6 * mib });
        assert_eq!(Budget::shared(&s3, 4), Budget { concurrency: 1, part_size: 5 * mib });
    }

    #[tokio::test]
    async fn tap_counts_and_keeps_the_tail() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut tap = Tap::new(&data[..]);
        let (count, tail) = (tap.counter(), tap.tail());
        let mut out = Vec::new();
        tap.read_to_end(&mut out).await.unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 10_000);
        assert_eq!(&tail.lock().unwrap()[..], &data[10_000 - TAIL..]);
    }

    async fn round_trip(compression: Compression, level: Level, data: &[u8]) -> (Vec<u8>, Compressed) {
        use tokio::io::AsyncWriteExt;
        let Compressor { mut input, mut output, done } = Compressor::spawn(compression, level);
        let input_data = data.to_vec();
        let writer = tokio::spawn(async move {
            input.write_all(&input_data).await.unwrap();
            input.shutdown().await.unwrap();
        });
        let mut compressed = Vec::new();
        output.read_to_end(&mut compressed).await.unwrap();
        writer.await.unwrap();
        let done = done.finish().await.unwrap();
        let mut back = Vec::new();
        let cursor = tokio::io::BufReader::new(&compressed[..]);
        match compression {
            Compression::Zstd => {
                async_compression::tokio::bufread::ZstdDecoder::new(cursor).read_to_end(&mut back).await
            }
            Compression::Gzip => {
                async_compression::tokio::bufread::GzipDecoder::new(cursor).read_to_end(&mut back).await
            }
        }
        .unwrap();
        assert_eq!(back, data, "{compression:?} level {level:?} round-trips");
        assert_eq!(done.read, data.len() as u64, "{compression:?} {level:?} counts what it read");
        (compressed, done)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_compressor_thread_round_trips_and_counts() {
        // Several zstd jobs (1 MiB each) and a gzip stream; level 19 too (slow, off the runtime).
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{i}\tcustomer {}\t{}\n", i % 977, i * 31).into_bytes())
            .collect();
        for (c, level, len) in [
            (Compression::Zstd, 3, data.len()),
            (Compression::Zstd, 19, 3 << 20),
            (Compression::Gzip, 6, data.len()),
        ] {
            let (compressed, done) = round_trip(c, Level::Fixed(level), &data[..len]).await;
            assert_eq!(done.level, level);
            assert!(compressed.len() < len / 3, "{c:?}: {} of {len}", compressed.len());
        }
        let (empty, done) = round_trip(Compression::Zstd, Level::Fixed(3), b"").await;
        assert_eq!(done.read, 0);
        assert!(!empty.is_empty(), "an empty stream is still a frame");
    }

    /// Rows of random hex, as tables of digests and tokens dump.
    fn hex_rows(rows: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..rows).flat_map(|i| format!("{i}\t{:016x}{:016x}\tpaid\n", next(), next()).into_bytes()).collect()
    }

    /// Prose-like text: this crate's sources.
    fn source_text() -> Vec<u8> {
        [
            include_str!("mod.rs"),
            include_str!("stream.rs"),
            include_str!("native/schema/mod.rs"),
            include_str!("native/schema/relations.rs"),
        ]
        .concat()
        .into_bytes()
    }

    #[test]
    fn auto_level_is_cheaper_only_where_it_is_smaller() {
        let hex = hex_rows(20_000);
        let level = auto_level(&hex[..AUTO_SAMPLE.min(hex.len())]).unwrap();
        assert!(level < 3, "random hex: level {level}");
        let size = |level| zstd::bulk::compress(&hex, level).unwrap().len();
        assert!(size(level) < size(3), "the cheaper level is smaller on the whole stream too");

        let text = source_text();
        assert_eq!(auto_level(&text).unwrap(), 3, "text keeps the default level");
        assert_eq!(auto_level(b"").unwrap(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auto_streams_round_trip_with_the_level_they_chose() {
        // Longer than the sample (the sample is written once, then the rest), shorter, empty.
        let hex = hex_rows(60_000);
        assert!(hex.len() > 2 * AUTO_SAMPLE);
        let (_, done) = round_trip(Compression::Zstd, Level::Auto, &hex).await;
        assert!(done.level < 3, "hex: {}", done.level);
        let (_, done) = round_trip(Compression::Zstd, Level::Auto, &source_text()).await;
        assert_eq!(done.level, 3);
        let (_, done) = round_trip(Compression::Zstd, Level::Auto, b"").await;
        assert_eq!(done.level, 3);
        // gzip has no such rule: its default level.
        let (_, done) = round_trip(Compression::Gzip, Level::Auto, &hex[..AUTO_SAMPLE / 2]).await;
        assert_eq!(done.level, 6);
    }

    #[tokio::test]
    async fn a_consumer_gone_fails_the_compressor() {
        use tokio::io::AsyncWriteExt;
        let Compressor { mut input, output, done } = Compressor::spawn(Compression::Zstd, Level::Fixed(3));
        drop(output);
        // The thread fails on its first write; the input side then sees a closed pipe.
        let data = vec![b'x'; 8 << 20];
        let _ = input.write_all(&data).await;
        drop(input);
        assert!(done.finish().await.is_err());
    }
}
