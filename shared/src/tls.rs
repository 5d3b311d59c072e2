//! TLS for PostgreSQL connections, with libpq's `sslmode` meanings: `disable`; `prefer` and
//! `require` encrypt without checking the certificate (as libpq does); `verify-full` checks
//! the chain against `BACKSTOP_DB_SSLROOTCERT` (e.g. the RDS CA bundle) or the system roots,
//! and the host name. RDS for PostgreSQL 15+ refuses unencrypted connections by default.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{DbTls, SslMode};
use crate::error::{Error, Result};

/// Builds the connector once (init phase) for the configured mode.
pub fn connector(tls: &DbTls) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("BACKSTOP_DB_SSLMODE", format!("TLS set-up: {e}")))?;
    let config = match tls.mode {
        SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match &tls.root_cert {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        Error::config(
                            "BACKSTOP_DB_SSLROOTCERT",
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert = cert.map_err(|e| {
                            Error::config("BACKSTOP_DB_SSLROOTCERT", format!("{}: {e}", path.display()))
                        })?;
                        roots.add(cert).map_err(|e| {
                            Error::config("BACKSTOP_DB_SSLROOTCERT", format!("{}: {e}", path.display()))
                        })?;
                    }
                    if roots.is_empty() {
                        return Err(Error::config(
                            "BACKSTOP_DB_SSLROOTCERT",
                            format!("{} holds no PEM certificate", path.display()),
                        ));
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require | SslMode::Default => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `require`: the connection is encrypted, the server's certificate is not checked.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
