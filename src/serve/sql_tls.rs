//! TLS for the SQL endpoint: the certificate and key `cohort serve` is given (PEM files), or
//! else a self-signed pair made at start for `localhost` and `127.0.0.1`, so that
//! `sslmode=require` works out of the box (clients that verify the server need a real
//! certificate). Clients that do not ask for TLS still connect in plain text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion_postgres::pgwire;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the endpoint's certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum TlsSource {
    /// A self-signed pair made at start.
    #[default]
    SelfSigned,
    /// PEM files: the certificate chain and its private key.
    Files { cert: PathBuf, key: PathBuf },
    /// No TLS: clients that require it are refused.
    Off,
}

/// The endpoint's TLS: what accepts connections, and the certificate's PEM (for SCRAM's
/// channel binding).
pub struct Tls {
    pub(super) acceptor: TlsAcceptor,
    pub(super) cert_pem: Vec<u8>,
}

/// The TLS `source` names, or None when it is off.
pub fn tls(source: &TlsSource) -> std::io::Result<Option<Tls>> {
    let (cert_pem, key_pem) = match source {
        TlsSource::Off => return Ok(None),
        TlsSource::SelfSigned => {
            let pair = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .map_err(|e| bad(format!("cannot make a TLS certificate: {e}")))?;
            (
                pair.cert.pem().into_bytes(),
                pair.signing_key.serialize_pem().into_bytes(),
            )
        }
        TlsSource::Files { cert, key } => (read(cert)?, read(key)?),
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the TLS certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad("the TLS certificate file has no certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad(format!("the TLS key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad(format!("TLS: {e}")))?;
    // Postgres 17's direct TLS (`sslnegotiation=direct`) asks for this protocol name.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem,
    }))
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

fn bad(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}
