//! The S3 adapter (AWS S3 and S3-compatible stores: MinIO, R2, moto).

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload};
use bytes::Bytes;

use super::{CompletedPart, ObjectInfo, ObjectStore, PendingUpload};
use crate::config::{RequestChecksum, S3Settings};
use crate::error::{Error, Result};

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
        let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(settings.force_path_style);
        if settings.request_checksum == RequestChecksum::WhenRequired {
            conf = conf
                .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
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
        let retryable = match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                status >= 500 || status == 429 || e.code() == Some("SlowDown")
            }
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        Error::Store {
            op,
            location: self.locate(key),
            detail: DisplayErrorContext(&e).to_string(),
            source: Some(Box::new(e)),
            retryable,
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

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("put", key, e))?;
        Ok(())
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
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn get_stream(&self, key: &str) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("get", key, e))?;
        Ok(Box::new(out.body.into_async_read()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("list", prefix, e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(ObjectInfo { key: key.to_owned(), size: obj.size().unwrap_or(0).max(0) as u64 });
                }
            }
        }
        Ok(out)
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

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String> {
        let mut req =
            self.client.create_multipart_upload().bucket(&self.bucket).key(key).content_type(content_type);
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

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<()> {
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
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.err("complete upload", key, e))?;
        Ok(())
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
                    out.push(PendingUpload { key: key.to_owned(), upload_id: id.to_owned() });
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
