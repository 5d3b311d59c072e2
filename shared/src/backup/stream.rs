//! Stream plumbing for dumps: a reader that counts bytes and keeps the stream's tail (to check
//! the dump ended where it should), and the compressor, on a thread of its own.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use std::io::Write;

use tokio::io::{AsyncRead, DuplexStream, ReadBuf};
use tokio_util::io::SyncIoBridge;

use super::options::Compression;

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
pub struct CompressorDone(tokio::task::JoinHandle<std::io::Result<u64>>);

impl Compressor {
    pub fn spawn(compression: Compression, level: i32) -> Self {
        let (input, from_producer) = tokio::io::duplex(CHUNK);
        let (to_consumer, output) = tokio::io::duplex(CHUNK);
        // The bridges block on the runtime from the blocking thread; `io::copy` reads through
        // the BufReader's buffer, so each read takes a whole chunk.
        let mut reader = std::io::BufReader::with_capacity(CHUNK, SyncIoBridge::new(from_producer));
        let writer = SyncIoBridge::new(to_consumer);
        let thread = tokio::task::spawn_blocking(move || match compression {
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(writer, level)?;
                encoder.multithread(1)?;
                encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                let read = std::io::copy(&mut reader, &mut encoder)?;
                end(encoder.finish()?)?;
                Ok(read)
            }
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(writer, flate2::Compression::new(level as u32));
                let read = std::io::copy(&mut reader, &mut encoder)?;
                end(encoder.finish()?)?;
                Ok(read)
            }
        });
        Compressor { input, output, done: CompressorDone(thread) }
    }
}

impl CompressorDone {
    /// Waits for the thread: the uncompressed bytes it read, once the compressed stream is
    /// complete and flushed; an error if it failed (its output is then cut short).
    pub async fn finish(self) -> std::io::Result<u64> {
        self.0.await.map_err(std::io::Error::other)?
    }
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

    async fn round_trip(compression: Compression, level: i32, data: &[u8]) -> (Vec<u8>, u64) {
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
        let read = done.finish().await.unwrap();
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
        assert_eq!(back, data, "{compression:?} level {level} round-trips");
        (compressed, read)
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
            let (compressed, read) = round_trip(c, level, &data[..len]).await;
            assert_eq!(read, len as u64);
            assert!(compressed.len() < len / 3, "{c:?}: {} of {len}", compressed.len());
        }
        let (empty, read) = round_trip(Compression::Zstd, 3, b"").await;
        assert_eq!(read, 0);
        assert!(!empty.is_empty(), "an empty stream is still a frame");
    }

    #[tokio::test]
    async fn a_consumer_gone_fails_the_compressor() {
        use tokio::io::AsyncWriteExt;
        let Compressor { mut input, output, done } = Compressor::spawn(Compression::Zstd, 3);
        drop(output);
        // The thread fails on its first write; the input side then sees a closed pipe.
        let data = vec![b'x'; 8 << 20];
        let _ = input.write_all(&data).await;
        drop(input);
        assert!(done.finish().await.is_err());
    }
}
