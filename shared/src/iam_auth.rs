//! RDS IAM database authentication: instead of a stored password, a token signed with the
//! process's own AWS credentials (SigV4 for `rds-db:connect`), valid 15 minutes, made afresh
//! for every connection. RDS accepts it only over TLS, so connections using it require TLS.
//!
//! Configured with `BACKSTOP_DB_IAM_URL=postgres://user@host:port/dbname` (no password); the
//! function's role needs `rds-db:connect` on `dbuser:{DbiResourceId}/{user}` (the Terraform
//! module's `db_iam_auth`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::error::{Error, Result};

/// How long a token can open connections (RDS's maximum).
const VALID_FOR: Duration = Duration::from_secs(900);

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Makes tokens with the SDK's credentials and region.
#[derive(Debug, Clone)]
pub struct IamAuth {
    credentials: SharedCredentialsProvider,
    region: String,
    /// The provider's last answer: on ECS or EC2 it is a metadata endpoint call, not an
    /// environment read, so it is not asked again for every connection.
    cached: Arc<tokio::sync::Mutex<Option<aws_credential_types::Credentials>>>,
}

impl IamAuth {
    /// From the SDK's settings; an error names what is missing.
    pub fn new(sdk: &aws_config::SdkConfig) -> Result<Self> {
        const NAME: &str = "BACKSTOP_DB_IAM_URL";
        let credentials = sdk.credentials_provider().ok_or_else(|| {
            Error::config(NAME, "RDS IAM authentication needs AWS credentials; none are configured")
        })?;
        let region = sdk
            .region()
            .ok_or_else(|| {
                Error::config(NAME, "RDS IAM authentication needs AWS_REGION (the database's region)")
            })?
            .to_string();
        Ok(IamAuth { credentials, region, cached: Arc::default() })
    }

    /// A token to connect to `host:port` as `user`, signed now.
    pub async fn token(&self, host: &str, port: u16, user: &str) -> Result<String> {
        let now = SystemTime::now();
        let mut cached = self.cached.lock().await;
        let fresh =
            |c: &aws_credential_types::Credentials| c.expiry().is_none_or(|e| e > now + REFRESH_BEFORE);
        let creds = match cached.as_ref().filter(|c| fresh(c)) {
            Some(c) => c.clone(),
            None => {
                let c = self.credentials.provide_credentials().await.map_err(|e| Error::Secret {
                    secret_id: "RDS IAM token".into(),
                    reason: format!("no AWS credentials to sign it with: {e}"),
                    source: None,
                    retryable: true,
                })?;
                cached.insert(c).clone()
            }
        };
        sign_token(&creds, &self.region, host, port, user, now)
    }
}

/// The token for `user` at `host:port` in `region`, signed at `time`: the presigned URL of
/// `GET https://host:port/?Action=connect&DBUser=user` for service `rds-db`, without its scheme
/// (what `aws rds generate-db-auth-token` prints).
pub fn sign_token(
    credentials: &aws_credential_types::Credentials,
    region: &str,
    host: &str,
    port: u16,
    user: &str,
    time: SystemTime,
) -> Result<String> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::Secret {
        secret_id: "RDS IAM token".into(),
        reason: format!("{what}: {e}"),
        source: None,
        retryable: false,
    };
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(VALID_FOR);
    settings.signature_location = SignatureLocation::QueryParams;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| failed("signing parameters", &e))?;
    let mut url = url::Url::parse(&format!("https://{host}:{port}/"))
        .map_err(|e| failed("the database host is not a host name", &e))?;
    url.query_pairs_mut().append_pair("Action", "connect").append_pair("DBUser", user);
    let request = SignableRequest::new("GET", url.as_str(), std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| failed("the request to sign", &e))?;
    let (instructions, _signature) =
        sign(request, &params.into()).map_err(|e| failed("signing", &e))?.into_parts();
    for (name, value) in instructions.params() {
        url.query_pairs_mut().append_pair(name, value);
    }
    // Host and port as given (the URL type drops a default port such as 443).
    let query = url.query().unwrap_or_default();
    Ok(format!("{host}:{port}/?{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "t",
        )
    }

    #[test]
    fn a_token_is_a_presigned_connect_request_for_the_user() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_633_600); // 2025-12-02T00:00:00Z
        let token = sign_token(
            &creds(),
            "eu-central-1",
            "db.example.eu-central-1.rds.amazonaws.com",
            5432,
            "back stop",
            at,
        )
        .unwrap();
        assert!(
            token.starts_with(
                "db.example.eu-central-1.rds.amazonaws.com:5432/?Action=connect&DBUser=back+stop&"
            ),
            "{token}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20251202%2Feu-central-1%2Frds-db%2Faws4_request",
            "X-Amz-Date=20251202T000000Z",
            "X-Amz-Expires=900",
            "X-Amz-SignedHeaders=host",
        ] {
            assert!(token.contains(part), "{part} missing from {token}");
        }
        let signature = token.rsplit_once("X-Amz-Signature=").unwrap().1;
        assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()), "{signature}");
        // Deterministic for the same inputs; another user or time signs differently.
        let again = sign_token(
            &creds(),
            "eu-central-1",
            "db.example.eu-central-1.rds.amazonaws.com",
            5432,
            "back stop",
            at,
        );
        assert_eq!(again.unwrap(), token);
        let other = sign_token(
            &creds(),
            "eu-central-1",
            "db.example.eu-central-1.rds.amazonaws.com",
            5432,
            "admin",
            at,
        );
        assert_ne!(other.unwrap().rsplit_once('=').unwrap().1, signature);
    }
}
