//! The S3 adapter (AWS S3 and S3-compatible stores: MinIO, R2, moto).

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, Delete, ObjectIdentifier};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{
    CompletedPart, CopySource, Download, ListPage, ObjectInfo, ObjectMeta, ObjectStore, PendingUpload,
    unquote_etag,
};
use crate::config::{RequestChecksum, S3Settings};
use crate::error::{Error, Result, StoreKind};

/// Where and as whom to reach a bucket, when not with the SDK's defaults.
#[derive(Debug, Clone, Default)]
pub struct S3Access {
    pub endpoint_url: Option<String>,
    pub credentials: Option<aws_sdk_s3::config::Credentials>,
}

/// An S3 bucket reached through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    part_checksum: bool,
}

impl S3Store {
    /// Builds the client once (init phase) from the shared SDK config and the S3 settings.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: &str, settings: &S3Settings) -> Self {
        Self::reaching(sdk, bucket, settings, &S3Access::default())
    }

    /// Like [`S3Store::new`], on another endpoint or with other credentials (a media bucket on
    /// MinIO or another provider).
    pub fn reaching(
        sdk: &aws_config::SdkConfig,
        bucket: &str,
        settings: &S3Settings,
        access: &S3Access,
    ) -> Self {
        // Responses are checked by Backstop itself (the manifest's SHA-256, the snapshot's MD5);
        // the SDK's own check cannot validate a multipart object's part-level checksum and
        // warns on every such GET.
        let mut conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(settings.force_path_style)
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts),
            )
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
        if let Some(url) = &access.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        if let Some(creds) = &access.credentials {
            conf = conf.credentials_provider(creds.clone());
        }
        if settings.request_checksum == RequestChecksum::WhenRequired {
            conf = conf
                .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired);
        }
        S3Store {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
            bucket: bucket.to_owned(),
            part_checksum: settings.part_checksum,
        }
    }

    /// The SDK client, for callers that need an operation the port does not offer.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn err<E>(&self, op: &'static str, key: &str, e: SdkError<E, HttpResponse>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        // Throttling, timeouts and 5xx pass on retry; access denied or a missing bucket won't.
        let (retryable, kind) = match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let kind = StoreKind::classify(e.code(), e.message(), Some(status));
                (status >= 500 || status == 429 || kind == StoreKind::Throttled, kind)
            }
            SdkError::ResponseError(r) => {
                let status = r.raw().status().as_u16();
                (true, StoreKind::classify(None, None, Some(status)))
            }
            SdkError::ConstructionFailure(_) => (false, StoreKind::Other),
            _ => (true, StoreKind::Other),
        };
        Error::Store {
            op,
            location: self.locate(key),
            detail: DisplayErrorContext(&e).to_string(),
            source: Some(Box::new(e)),
            retryable,
            kind,
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn locate(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    async fn check(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.err("head bucket", "", e))?;
        Ok(())
    }

    fn bucket(&self) -> Option<&str> {
        Some(&self.bucket)
    }

    async fn put_object(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<Option<String>> {
        // With part checksums on, a single PUT carries its SHA-256 too: the store verifies it.
        let checksum = self.part_checksum.then(|| aws_smithy_types::base64::encode(Sha256::digest(&body)));
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(meta.content_type.clone())
            .set_metadata((!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()))
            .set_checksum_sha256(checksum)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("put", key, e))?;
        Ok(out.e_tag.as_deref().map(unquote_etag))
    }

    async fn put_new(&self, key: &str, body: Bytes, content_type: &str) -> Result<bool> {
        let checksum = self.part_checksum.then(|| aws_smithy_types::base64::encode(Sha256::digest(&body)));
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .if_none_match("*")
            .set_checksum_sha256(checksum)
            .body(ByteStream::from(body))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // 412: the key exists; 409: another conditional write to it is in flight.
            Err(e) if e.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 412 | 409)) => Ok(false),
            Err(e) => Err(self.err("put", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(self.err("get", key, e)),
        };
        let body = out.body.collect().await.map_err(|e| Error::Store {
            op: "read",
            location: self.locate(key),
            detail: e.to_string(),
            source: Some(Box::new(e)),
            retryable: true,
            kind: StoreKind::Other,
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let out = match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => return Ok(None),
            Err(e) => return Err(self.err("head", key, e)),
        };
        Ok(Some(ObjectInfo {
            key: key.to_owned(),
            size: out.content_length.unwrap_or(0).max(0) as u64,
            etag: out.e_tag.as_deref().map(unquote_etag),
            last_modified: out.last_modified.and_then(timestamp),
        }))
    }

    async fn open(&self, key: &str) -> Result<Option<Download>> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("get", key, e)),
        };
        let info = ObjectInfo {
            key: key.to_owned(),
            size: out.content_length.unwrap_or(0).max(0) as u64,
            etag: out.e_tag.as_deref().map(unquote_etag),
            last_modified: out.last_modified.and_then(timestamp),
        };
        let meta = ObjectMeta {
            content_type: out.content_type,
            user: out.metadata.unwrap_or_default().into_iter().collect(),
        };
        Ok(Some(Download { info, meta, body: Box::new(out.body.into_async_read()) }))
    }

    async fn list_page(&self, prefix: &str, start_after: Option<&str>) -> Result<ListPage> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.err("list", prefix, e))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|obj| {
                Some(ObjectInfo {
                    key: obj.key()?.to_owned(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    etag: obj.e_tag().map(unquote_etag),
                    last_modified: obj.last_modified().cloned().and_then(timestamp),
                })
            })
            .collect();
        Ok(ListPage { objects, truncated: page.is_truncated() == Some(true) })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("delete", key, e))?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, Error)>> {
        let mut failed = Vec::new();
        for (i, batch) in keys.chunks(1000).enumerate() {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().expect("a key is set"))
                .collect();
            let delete =
                Delete::builder().set_objects(Some(objects)).quiet(true).build().expect("objects are set");
            match self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await {
                Ok(out) => {
                    for e in out.errors() {
                        let key = e.key().unwrap_or_default().to_owned();
                        let detail = format!(
                            "{}: {}",
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or("the store gave no reason")
                        );
                        let kind = StoreKind::classify(e.code(), e.message(), None);
                        let retryable = matches!(kind, StoreKind::Throttled | StoreKind::Other)
                            && !matches!(e.code(), Some("InvalidObjectState"));
                        let location = self.locate(&key);
                        failed.push((
                            key,
                            Error::Store { op: "delete", location, detail, source: None, retryable, kind },
                        ));
                    }
                }
                // Stores without DeleteObjects (GCS's S3 interface): one request per key, for
                // this batch and every later one.
                Err(e) if i == 0 && lacks_operation(&e) => {
                    tracing::info!(bucket = %self.bucket, "the store has no DeleteObjects; deleting one key at a time");
                    for key in keys {
                        if let Err(e) = self.delete(key).await {
                            failed.push((key.clone(), e));
                        }
                    }
                    return Ok(failed);
                }
                Err(e) => return Err(self.err("delete", &batch[0], e)),
            }
        }
        Ok(failed)
    }

    async fn copy(&self, source: CopySource<'_>, key: &str) -> Result<Option<String>> {
        let bucket = source.bucket.unwrap_or(&self.bucket);
        let copy_source = format!("{bucket}/{}", encode_copy_key(source.key));
        let if_match = source.if_match.map(|e| format!("\"{e}\""));
        if source.size <= MAX_COPY_OBJECT {
            let out = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(key)
                .copy_source(&copy_source)
                .set_copy_source_if_match(if_match.clone())
                .send()
                .await
                .map_err(|e| self.err("copy", key, e))?;
            return Ok(out.copy_object_result.and_then(|r| r.e_tag).as_deref().map(unquote_etag));
        }
        // Above 5 GB: a multipart upload whose parts are ranges copied server-side, with the
        // source's content type and metadata.
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(source.key)
            .send()
            .await
            .map_err(|e| self.err("head", source.key, e))?;
        if let Some(want) = source.if_match
            && head.e_tag.as_deref().map(unquote_etag).as_deref() != Some(want)
        {
            return Err(Error::Store {
                op: "copy",
                location: self.locate(source.key),
                detail: format!(
                    "the source changed since it was listed (ETag {:?}, listed {want})",
                    head.e_tag
                ),
                source: None,
                retryable: true,
                kind: StoreKind::PreconditionFailed,
            });
        }
        let meta = ObjectMeta {
            content_type: head.content_type,
            user: head.metadata.unwrap_or_default().into_iter().collect(),
        };
        let upload_id = self.create_multipart(key, &meta).await?;
        let part_size = COPY_PART_SIZE.max(source.size.div_ceil(9_000));
        let mut parts = Vec::new();
        let mut start = 0u64;
        let result = async {
            while start < source.size {
                let end = (start + part_size).min(source.size) - 1;
                let number = parts.len() as i32 + 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .copy_source(&copy_source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .set_copy_source_if_match(if_match.clone())
                    .send()
                    .await
                    .map_err(|e| self.err("copy part", key, e))?;
                let result = out.copy_part_result;
                parts.push(CompletedPart {
                    number,
                    etag: result.as_ref().and_then(|r| r.e_tag.clone()),
                    checksum_sha256: result.and_then(|r| r.checksum_sha256),
                });
                start = end + 1;
            }
            self.complete_multipart(key, &upload_id, std::mem::take(&mut parts)).await
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(key, &upload_id).await;
        }
        result
    }

    async fn create_multipart(&self, key: &str, meta: &ObjectMeta) -> Result<String> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(meta.content_type.clone())
            .set_metadata((!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect()));
        if self.part_checksum {
            req = req.checksum_algorithm(ChecksumAlgorithm::Sha256);
        }
        let out = req.send().await.map_err(|e| self.err("start upload", key, e))?;
        out.upload_id.ok_or_else(|| Error::Store {
            op: "start upload",
            location: self.locate(key),
            detail: "the store returned no upload id".into(),
            source: None,
            retryable: false,
            kind: StoreKind::Other,
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        sha256: [u8; 32],
    ) -> Result<CompletedPart> {
        let checksum = self.part_checksum.then(|| aws_smithy_types::base64::encode(sha256));
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .set_checksum_sha256(checksum.clone())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("upload part", key, e))?;
        Ok(CompletedPart { number, etag: out.e_tag, checksum_sha256: checksum })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>> {
        let parts = parts
            .into_iter()
            .map(|p| {
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(p.number)
                    .set_e_tag(p.etag)
                    .set_checksum_sha256(p.checksum_sha256)
                    .build()
            })
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.err("complete upload", key, e))?;
        Ok(out.e_tag.as_deref().map(unquote_etag))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.err("abort upload", key, e))?;
        Ok(())
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.err("list uploads", prefix, e))?;
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(PendingUpload {
                        key: key.to_owned(),
                        upload_id: id.to_owned(),
                        initiated: u.initiated().cloned().and_then(timestamp),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker;
            id_marker = page.next_upload_id_marker;
        }
    }
}

/// CopyObject's limit; larger objects are copied in ranges.
const MAX_COPY_OBJECT: u64 = 5 * 1024 * 1024 * 1024;
/// The range each `UploadPartCopy` copies (grown so that 5 TB fits in 10,000 parts).
const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

fn timestamp(t: aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

/// `x-amz-copy-source` is `bucket/key` with the key URL-encoded (its `/` kept): a key with a
/// space, `+`, `%`, `#` or `?` would otherwise name another object or none.
fn encode_copy_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the store answered that it does not implement an operation.
fn lacks_operation<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            se.raw().status().as_u16() == 501
                || matches!(e.code(), Some("NotImplemented" | "MethodNotAllowed" | "InvalidArgument"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_encode_what_would_change_their_meaning() {
        assert_eq!(encode_copy_key("a/b c+d%e#f?g.jpg"), "a/b%20c%2Bd%25e%23f%3Fg.jpg");
        assert_eq!(encode_copy_key("/lead/ü"), "/lead/%C3%BC");
    }
}
