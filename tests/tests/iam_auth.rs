//! RDS IAM database authentication: the token is the one AWS's own tooling makes (the AWS CLI,
//! botocore, signs the same request to the same signature), and a connection sends a token
//! made for it as its password, over TLS, never in the clear.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backstop_core::App;
use backstop_core::config::{Config, DbConfig, Destination};
use backstop_core::iam_auth::sign_token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A token's query parameters, decoded.
fn params(token: &str) -> BTreeMap<String, String> {
    let query = token.split_once("/?").expect("a token is host:port/?query").1;
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// The time a token was signed at (its `X-Amz-Date`).
fn signed_at(token: &str) -> SystemTime {
    let date = &params(token)["X-Amz-Date"];
    let ts: jiff::Timestamp = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .expect("X-Amz-Date parses")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("UTC")
        .timestamp();
    SystemTime::UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64)
}

#[tokio::test]
async fn the_token_is_the_one_the_aws_cli_makes() {
    let aws = backstop_tests::repo_root().join(".venv/bin/aws");
    if !aws.exists() {
        eprintln!("SKIPPED: no AWS CLI in .venv (scripts/stack.sh up installs it)");
        return;
    }
    let (key, secret) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let out = tokio::process::Command::new(&aws)
        .args(["rds", "generate-db-auth-token", "--hostname", "db.example.eu-central-1.rds.amazonaws.com"])
        .args(["--port", "5432", "--username", "backstop", "--region", "eu-central-1"])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "aws: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let creds = aws_credential_types::Credentials::new(key, secret, None, None, "test");
    let ours = sign_token(
        &creds,
        "eu-central-1",
        "db.example.eu-central-1.rds.amazonaws.com",
        5432,
        "backstop",
        signed_at(&theirs),
    )
    .unwrap();
    assert_eq!(ours.split_once('/').unwrap().0, theirs.split_once('/').unwrap().0, "host:port");
    assert_eq!(
        params(&ours),
        params(&theirs),
        "same request, same signature:\n ours {ours}\ntheirs {theirs}"
    );
}

/// What the fake server saw of one connection attempt.
#[derive(Debug, Default)]
struct Seen {
    ssl_request: bool,
    user: Option<String>,
    password: Option<String>,
}

/// A PostgreSQL front door on loopback: answers the SSL request, completes TLS with a
/// throwaway certificate, asks for a cleartext password, records it and refuses it.
async fn fake_server() -> (u16, tokio::task::JoinHandle<Seen>) {
    let dir = std::env::temp_dir().join(format!("backstop-iam-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    use rustls::pki_types::pem::PemObject;
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut seen = Seen::default();
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 8];
        tcp.read_exact(&mut head).await.unwrap();
        seen.ssl_request = head == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        if !seen.ssl_request {
            return seen;
        }
        tcp.write_all(b"S").await.unwrap();
        let mut stream = acceptor.accept(tcp).await.unwrap();
        // StartupMessage: length, protocol, then name\0value\0 pairs.
        let len = stream.read_u32().await.unwrap() as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).await.unwrap();
        let fields: Vec<&[u8]> = body[4..].split(|b| *b == 0).collect();
        for pair in fields.chunks(2) {
            if pair.len() == 2 && pair[0] == b"user" {
                seen.user = Some(String::from_utf8_lossy(pair[1]).into_owned());
            }
        }
        // AuthenticationCleartextPassword, then the client's PasswordMessage.
        stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.unwrap();
        assert_eq!(stream.read_u8().await.unwrap(), b'p');
        let len = stream.read_u32().await.unwrap() as usize;
        let mut password = vec![0u8; len - 4];
        stream.read_exact(&mut password).await.unwrap();
        seen.password = Some(String::from_utf8_lossy(&password[..password.len() - 1]).into_owned());
        let mut error = Vec::new();
        for (code, text) in
            [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "28P01"), (b'M', "refused by the test server")]
        {
            error.push(code);
            error.extend_from_slice(text.as_bytes());
            error.push(0);
        }
        error.push(0);
        let mut message = vec![b'E'];
        message.extend_from_slice(&((error.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(&error);
        stream.write_all(&message).await.unwrap();
        stream.shutdown().await.ok();
        seen
    });
    (port, task)
}

#[tokio::test]
async fn a_connection_sends_a_token_made_for_it_over_tls() {
    let (port, server) = fake_server().await;
    let sdk = backstop_tests::sdk().await.unwrap();
    let mut config =
        Config::from_lookup(|_| None, Some(Destination::Local { root: std::env::temp_dir() })).unwrap();
    config.db = DbConfig::Iam(format!("postgres://backstop@127.0.0.1:{port}/app"));
    let app = App::new(&sdk, config).unwrap();
    let err =
        app.db.connect(None, "backstop-test").await.expect_err("the test server refuses every password");
    assert!(err.report().contains("refused by the test server"), "{}", err.report());
    let seen = tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
    assert!(
        seen.ssl_request,
        "TLS was asked for first, though the host is loopback (where prefer is the default)"
    );
    assert_eq!(seen.user.as_deref(), Some("backstop"));
    let token = seen.password.expect("a password was sent");
    let p = params(&token);
    assert_eq!((p["Action"].as_str(), p["DBUser"].as_str()), ("connect", "backstop"));
    assert!(token.starts_with(&format!("127.0.0.1:{port}/?")), "{token}");
    // Signed by the SDK's credentials (the tests' "test" key) for us-east-1, just now.
    let age = SystemTime::now().duration_since(signed_at(&token)).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "signed {age:?} ago");
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "test");
    let expected = sign_token(&creds, "us-east-1", "127.0.0.1", port, "backstop", signed_at(&token)).unwrap();
    assert_eq!(params(&expected), p, "the token verifies against the SDK's credentials");

    // Asking for less than TLS is refused up front, naming the setting.
    let mut config =
        Config::from_lookup(|_| None, Some(Destination::Local { root: std::env::temp_dir() })).unwrap();
    config.db = DbConfig::Iam(format!("postgres://backstop@127.0.0.1:{port}/app"));
    config.db_tls.mode = backstop_core::config::SslMode::Prefer;
    let err = App::new(&sdk, config).unwrap_err().to_string();
    assert!(err.contains("BACKSTOP_DB_SSLMODE") && err.contains("TLS"), "{err}");
}
