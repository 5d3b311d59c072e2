//! `mode: "archive"`: the whole media source as one `media_{env}_{run_id}.tar.zst` object,
//! for teams who want the nightly tarball their cron script made. Streamed: each object is read
//! from the source into a POSIX tar stream (PAX records for long or non-ASCII names and sizes
//! past ustar's 8 GiB), through zstd, into a multipart upload; memory does not depend on the
//! number or size of objects. It restores with `tar --zstd -xf`. All or nothing: an object that
//! does not read back as listed, or the deadline, aborts the upload and no archive exists.

use std::sync::Arc;

use async_compression::tokio::write::ZstdEncoder;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SourceHandle;
use super::plan::{Filter, SourceListing};
use crate::config::S3Settings;
use crate::error::{Error, Result, StoreKind};
use crate::run::RunContext;
use crate::store::{ObjectMeta, ObjectStore, PartSizer, StreamUpload, UploadStats};

/// What an archive run stored.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Archived {
    pub key: String,
    pub objects: u64,
    /// Bytes of the objects (before tar and zstd).
    pub bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    pub sha256: String,
}

/// Writes the archive of every wanted source object to `key`.
pub async fn archive(
    source: &SourceHandle,
    store: Arc<dyn ObjectStore>,
    key: &str,
    s3: &S3Settings,
    filter: &Filter,
    ctx: &RunContext,
) -> Result<Archived> {
    let (writer, reader) = tokio::io::duplex(1024 * 1024);
    let mut upload = StreamUpload::begin(
        store,
        key,
        ObjectMeta::typed("application/zstd"),
        PartSizer::new(&S3Settings { equal_parts: false, ..s3.clone() }, None),
        s3.upload_concurrency,
    );
    let uploading = tokio::spawn(async move {
        let r = upload.copy_from(reader).await;
        (upload, r)
    });
    let mut out = Archived { key: key.to_owned(), ..Default::default() };
    let mut zstd = ZstdEncoder::new(writer);
    let written = async {
        let mut listing = SourceListing::new(source.store.clone(), &source.prefix);
        while let Some(listed) = listing.next().await? {
            if !filter.wants(&listed.key) {
                continue;
            }
            if ctx.stop_by().is_some_and(|at| std::time::Instant::now() >= at) {
                return Err(Error::Deadline {
                    during: "writing the media archive".into(),
                    margin_s: ctx.margin().as_secs(),
                });
            }
            let full = format!("{}{}", source.prefix, listed.key);
            let Some(mut download) = source.store.open(&full).await? else {
                // Deleted since it was listed: not in the archive, as if listed a moment later.
                continue;
            };
            let size = download.info.size;
            let mtime = download.info.last_modified.map_or(0, |t| t.as_second().max(0) as u64);
            zstd.write_all(&header(&listed.key, size, mtime))
                .await
                .map_err(|e| Error::io("writing the archive", e))?;
            let mut md5 = Md5::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut read = 0u64;
            loop {
                let n = download
                    .body
                    .read(&mut buf)
                    .await
                    .map_err(|e| Error::io(format!("reading {}", source.store.locate(&full)), e))?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                if read > size {
                    break;
                }
                md5.update(&buf[..n]);
                zstd.write_all(&buf[..n]).await.map_err(|e| Error::io("writing the archive", e))?;
            }
            let md5 = hex::encode(md5.finalize());
            if read != size || download.info.md5_etag().is_some_and(|e| !e.eq_ignore_ascii_case(&md5)) {
                return Err(Error::Store {
                    op: "archive",
                    location: source.store.locate(&full),
                    detail: format!(
                        "read {read} bytes (MD5 {md5}), the source announced {size} (ETag {:?})",
                        download.info.etag
                    ),
                    source: None,
                    retryable: true,
                    kind: StoreKind::Other,
                });
            }
            let pad = (512 - (size % 512) as usize) % 512;
            zstd.write_all(&vec![0u8; pad]).await.map_err(|e| Error::io("writing the archive", e))?;
            out.objects += 1;
            out.bytes += size;
        }
        // The end of a tar archive: two zero blocks.
        zstd.write_all(&[0u8; 1024]).await.map_err(|e| Error::io("writing the archive", e))?;
        zstd.shutdown().await.map_err(|e| Error::io("finishing the archive", e))
    }
    .await;
    drop(zstd);
    let (upload, read) = uploading.await.map_err(|e| Error::Store {
        op: "archive",
        location: key.to_owned(),
        detail: format!("upload task failed: {e}"),
        source: None,
        retryable: true,
        kind: StoreKind::Other,
    })?;
    match written.and(read) {
        Ok(()) => {
            let UploadStats { bytes, sha256, .. } = upload.complete().await?;
            out.stored_bytes = bytes;
            out.sha256 = sha256;
            Ok(out)
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// The tar header blocks of one regular file: a PAX extended header first when the name or
/// the size does not fit ustar.
fn header(name: &str, size: u64, mtime: u64) -> Vec<u8> {
    const USTAR_MAX_SIZE: u64 = 0o77777777777;
    let plain_name = name.len() < 100 && name.is_ascii();
    let mut records = Vec::new();
    if !plain_name {
        records.push(pax_record("path", name));
    }
    if size > USTAR_MAX_SIZE {
        records.push(pax_record("size", &size.to_string()));
    }
    let mut out = Vec::new();
    if !records.is_empty() {
        let body: Vec<u8> = records.concat();
        out.extend(ustar("././@PaxHeader", body.len() as u64, mtime, b'x'));
        let pad = (512 - body.len() % 512) % 512;
        out.extend(body);
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    let short: String = if plain_name { name.to_owned() } else { ascii_stub(name) };
    out.extend(ustar(&short, size.min(USTAR_MAX_SIZE), mtime, b'0'));
    out
}

/// `"%d key=value\n"`, where %d counts the whole record, its own digits included.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = format!(" {key}={value}\n");
    let mut len = rest.len() + 1;
    while len != rest.len() + len.to_string().len() {
        len = rest.len() + len.to_string().len();
    }
    format!("{len}{rest}").into_bytes()
}

/// A ustar name for readers without PAX: the ASCII of the name's end, under 100 bytes.
fn ascii_stub(name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii() && c != '\0' { c } else { '_' }).collect();
    let start = ascii.len().saturating_sub(99);
    ascii[start..].to_owned()
}

fn ustar(name: &str, size: u64, mtime: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut h, 0, &name.as_bytes()[..name.len().min(99)]);
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, format!("{:011o}\0", mtime.min(0o77777777777)).as_bytes());
    h[156] = kind;
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    // The checksum is computed with its own field as spaces.
    put(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("path", "a"), b"9 path=a\n");
        assert_eq!(pax_record("path", "abc"), b"12 path=abc\n");
        let long = "x".repeat(95);
        let r = pax_record("path", &long);
        let text = String::from_utf8(r.clone()).unwrap();
        let (n, _) = text.split_once(' ').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), r.len());
    }

    #[test]
    fn headers_are_ustar_with_a_valid_checksum() {
        let h = header("a/b.jpg", 1234, 1_700_000_000);
        assert_eq!(h.len(), 512);
        assert_eq!(&h[257..263], b"ustar\0");
        let mut copy = h.clone();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(std::str::from_utf8(&h[148..154]).unwrap(), format!("{sum:06o}"));
        // A unicode name gets a PAX header first.
        let h = header("ünïcødé/ファイル.jpg", 1, 0);
        assert_eq!(h.len(), 3 * 512);
        assert_eq!(h[156], b'x');
    }
}
