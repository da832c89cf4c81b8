//! HTTPS: `--tls` (a certificate made at start by a CA of its own, whose
//! certificate is written to a file a client can trust) or `--tls-cert` and
//! `--tls-key` (the operator's own). rustls with the ring provider, so no
//! OpenSSL; rcgen makes the certificates.
//!
//! A plain-HTTP request to the TLS port gets a plain-HTTP `400` that says
//! to use `https://`, not a handshake error, a hang or a silent close
//! (`plain_http_refusal`), as nginx answers it.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// What serves TLS, and what to say about it at start.
pub struct Tls {
    acceptor: TlsAcceptor,
    /// The CA a client must trust, when zipgate made the certificate.
    pub ca_file: Option<PathBuf>,
    /// The names the certificate is for, when zipgate made it.
    pub names: Vec<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_file", &self.ca_file)
            .field("names", &self.names)
            .finish()
    }
}

fn config(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Tls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    // HTTP/1.1 only, as the server speaks it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_file: None,
        names: Vec::new(),
    })
}

impl Tls {
    /// The operator's certificate chain and private key (PEM files).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert {}: no certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
        config(chain, key)
    }

    /// A CA of its own and a certificate it signs for `names` (host names
    /// and addresses), valid from a day ago for a year; the CA's
    /// certificate is written to `ca_file` (the private keys never leave
    /// memory).
    pub fn self_signed(names: &[String], ca_file: &Path) -> Result<Tls, String> {
        let made = make_certificates(names).map_err(|e| format!("--tls: {e}"))?;
        write_public(ca_file, made.ca_pem.as_bytes())
            .map_err(|e| format!("--tls-ca-file {}: {e}", ca_file.display()))?;
        let mut tls = config(vec![made.leaf_der], made.leaf_key)?;
        tls.ca_file = Some(ca_file.to_path_buf());
        tls.names = names.to_vec();
        Ok(tls)
    }
}

struct Made {
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn make_certificates(names: &[String]) -> Result<Made, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let now = chrono::Utc::now();
    let day = |t: chrono::DateTime<chrono::Utc>| {
        use chrono::Datelike;
        rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
    };
    let (from, until) = (
        day(now - chrono::Duration::days(1)),
        day(now + chrono::Duration::days(365)),
    );

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "zipgate local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (from, until);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate()?;
    // rcgen reads an address as an IP SAN and anything else as a DNS name.
    let mut leaf = CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (leaf.not_before, leaf.not_after) = (from, until);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(Made {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf_cert.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    })
}

/// Writes a public file (a certificate) whole: a reader never sees half.
fn write_public(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension("pem.partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// The names a made certificate is for: loopback, the listening address
/// when it is a specific one, the `--public-url` host and the allowed
/// hosts.
pub fn names_for(listen: IpAddr, public_host: Option<&str>, allowed: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.extend(public_host.map(str::to_owned));
    names.extend(allowed.iter().filter(|h| *h != "*").cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.to_ascii_lowercase()));
    names
}

/// The first byte of a TLS connection: a handshake record.
const HANDSHAKE: u8 = 0x16;

/// What a connection to the TLS port turned out to be.
pub(crate) enum Accepted {
    Tls(Box<tokio_rustls::server::TlsStream<super::shaping::ConnectionIo>>),
    /// Answered already (plain HTTP, a failed handshake, a silent client).
    Done,
}

impl Tls {
    /// The handshake (within `timeout`), or the plain-HTTP refusal.
    pub(crate) async fn accept(
        &self,
        socket: TcpStream,
        io: impl FnOnce(TcpStream) -> super::shaping::ConnectionIo,
        timeout: Duration,
    ) -> Accepted {
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, socket.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == HANDSHAKE => {}
            Ok(Ok(1)) => {
                plain_http_refusal(socket).await;
                return Accepted::Done;
            }
            _ => return Accepted::Done,
        }
        match tokio::time::timeout(timeout, self.acceptor.accept(io(socket))).await {
            Ok(Ok(stream)) => Accepted::Tls(Box::new(stream)),
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                Accepted::Done
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                Accepted::Done
            }
        }
    }
}

/// A plain-HTTP request on the TLS port: a `400` in plain HTTP naming the
/// fix, then close. The request is read first (a little, briefly), so the
/// close does not reset the connection before the client reads the answer.
async fn plain_http_refusal(mut socket: TcpStream) {
    let body = "{\"error\":\"https_required\",\"message\":\"this port speaks HTTPS: send the request to https://, not http://\"}\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut scratch)).await;
    let written = tokio::time::timeout(Duration::from_secs(5), async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    })
    .await;
    if matches!(written, Ok(Ok(()))) {
        // Drain what the client still sends until it closes (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut read = 0usize;
            while read < 1 << 20 {
                match socket.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_loopback_the_public_host_and_allowed_hosts_once() {
        let names = names_for(
            "0.0.0.0".parse().unwrap(),
            Some("zip.example.com"),
            &["*".into(), "LOCALHOST".into(), "10.0.0.5".into()],
        );
        assert_eq!(
            names,
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "zip.example.com",
                "10.0.0.5"
            ]
        );
        let names = names_for("192.0.2.7".parse().unwrap(), None, &[]);
        assert!(names.contains(&"192.0.2.7".to_owned()));
    }

    #[test]
    fn a_made_certificate_is_signed_by_the_ca_written_out() {
        let dir = std::env::temp_dir().join(format!("zipgate-tls-{}", std::process::id()));
        let ca = dir.join("ca.pem");
        let tls = Tls::self_signed(&["localhost".into(), "127.0.0.1".into()], &ca).unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(ca.as_path()));
        let pem = std::fs::read_to_string(&ca).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
