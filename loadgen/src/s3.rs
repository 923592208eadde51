//! A minimal S3 client over hyper: path-style requests, SigV4 header auth, HTTP or HTTPS
//! (rustls on ring, TLS 1.2 and 1.3; the CAs of `--ca-file`, else the system's).
//!
//! Owns the connection pool (TCP_NODELAY on every socket: without it a response written in two
//! pieces waits for the client's delayed ACK, ~40 ms per small request), request signing and
//! turning responses into values or [`OpError`]s. It does not time anything or retry: the
//! runner measures around these calls, and a failed request is a sample, not a retry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{ConfigError, OpError};
use crate::limits;
use crate::sigv4::{self, SignInput, Signer};
use crate::xml::{self, ListPage};

/// Whether bodies are hashed into the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PayloadSigning {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: no hashing cost on the client.
    Unsigned,
    /// The SHA-256 of every body, as strict servers may require.
    Sha256,
}

/// One S3 endpoint with its credentials.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// "A" or "B".
    pub name: String,
    /// As given on the command line.
    pub url: String,
    /// `http://host:port` or `https://host:port`, no trailing slash.
    base: String,
    /// The `Host` header: the URL's authority.
    host: String,
    signer: Signer,
    payload_signing: PayloadSigning,
}

impl Endpoint {
    pub fn new(
        name: String,
        url: &str,
        signer: Signer,
        payload_signing: PayloadSigning,
    ) -> Result<Endpoint, ConfigError> {
        let bad = |reason: &str| ConfigError::Endpoint {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let Some(scheme @ ("http" | "https")) = uri.scheme_str() else {
            return Err(bad("the URL starts with http:// or https://"));
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad(
                "give the endpoint without a path (path-style bucket URLs are built from --bucket)",
            ));
        }
        Ok(Endpoint {
            name,
            url: url.to_owned(),
            base: format!("{scheme}://{authority}"),
            host: authority.as_str().to_owned(),
            signer,
            payload_signing,
        })
    }

    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

/// The TLS client settings: the CAs of `ca_file`, else (when an endpoint is https) the
/// system's. No client certificate.
pub fn tls_config(
    ca_file: Option<&Path>,
    any_https: bool,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |reason: String| ConfigError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| bad(format!("malformed PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad(
                "no PEM certificate (BEGIN CERTIFICATE) in it".to_owned()
            ));
        }
    } else if any_https {
        // Unreadable system certificates are skipped; none at all is an error.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if roots.is_empty() {
            return Err(ConfigError::Conflict(
                "an https:// endpoint, but no CA certificate on this system: give --ca-file"
                    .to_owned(),
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| ConfigError::Conflict(format!("TLS settings: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shared HTTP client; cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Client {
    http: HttpClient,
}

/// What a successful GET returns.
#[derive(Debug, Clone, Copy)]
pub struct GetOutcome {
    /// When the response head arrived.
    pub first_byte: Instant,
    pub size_bytes: u64,
}

impl S3Client {
    /// A client keeping up to `pool_size` idle connections per endpoint; https:// endpoints
    /// use `tls`.
    pub fn new(pool_size: usize, tls: &rustls::ClientConfig) -> S3Client {
        let mut connector = HttpConnector::new();
        // A measured pitfall: TCP_NODELAY on every socket, or small requests stall ~40 ms on delayed ACKs.
        connector.set_nodelay(true);
        // The TLS layer sees https:// URIs: the TCP connector must let them through.
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        S3Client { http }
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response<Incoming>, OpError> {
        let payload_hash = match endpoint.payload_signing {
            PayloadSigning::Unsigned => sigv4::UNSIGNED_PAYLOAD.to_owned(),
            PayloadSigning::Sha256 => sigv4::sha256_hex(&body),
        };
        let amz_date = sigv4::amz_datetime_now();
        let headers = [
            ("host", endpoint.host.as_str()),
            ("x-amz-content-sha256", payload_hash.as_str()),
            ("x-amz-date", amz_date.as_str()),
        ];
        let authorization = endpoint.signer.authorization(
            &amz_date,
            &SignInput {
                method: method.as_str(),
                path_encoded: path,
                query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
        );
        let mut uri = String::with_capacity(endpoint.base.len() + path.len() + 64);
        uri.push_str(&endpoint.base);
        uri.push_str(path);
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&sigv4::canonical_query(query));
        }
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .header("authorization", authorization)
            .body(Full::new(body))
            .map_err(|e| OpError::BadResponse(format!("cannot build request: {e}")))?;
        self.http
            .request(request)
            .await
            .map_err(|e| OpError::Transport(error_chain(&e)))
    }

    /// Sends and turns a non-2xx answer into an error, reading at most a bounded error body.
    async fn call(
        &self,
        endpoint: &Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response<Incoming>, OpError> {
        let response = self.send(endpoint, method, path, query, body).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from(response).await)
    }

    pub async fn put_object(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<(), OpError> {
        let path = sigv4::encode_path(bucket, Some(key));
        let response = self.call(endpoint, Method::PUT, &path, &[], body).await?;
        drain(response.into_body(), None).await.map(|_| ())
    }

    /// GETs `key` and checks the length against `expected`, and the bytes too when `verify`
    /// (one memcmp per received chunk).
    pub async fn get_object(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        key: &str,
        expected: &Bytes,
        verify: bool,
    ) -> Result<GetOutcome, OpError> {
        let path = sigv4::encode_path(bucket, Some(key));
        let response = self
            .call(endpoint, Method::GET, &path, &[], Bytes::new())
            .await?;
        let first_byte = Instant::now();
        let size_bytes = drain(response.into_body(), verify.then_some(expected)).await?;
        if size_bytes != expected.len() as u64 {
            return Err(OpError::LengthMismatch {
                expected_bytes: expected.len() as u64,
                got_bytes: size_bytes,
            });
        }
        Ok(GetOutcome {
            first_byte,
            size_bytes,
        })
    }

    pub async fn delete_object(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        key: &str,
    ) -> Result<(), OpError> {
        self.delete(endpoint, &sigv4::encode_path(bucket, Some(key)))
            .await
    }

    /// DELETE of an object or bucket path, its (empty) response drained.
    async fn delete(&self, endpoint: &Endpoint, path: &str) -> Result<(), OpError> {
        let response = self
            .call(endpoint, Method::DELETE, path, &[], Bytes::new())
            .await?;
        drain(response.into_body(), None).await.map(|_| ())
    }

    /// One ListObjectsV2 page under `prefix`.
    pub async fn list_objects(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        prefix: &str,
        keys_max: u32,
        continuation: Option<&str>,
    ) -> Result<ListPage, OpError> {
        let path = sigv4::encode_path(bucket, None);
        let keys_max = keys_max.to_string();
        let mut query = vec![
            ("list-type", "2"),
            ("prefix", prefix),
            ("max-keys", keys_max.as_str()),
            ("encoding-type", "url"),
        ];
        if let Some(token) = continuation {
            query.push(("continuation-token", token));
        }
        let response = self
            .call(endpoint, Method::GET, &path, &query, Bytes::new())
            .await?;
        let body = collect_bounded(response.into_body(), limits::XML_BODY_BYTES_MAX).await?;
        xml::parse_list_v2(&body).map_err(|e| OpError::BadResponse(e.to_string()))
    }

    /// Creates the bucket; one that already exists is fine.
    pub async fn create_bucket(&self, endpoint: &Endpoint, bucket: &str) -> Result<(), OpError> {
        let path = sigv4::encode_path(bucket, None);
        match self
            .call(endpoint, Method::PUT, &path, &[], Bytes::new())
            .await
        {
            Ok(response) => drain(response.into_body(), None).await.map(|_| ()),
            Err(OpError::S3 { code, .. })
                if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete_bucket(&self, endpoint: &Endpoint, bucket: &str) -> Result<(), OpError> {
        self.delete(endpoint, &sigv4::encode_path(bucket, None))
            .await
    }

    /// A whole multipart upload of `body` in parts of `part_bytes`, sent one after another.
    /// A failed upload is aborted (best effort) before the error is returned.
    pub async fn multipart_put(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        key: &str,
        body: Bytes,
        part_bytes: u64,
    ) -> Result<(), OpError> {
        assert!(part_bytes >= 1);
        let path = sigv4::encode_path(bucket, Some(key));
        let response = self
            .call(
                endpoint,
                Method::POST,
                &path,
                &[("uploads", "")],
                Bytes::new(),
            )
            .await?;
        let initiate = collect_bounded(response.into_body(), limits::XML_BODY_BYTES_MAX).await?;
        let upload_id = xml::parse_initiate_multipart(&initiate)
            .map_err(|e| OpError::BadResponse(e.to_string()))?;
        let result = self
            .upload_parts_and_complete(endpoint, &path, &upload_id, body, part_bytes)
            .await;
        if result.is_err() {
            let query = [("uploadId", upload_id.as_str())];
            if let Ok(response) = self
                .send(endpoint, Method::DELETE, &path, &query, Bytes::new())
                .await
            {
                let _ = drain(response.into_body(), None).await;
            }
        }
        result
    }

    async fn upload_parts_and_complete(
        &self,
        endpoint: &Endpoint,
        path: &str,
        upload_id: &str,
        body: Bytes,
        part_bytes: u64,
    ) -> Result<(), OpError> {
        let total = body.len() as u64;
        let parts = total.div_ceil(part_bytes).max(1);
        assert!(
            parts <= limits::PARTS_MAX,
            "part count is bounded by the settings check"
        );
        let mut etags: Vec<(u32, String)> = Vec::with_capacity(parts as usize);
        for part in 0..parts {
            let start = part * part_bytes;
            let end = (start + part_bytes).min(total);
            let number = (part + 1).to_string();
            let query = [("partNumber", number.as_str()), ("uploadId", upload_id)];
            let chunk = body.slice(start as usize..end as usize);
            let response = self
                .call(endpoint, Method::PUT, path, &query, chunk)
                .await?;
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| OpError::BadResponse("UploadPart without an ETag".to_owned()))?;
            drain(response.into_body(), None).await?;
            etags.push(((part + 1) as u32, etag));
        }
        let complete = Bytes::from(xml::complete_multipart_body(&etags));
        let query = [("uploadId", upload_id)];
        let response = self
            .call(endpoint, Method::POST, path, &query, complete)
            .await?;
        // CompleteMultipartUpload can fail after a 200: the error is in the body.
        let body = collect_bounded(response.into_body(), limits::XML_BODY_BYTES_MAX).await?;
        if let Some(error) = xml::parse_error(&body) {
            return Err(OpError::S3 {
                status: 200,
                code: error.code,
                message: error.message,
            });
        }
        Ok(())
    }
}

/// The error of a non-2xx response, from its S3 error document when it has one.
async fn error_from(response: Response<Incoming>) -> OpError {
    let status = response.status();
    let body = match collect_bounded(response.into_body(), limits::ERROR_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    match xml::parse_error(&body) {
        Some(error) => OpError::S3 {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
        None if status == StatusCode::NOT_FOUND => OpError::S3 {
            status: 404,
            code: "NotFound".to_owned(),
            message: String::new(),
        },
        None => OpError::Status {
            status: status.as_u16(),
        },
    }
}

/// Reads a body to the end, counting bytes; compares them with `expected` when given.
async fn drain(mut body: Incoming, expected: Option<&Bytes>) -> Result<u64, OpError> {
    let mut size_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OpError::Transport(error_chain(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(expected) = expected {
            let start = size_bytes as usize;
            let end = start + data.len();
            let Some(want) = expected.get(start..end) else {
                return Err(OpError::LengthMismatch {
                    expected_bytes: expected.len() as u64,
                    got_bytes: end as u64,
                });
            };
            if want != data.as_ref() {
                let at = want.iter().zip(data.iter()).position(|(a, b)| a != b);
                return Err(OpError::ContentMismatch {
                    offset_bytes: (start + at.unwrap_or(0)) as u64,
                });
            }
        }
        size_bytes += data.len() as u64;
    }
    Ok(size_bytes)
}

/// Reads a whole body of at most `bytes_max` bytes.
async fn collect_bounded(mut body: Incoming, bytes_max: usize) -> Result<Bytes, OpError> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OpError::Transport(error_chain(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if out.len() + data.len() > bytes_max {
            return Err(OpError::BadResponse(format!(
                "response body above {bytes_max} bytes"
            )));
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

/// An error and its sources on one line ("client error (Connect): connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::Credentials;

    fn signer() -> Signer {
        Signer::new(
            Credentials::new("a".to_owned(), "b".to_owned()),
            "us-east-1".to_owned(),
            "s3".to_owned(),
        )
    }

    #[test]
    fn endpoints_are_checked() {
        let ep = Endpoint::new(
            "A".to_owned(),
            "http://127.0.0.1:9000",
            signer(),
            PayloadSigning::Unsigned,
        )
        .unwrap();
        assert_eq!(ep.host, "127.0.0.1:9000");
        assert_eq!(ep.base, "http://127.0.0.1:9000");
        let ep = Endpoint::new(
            "A".to_owned(),
            "http://localhost/",
            signer(),
            PayloadSigning::Unsigned,
        )
        .unwrap();
        assert_eq!(ep.host, "localhost");
        assert!(!ep.is_https());
        let ep = Endpoint::new(
            "A".to_owned(),
            "https://s3.example.com:8443",
            signer(),
            PayloadSigning::Unsigned,
        )
        .unwrap();
        assert_eq!(ep.base, "https://s3.example.com:8443");
        assert!(ep.is_https());
        for bad in ["ftp://x", "127.0.0.1:9000", "http://x/bucket", "::"] {
            assert!(
                Endpoint::new("A".to_owned(), bad, signer(), PayloadSigning::Unsigned).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("loadgen-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = tls_config(Some(&missing), true).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = tls_config(Some(&empty), true).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        // Plain HTTP only: no CA needed, none loaded.
        assert!(tls_config(None, false).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
