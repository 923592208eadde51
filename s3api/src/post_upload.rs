//! Browser POST uploads (`POST /bucket` with a `multipart/form-data` form, AWS "Browser-based
//! uploads using POST"), served here end to end: `serve` hands such a request over before s3s
//! sees it. s3s 0.14 parses these forms itself but reads the whole file into memory (up to
//! 5 GB) before any handler runs, checks `x-amz-date` against a 15-minute clock skew that AWS
//! does not apply to POST (the policy's expiration bounds a form's life) and answers policy
//! failures with its own codes; percore answers for every rule, so none of it is s3s's here.
//!
//! One request, in order:
//! 1. The fields before the file are read under fixed bounds (`post_form`).
//! 2. Authentication: SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`,
//!    `x-amz-signature`: the signature of the base64 policy with the SigV4 signing key; the
//!    credential's region must be the server's) or SigV2 (`AWSAccessKeyId`, `signature`:
//!    HMAC-SHA1 of the policy). No signature fields: anonymous, and then no policy is allowed
//!    (an unsigned policy would bind nobody).
//! 3. The policy (`post_policy`): expiration, every condition, no uncovered field, and for
//!    SigV4 an exact-match condition on each signature field (AWS's rule). The
//!    content-length-range is enforced on the file's bytes as they stream.
//! 4. The fields become what a PUT carries in headers (Content-Type, Cache-Control,
//!    Content-Disposition, Content-Encoding, Expires, Content-MD5, `acl` as `x-amz-acl`, every
//!    other `x-amz-*` but the signature fields) and are judged by the PUT path's own checks:
//!    `access::check_header_values`, `refuse::refusal` (SSE, object lock in the wrong place:
//!    NotImplemented), then the bucket policy (`authz::judge` as `s3:PutObject` on the
//!    key, so an anonymous upload needs a policy that allows it), then `put_object` itself
//!    (storage class, metadata size, tagging, checksums and Content-MD5 against the body).
//!    `key`'s `${filename}` becomes the file part's name; the `tagging` field (XML, as in
//!    PutObjectTagging) becomes the tag set.
//! 5. The answer: a 303 to `success_action_redirect` (or `redirect`) with `bucket`, `key` and
//!    `etag` added to its query; else `success_action_status` 200 (empty), 201 (a PostResponse
//!    document) or 204 (the default, and for any other value, as AWS).
//!
//! Deliberately not done: `POST /bucket/key` forms (s3s's MethodNotAllowed stands), session
//! tokens (`x-amz-security-token` answers NotImplemented), any other `x-amz-*` field a PUT of
//! the form would not use (NotImplemented, never ignored), an invalid redirect URL (AWS ignores
//! it; here it is refused before anything is stored, 400 InvalidArgument). The bucket policy
//! sees the form's fields as the PUT's headers and the browser's User-Agent and Referer; a
//! signed form has `s3:authType` POST and `s3:signatureversion` AWS4-HMAC-SHA256 or AWS.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use s3s::dto::{ObjectCannedACL, PutObjectInput, StorageClass, StreamingBlob, Timestamp};
use s3s::host::S3Host;
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Result, S3};

use crate::post_form::{FileFault, Form, FormError};
use crate::post_policy::{PolicyError, PostPolicy};
use crate::s3::Gateway;
use crate::tls::SecureTransport;

/// Form fields that are authentication, not object attributes.
const AUTH_FIELDS: [&str; 4] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-signature",
];

/// Form fields a PUT would carry as these headers.
const HEADER_FIELDS: [&str; 7] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "content-md5",
];

/// Serves browser POST uploads (module docs).
pub struct Post {
    gateway: Gateway,
    region: String,
    host: Option<crate::host::DomainHost>,
}

/// Who signed a form: an access key and its secret.
struct Signer {
    access_key: String,
    secret_key: String,
    /// `s3:signatureversion` of the form: "AWS4-HMAC-SHA256" or "AWS" (SigV2).
    version: &'static str,
}

impl Post {
    pub fn new(gateway: Gateway, region: &str, host: Option<crate::host::DomainHost>) -> Post {
        Post {
            gateway,
            region: region.to_owned(),
            host,
        }
    }

    /// The bucket of a POST object upload (`POST /bucket` or `POST /` on a bucket's virtual
    /// host, no query, a multipart/form-data body); `None` for any other request.
    pub fn target<B>(&self, req: &http::Request<B>) -> Option<String> {
        if req.method() != http::Method::POST || req.uri().query().is_some() {
            return None;
        }
        let form = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"))
            });
        if !form {
            return None;
        }
        let path = req.uri().path();
        let host_bucket = self.host.as_ref().and_then(|h| {
            let host = req.headers().get(http::header::HOST)?.to_str().ok()?;
            h.parse_host_header(host).ok()?.bucket().map(str::to_owned)
        });
        if let Some(b) = host_bucket {
            return (path == "/").then_some(b);
        }
        let name = path.strip_prefix('/')?;
        let name = name.strip_suffix('/').unwrap_or(name);
        (!name.is_empty() && !name.contains('/')).then(|| name.to_owned())
    }

    /// Serves one upload to `bucket`; errors become S3 error responses.
    pub async fn serve(
        &self,
        bucket: String,
        req: http::Request<s3s::Body>,
        request_id: &str,
    ) -> http::Response<s3s::Body> {
        match self.upload(bucket, req).await {
            Ok(response) => response,
            Err(e) => {
                let status = e
                    .status_code()
                    .or_else(|| e.code().status_code())
                    .unwrap_or(StatusCode::BAD_REQUEST);
                let message = e.message().unwrap_or_default().to_owned();
                crate::serve::error_response(status, e.code().as_str(), &message, request_id)
            }
        }
    }

    async fn upload(
        &self,
        bucket: String,
        req: http::Request<s3s::Body>,
    ) -> S3Result<http::Response<s3s::Body>> {
        let (parts, body) = req.into_parts();
        if parts.headers.contains_key(http::header::AUTHORIZATION) {
            // Never verified here, so never taken as the caller's identity.
            return Err(s3_error!(
                InvalidRequest,
                "A POST upload is signed by its form fields (x-amz-signature), not by an \
                 Authorization header."
            ));
        }
        let boundary = boundary_of(&parts.headers)?;
        let form = Form::read(body, &boundary).await.map_err(form_error)?;
        let fields = form.fields.clone();
        if let Some(dup) = duplicate(&fields) {
            return Err(s3_error!(
                InvalidArgument,
                "The form field {dup} appears more than once."
            ));
        }
        let signer = self.authenticate(&fields)?;
        let range = check_policy(&fields, &bucket, signer.is_some())?;
        let key = object_key(&fields, &form.file.filename)?;
        let redirect = redirect_of(&fields)?;
        let headers = put_headers(&fields)?;
        let mut extensions = parts.extensions;
        let object = (bucket.as_str(), key.as_str());
        self.admit(
            signer.as_ref(),
            object,
            &headers,
            &parts.headers,
            &mut extensions,
        )
        .await?;
        let secure = extensions.get::<SecureTransport>().is_some();
        let mut input = put_input(&bucket, &key, &fields, &headers)?;
        let fault = Arc::new(Mutex::new(None));
        input.body = Some(StreamingBlob::wrap(
            form.file_stream(range, Arc::clone(&fault)),
        ));
        let mut extensions = extensions;
        extensions.insert(crate::notify::ViaPost);
        let request = S3Request {
            input,
            method: http::Method::PUT,
            uri: parts.uri,
            headers,
            extensions,
            credentials: signer.map(|s| s3s::auth::Credentials {
                access_key: s.access_key,
                secret_key: s.secret_key.into(),
            }),
            region: None,
            service: None,
            trailing_headers: None,
        };
        let stored = match self.gateway.put_object(request).await {
            Ok(out) => out.output,
            Err(e) => {
                let fault = fault.lock().unwrap_or_else(PoisonError::into_inner).take();
                return Err(fault.map_or(e, fault_error));
            }
        };
        let etag = stored
            .e_tag
            .map(|t| t.value().to_owned())
            .unwrap_or_default();
        let location = self.location(&parts.headers, secure, &bucket, &key);
        let done = Done {
            bucket: &bucket,
            key: &key,
            etag: &etag,
            location: &location,
            version_id: stored.version_id.as_deref(),
        };
        Ok(done.response(redirect.as_deref(), field(&fields, "success_action_status")))
    }

    /// The PUT the form asks for, judged as a PUT is: header values, refusals, fields no PUT
    /// uses, then the bucket policy (`s3:PutObject` on `object`, bucket and key).
    async fn admit(
        &self,
        signer: Option<&Signer>,
        (bucket, key): (&str, &str),
        headers: &HeaderMap,
        request_headers: &HeaderMap,
        extensions: &mut http::Extensions,
    ) -> S3Result<()> {
        crate::access::check_header_values(headers)?;
        let path = S3Path::Object {
            bucket: bucket.into(),
            key: key.into(),
        };
        crate::access::refused(&self.gateway, "PutObject", &path, headers, None).await?;
        check_known(headers)?;
        // The policy's aws:UserAgent and aws:Referer are the browser's.
        let mut judged_headers = headers.clone();
        for name in [http::header::USER_AGENT, http::header::REFERER] {
            if let Some(v) = request_headers.get(&name) {
                judged_headers.insert(name, v.clone());
            }
        }
        let mut judged = Judged {
            access_key: signer.map(|s| s.access_key.clone()),
            signature_version: signer.map(|s| s.version),
            path,
            headers: &judged_headers,
            extensions,
        };
        crate::authz::judge(&self.gateway, &mut judged).await
    }

    /// The form's signer, checked (module docs); `None`: anonymous.
    fn authenticate(&self, fields: &[(String, String)]) -> S3Result<Option<Signer>> {
        if field(fields, "x-amz-security-token").is_some() {
            return Err(s3_error!(
                NotImplemented,
                "x-amz-security-token: temporary credentials are not supported"
            ));
        }
        if let Some(signature) = field(fields, "x-amz-signature") {
            return self.sigv4(fields, signature).map(Some);
        }
        if field(fields, "signature").is_some() || field(fields, "awsaccesskeyid").is_some() {
            return self.sigv2(fields).map(Some);
        }
        Ok(None)
    }

    fn sigv4(&self, fields: &[(String, String)], signature: &str) -> S3Result<Signer> {
        let need = |name: &str| {
            field(fields, name).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Bucket POST must contain a field named '{name}'."
                )
            })
        };
        let (algorithm, credential, date) = (
            need("x-amz-algorithm")?,
            need("x-amz-credential")?,
            need("x-amz-date")?,
        );
        let policy = need("policy")?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-algorithm must be AWS4-HMAC-SHA256"
            ));
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, day, region, service, "aws4_request"] = scope[..] else {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-credential must be AK/yyyymmdd/region/s3/aws4_request"
            ));
        };
        if region != self.region {
            return Err(s3_error!(
                InvalidArgument,
                "the region '{region}' in x-amz-credential is wrong; expecting '{}'",
                self.region
            ));
        }
        if service != "s3" {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-credential must name the s3 service"
            ));
        }
        let date_ok = date.len() == 16
            && date.as_bytes()[8] == b'T'
            && date.ends_with('Z')
            && date.starts_with(day);
        if !date_ok {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-date must be yyyymmddTHHMMSSZ of the credential's day"
            ));
        }
        let signer = self.signer(access_key)?;
        let key = ["AWS4", &signer.secret_key].concat();
        let mut k = hmac_sha256(key.as_bytes(), day.as_bytes());
        for part in [region, service, "aws4_request"] {
            k = hmac_sha256(&k, part.as_bytes());
        }
        let expected = hex::encode(hmac_sha256(&k, policy.as_bytes()));
        if !same(expected.as_bytes(), signature.as_bytes()) {
            return Err(mismatch());
        }
        Ok(Signer {
            version: "AWS4-HMAC-SHA256",
            ..signer
        })
    }

    fn sigv2(&self, fields: &[(String, String)]) -> S3Result<Signer> {
        let need = |name: &str| {
            field(fields, name).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Bucket POST must contain a field named '{name}'."
                )
            })
        };
        let (access_key, signature, policy) =
            (need("awsaccesskeyid")?, need("signature")?, need("policy")?);
        let signer = self.signer(access_key)?;
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(signer.secret_key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(policy.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        if !same(expected.as_bytes(), signature.as_bytes()) {
            return Err(mismatch());
        }
        Ok(Signer {
            version: "AWS",
            ..signer
        })
    }

    fn signer(&self, access_key: &str) -> S3Result<Signer> {
        let users = self.gateway.policies.users();
        let user = users
            .as_deref()
            .and_then(|u| u.by_access_key(access_key))
            .ok_or_else(|| {
                s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })?;
        Ok(Signer {
            access_key: user.access_key.clone(),
            secret_key: user.secret_key.clone(),
            version: "AWS4-HMAC-SHA256",
        })
    }

    /// The object's URL, as AWS gives it in `Location`.
    fn location(&self, headers: &HeaderMap, secure: bool, bucket: &str, key: &str) -> String {
        let scheme = if secure { "https" } else { "http" };
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let virtual_host = self.host.as_ref().is_some_and(|h| {
            h.parse_host_header(host)
                .ok()
                .is_some_and(|vh| vh.bucket().is_some())
        });
        let key = encode(key, true);
        if virtual_host {
            format!("{scheme}://{host}/{key}")
        } else {
            format!("{scheme}://{host}/{bucket}/{key}")
        }
    }
}

/// The policy's verdict on the fields; returns the file size range it allows.
fn check_policy(fields: &[(String, String)], bucket: &str, signed: bool) -> S3Result<(u64, u64)> {
    let Some(text) = field(fields, "policy") else {
        return Ok((0, u64::MAX));
    };
    if !signed {
        return Err(s3_error!(
            InvalidArgument,
            "Bucket POST with a policy must be signed (x-amz-signature)."
        ));
    }
    let policy = PostPolicy::parse(text).map_err(|e| policy_error(&e))?;
    if field(fields, "x-amz-signature").is_some() {
        if let Some(missing) = AUTH_FIELDS[..3].iter().find(|f| !policy.has_eq(f)) {
            return Err(s3_error!(
                AccessDenied,
                "Invalid according to Policy: the policy must hold an exact-match condition \
                 for {missing}."
            ));
        }
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    policy
        .check(fields, bucket, now)
        .map_err(|e| policy_error(&e))?;
    Ok(policy.length_range())
}

/// A POST request as the bucket-policy gate reads it: `s3:PutObject` on the form's key.
struct Judged<'a> {
    access_key: Option<String>,
    signature_version: Option<&'static str>,
    path: S3Path,
    headers: &'a HeaderMap,
    extensions: &'a mut http::Extensions,
}

impl crate::authz::Judged for Judged<'_> {
    fn op_name(&self) -> &'static str {
        "PutObject"
    }
    fn access_key(&self) -> Option<&str> {
        self.access_key.as_deref()
    }
    fn s3_path(&self) -> &S3Path {
        &self.path
    }
    fn query(&self) -> &'static str {
        ""
    }
    fn headers(&self) -> &HeaderMap {
        self.headers
    }
    fn extensions_mut(&mut self) -> &mut http::Extensions {
        self.extensions
    }
    fn signature(&self) -> (Option<&'static str>, Option<&'static str>) {
        // A signed form is s3:authType POST, as in S3; an anonymous one has neither key.
        (
            self.signature_version,
            self.signature_version.map(|_| "POST"),
        )
    }
}

/// A stored upload and how to answer it.
struct Done<'a> {
    bucket: &'a str,
    key: &'a str,
    etag: &'a str,
    location: &'a str,
    version_id: Option<&'a str>,
}

impl Done<'_> {
    fn response(&self, redirect: Option<&str>, status: Option<&str>) -> http::Response<s3s::Body> {
        let quoted = format!("\"{}\"", self.etag);
        let (status, body) = match (redirect, status) {
            (Some(_), _) => (StatusCode::SEE_OTHER, String::new()),
            (None, Some("200")) => (StatusCode::OK, String::new()),
            (None, Some("201")) => (
                StatusCode::CREATED,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}\
                     </Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    xml(self.location),
                    xml(self.bucket),
                    xml(self.key),
                    xml(&quoted)
                ),
            ),
            _ => (StatusCode::NO_CONTENT, String::new()),
        };
        let xml_body = !body.is_empty();
        let mut response = http::Response::new(s3s::Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        set("etag", &quoted);
        if let Some(url) = redirect {
            let query = format!(
                "bucket={}&key={}&etag={}",
                encode(self.bucket, false),
                encode(self.key, false),
                encode(&quoted, false)
            );
            set("location", &with_query(url, &query));
        } else {
            set("location", self.location);
        }
        if let Some(v) = self.version_id {
            set("x-amz-version-id", v);
        }
        if xml_body {
            set("content-type", "application/xml");
        }
        response
    }
}

/// `url` with `query` appended to its query string (before any fragment).
fn with_query(url: &str, query: &str) -> String {
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let sep = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    match fragment {
        Some(f) => format!("{base}{sep}{query}#{f}"),
        None => format!("{base}{sep}{query}"),
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn duplicate(fields: &[(String, String)]) -> Option<&str> {
    fields.iter().enumerate().find_map(|(i, (n, _))| {
        fields[..i]
            .iter()
            .any(|(m, _)| m == n)
            .then_some(n.as_str())
    })
}

fn boundary_of(headers: &HeaderMap) -> S3Result<String> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.split(';')
        .skip(1)
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_owned())
        })
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or_else(|| {
            s3_error!(
                MalformedPOSTRequest,
                "The body of your POST request is not well-formed multipart/form-data: \
                 no boundary."
            )
        })
}

/// `key` with `${filename}` replaced by the file's name.
fn object_key(fields: &[(String, String)], filename: &str) -> S3Result<String> {
    let key = field(fields, "key").ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check \
             the order of the fields."
        )
    })?;
    let key = key.replace("${filename}", filename);
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "User key must have a length greater than 0."
        ));
    }
    Ok(key)
}

/// The redirect asked for, if any: an absolute http(s) URL.
fn redirect_of(fields: &[(String, String)]) -> S3Result<Option<String>> {
    let Some(url) = field(fields, "success_action_redirect").or_else(|| field(fields, "redirect"))
    else {
        return Ok(None);
    };
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && !url.chars().any(|c| c.is_control() || c == ' ')
        && url.len() <= 2048;
    if !valid {
        return Err(s3_error!(
            InvalidArgument,
            "success_action_redirect must be an absolute http or https URL"
        ));
    }
    Ok(Some(url.to_owned()))
}

/// The headers a PUT of this form would carry (module docs).
fn put_headers(fields: &[(String, String)]) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let header = if name == "acl" {
            "x-amz-acl"
        } else if HEADER_FIELDS.contains(&name.as_str())
            || (name.starts_with("x-amz-") && !AUTH_FIELDS.contains(&name.as_str()))
        {
            name.as_str()
        } else {
            continue;
        };
        let bad = || {
            s3_error!(
                InvalidArgument,
                "The form field {name} is not a valid header value."
            )
        };
        let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value).map_err(|_| bad())?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// The `x-amz-*` fields a PUT of the form uses, beyond those `refuse` turns down first.
fn check_known(headers: &HeaderMap) -> S3Result<()> {
    const USED: [&str; 15] = [
        "x-amz-acl",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-key",
        "x-amz-server-side-encryption-customer-key-md5",
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-object-lock-legal-hold",
        "x-amz-storage-class",
        "x-amz-checksum-crc32",
        "x-amz-checksum-crc32c",
        "x-amz-checksum-crc64nvme",
        "x-amz-checksum-sha1",
        "x-amz-checksum-sha256",
    ];
    let unknown = headers.keys().map(HeaderName::as_str).find(|name| {
        name.starts_with("x-amz-") && !name.starts_with("x-amz-meta-") && !USED.contains(name)
    });
    match unknown {
        Some(name) => Err(s3_error!(
            NotImplemented,
            "The form field {name} is not supported in a POST upload."
        )),
        None => Ok(()),
    }
}

/// The PutObject input of the form (its body is added by the caller).
fn put_input(
    bucket: &str,
    key: &str,
    fields: &[(String, String)],
    headers: &HeaderMap,
) -> S3Result<PutObjectInput> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let expires = get("expires")
        .map(|v| {
            Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, &v)
                .map_err(|_| s3_error!(InvalidArgument, "Expires must be an HTTP date"))
        })
        .transpose()?;
    let retain_until = get("x-amz-object-lock-retain-until-date")
        .map(|v| {
            Timestamp::parse(s3s::dto::TimestampFormat::DateTime, &v).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "x-amz-object-lock-retain-until-date must be an ISO 8601 date"
                )
            })
        })
        .transpose()?;
    let metadata: s3s::dto::Metadata = fields
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_owned(), v.clone())))
        .collect();
    Ok(PutObjectInput {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        content_type: get("content-type"),
        cache_control: get("cache-control"),
        content_disposition: get("content-disposition"),
        content_encoding: get("content-encoding"),
        content_language: get("content-language"),
        content_md5: get("content-md5"),
        expires,
        storage_class: get("x-amz-storage-class").map(StorageClass::from),
        acl: get("x-amz-acl").map(ObjectCannedACL::from),
        metadata: (!metadata.is_empty()).then_some(metadata),
        tagging: field(fields, "tagging").map(tagging_header).transpose()?,
        object_lock_mode: get("x-amz-object-lock-mode").map(s3s::dto::ObjectLockMode::from),
        object_lock_retain_until_date: retain_until,
        object_lock_legal_hold_status: get("x-amz-object-lock-legal-hold")
            .map(s3s::dto::ObjectLockLegalHoldStatus::from),
        server_side_encryption: get("x-amz-server-side-encryption")
            .map(s3s::dto::ServerSideEncryption::from),
        ssekms_key_id: get("x-amz-server-side-encryption-aws-kms-key-id"),
        sse_customer_algorithm: get("x-amz-server-side-encryption-customer-algorithm"),
        sse_customer_key: get("x-amz-server-side-encryption-customer-key"),
        sse_customer_key_md5: get("x-amz-server-side-encryption-customer-key-md5"),
        ..PutObjectInput::default()
    })
}

/// The `tagging` field (a Tagging XML document) in the `x-amz-tagging` header's form, which
/// `put_object` validates.
fn tagging_header(xml_text: &str) -> S3Result<String> {
    use s3s::xml::Deserialize as _;
    let mut d = s3s::xml::Deserializer::new(xml_text.as_bytes());
    let tagging = s3s::dto::Tagging::deserialize(&mut d).map_err(|_| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our \
             published schema."
        )
    })?;
    let pairs: Vec<String> = tagging
        .tag_set
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                encode(t.key.as_deref().unwrap_or(""), false),
                encode(t.value.as_deref().unwrap_or(""), false)
            )
        })
        .collect();
    Ok(pairs.join("&"))
}

/// Percent-encodes all but RFC 3986's unreserved characters (and `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time equality.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn mismatch() -> S3Error {
    s3_error!(
        SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )
}

fn form_error(e: FormError) -> S3Error {
    match e {
        FormError::Malformed(why) => s3_error!(
            MalformedPOSTRequest,
            "The body of your POST request is not well-formed multipart/form-data: {why}."
        ),
        FormError::FieldsTooLarge => S3Error::with_message(
            S3ErrorCode::MaxPostPreDataLengthExceededError,
            "Your POST request fields preceding the upload file were too large.",
        ),
        FormError::NoFile => s3_error!(
            InvalidArgument,
            "POST requires exactly one file upload per request."
        ),
        FormError::Body(e) => s3_error!(IncompleteBody, "the request body failed: {e}"),
    }
}

fn fault_error(f: FileFault) -> S3Error {
    match f {
        FileFault::TooLarge { max } => s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size ({max} bytes by the policy)."
        ),
        FileFault::TooSmall { min } => s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size ({min} bytes by the \
             policy)."
        ),
        FileFault::Form(e) => form_error(e),
    }
}

fn policy_error(e: &PolicyError) -> S3Error {
    let code = match e {
        PolicyError::Malformed(_) => S3ErrorCode::InvalidPolicyDocument,
        _ => S3ErrorCode::AccessDenied,
    };
    let mut err = S3Error::with_message(code, e.message());
    if matches!(e, PolicyError::Malformed(_)) {
        err.set_status_code(StatusCode::BAD_REQUEST);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_query() {
        assert_eq!(with_query("http://a/b", "x=1"), "http://a/b?x=1");
        assert_eq!(with_query("http://a/b?c=2", "x=1"), "http://a/b?c=2&x=1");
        assert_eq!(with_query("http://a/b?#f", "x=1"), "http://a/b?x=1#f");
        assert_eq!(encode("a b/\"c\"", false), "a%20b%2F%22c%22");
    }

    #[test]
    fn sigv4_signing_key_matches_aws_example() {
        // AWS's documented derivation example (secret, 20120215, us-east-1, iam).
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let mut k = hmac_sha256(format!("AWS4{secret}").as_bytes(), b"20120215");
        for part in ["us-east-1", "iam", "aws4_request"] {
            k = hmac_sha256(&k, part.as_bytes());
        }
        assert_eq!(
            hex::encode(k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
