//! HTTPS: the S3 endpoint's certificate and key (PEM files), loaded at startup and reloaded on
//! SIGHUP, and the marker telling request handling that a request came over TLS.
//!
//! - rustls on the ring provider (it builds with a C compiler alone; aws-lc-rs needs cmake),
//!   TLS 1.2 and 1.3, ALPN `h2` and `http/1.1` (the server speaks both; hyper's auto builder
//!   tells them apart by the HTTP/2 preface).
//! - The files are read whole: a certificate chain (the server's certificate first, then its
//!   intermediates) and one private key (PKCS#8, PKCS#1 or SEC1). A missing or unreadable file,
//!   a file with no PEM block of the right kind, a malformed block, or a key that is not the
//!   certificate's is a [`TlsError`] naming the file.
//! - [`Tls`] holds the current `rustls::ServerConfig`; `serve` takes an acceptor from it for
//!   each accepted connection, so a reload ([`Tls::reload`], the binary calls it on SIGHUP)
//!   changes the certificate of new connections while established ones keep theirs. A reload
//!   that fails keeps the old certificate.
//! - The handshake runs under the connection's header-read timeout and counts as idle for the
//!   connection caps (`serve`, `http_conns`): a client that opens a connection and never
//!   completes a handshake is cut like one that never completes its headers.
//! - [`SecureTransport`] is an extension on every request that arrived over TLS (`serve` puts
//!   it there before s3s runs); the access gate reads it with
//!   `cx.extensions_mut().get::<SecureTransport>()` (s3s's `S3AccessContext`), which is what a
//!   bucket policy's `aws:SecureTransport` condition reads (`authz`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The largest certificate or key file read (a chain is a few KiB).
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// Marks a request that came over TLS (module docs).
#[derive(Debug, Clone, Copy)]
pub struct SecureTransport;

/// Why a certificate or key could not be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    // The causes are in the messages (the SIGHUP log prints the message alone), so they are
    // not `source`s too (anyhow would print them twice).
    #[error("{path}: cannot read the {what} file: {error}")]
    Read {
        path: PathBuf,
        what: &'static str,
        error: std::io::Error,
    },
    #[error("{path}: the {what} file is larger than {PEM_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf, what: &'static str },
    #[error("{path}: {problem}")]
    Pem { path: PathBuf, problem: String },
    #[error("{key}: this key does not fit the certificate in {cert}: {error}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error("TLS settings: {0}")]
    Settings(rustls::Error),
}

/// The files of the endpoint's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The endpoint's TLS settings: its files and the configuration loaded from them.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the files; an error names the one at fault.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = server_config(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(config),
        })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Re-reads the files: new connections get the new certificate. On an error the current
    /// one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// The acceptor of a new connection: the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&config))
    }
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_err = |error| TlsError::Read {
        path: path.to_owned(),
        what,
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
            what,
        });
    }
    Ok(bytes)
}

fn pem_problem(path: &Path, problem: String) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        problem,
    }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| pem_problem(path, format!("malformed PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(pem_problem(
            path,
            "no certificate in the file (expected a PEM block BEGIN CERTIFICATE)".to_owned(),
        ));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => pem_problem(
            path,
            "no private key in the file (expected a PEM block BEGIN PRIVATE KEY, BEGIN RSA \
             PRIVATE KEY or BEGIN EC PRIVATE KEY)"
                .to_owned(),
        ),
        e => pem_problem(path, format!("malformed PEM private key: {e}")),
    })
}

/// The rustls configuration of the files: TLS 1.2 and 1.3 on ring, ALPN h2 and http/1.1.
fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_chain(&files.cert)?;
    let key = load_key(&files.key)?;
    let mismatch = |error| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        error,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Settings)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
        };
        let e = Tls::load(missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");

        let cert = write(dir.path(), "cert.pem", "not a pem file\n");
        let key = write(dir.path(), "key.pem", "");
        let e = Tls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );

        // A certificate block with garbage inside: the key is checked next, then the pair.
        let cert = write(
            dir.path(),
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = Tls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("key.pem") && e.contains("no private key"), "{e}");
    }
}
