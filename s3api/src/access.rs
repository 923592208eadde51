//! The gate every request passes after s3s has verified its signature and before its body is
//! read (s3s's access hook): the authentication rules s3s 0.14 leaves unchecked, then
//! [`crate::refuse`]. s3s checks the signature itself; this module checks what the signature
//! covers and for how long, because a valid signature over the wrong things is no protection:
//!
//! - **Unsigned headers.** Every `x-amz-*` header of a SigV4 request must be in its signed
//!   headers, and `host` must be signed. Found on main: adding an unsigned `x-amz-copy-source`
//!   to a signed PUT turned it into a copy of another object; unsigned `x-amz-meta-*`,
//!   `x-amz-storage-class` and `x-amz-tagging` were applied. AWS answers 403 AccessDenied
//!   ("There were headers present in the request which were not signed").
//! - **Presigned lifetime.** `X-Amz-Expires` is at most 604,800 s (7 days), as AWS requires;
//!   s3s accepted 2^32 − 1, so a URL dated ten years ago still worked.
//! - **Region.** The credential scope's region must be this server's (`--region`); s3s signs
//!   with whatever the client put there, even an empty string.
//! - **SigV2 time.** A SigV2 header-signed request must carry a `Date` (or `x-amz-date`, which
//!   wins as in AWS) within 15 minutes of the server's clock; s3s accepted any date, so a
//!   captured request could be replayed forever. (s3s checks the `Expires` of SigV2 query auth.)
//! - **`Date` instead of `x-amz-date`.** SigV4 allows either (botocore signs `Date` when a
//!   request carries one, and then sends no `x-amz-date`); s3s 0.14 requires `x-amz-date`
//!   (400 "missing header: x-amz-date"). `serve` adds an `x-amz-date` made from the `Date`
//!   ([`amz_date_from_date`]; the canonical request holds only the signed headers, so the
//!   signature is unchanged) and marks the request with [`AmzDateFromDate`], which exempts that
//!   one header from the unsigned-header rule.
//! - **Bucket names** AWS reserves (`xn--`, `sthree-`, `amzn-s3-demo-` prefixes; `-s3alias`,
//!   `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3` suffixes) and labels that start or end with a
//!   hyphen (`a.-b`) are InvalidBucketName on CreateBucket; s3s checks the rest.
//!
//! - **Header values** at most 60 KiB each: a longer one would not fit the u16 length of the
//!   strings of a metadata record (a 300 KB Content-Type reached one).
//!
//! A request asking for a public ACL on a bucket whose public access block sets BlockPublicAcls
//! answers AccessDenied where `refuse` would answer NotImplemented (`public_access`).
//!
//! Then, for signed and unsigned (anonymous) requests alike, who may do what: the bucket
//! policy's judgement (`authz`), last, so every check above applies to anonymous requests too.
//!
//! Deliberately not here: the body-level checks: payload hashes and chunk signatures (s3s,
//! while streaming), the digests of bodies read whole and the end of aws-chunked bodies
//! (`http_body`, armed from here), a malformed `x-amz-content-sha256` (`serve`, before s3s,
//! which misnames it).

use hyper::{HeaderMap, Method, Uri};
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::PutObjectInput;
use s3s::{s3_error, S3Error, S3Request, S3Result};

use crate::refuse;

/// The longest request header value, in bytes. Header values stored in a metadata record
/// (content type, cache control, …) have u16 lengths there; hyper bounds the whole header
/// section (about 400 KB).
pub const HEADER_VALUE_BYTES_MAX: usize = 60 * 1024;
const _: () = assert!(HEADER_VALUE_BYTES_MAX <= u16::MAX as usize);

/// The longest a presigned URL may live, in seconds (AWS: 7 days).
pub const PRESIGNED_EXPIRES_SECS_MAX: u64 = 604_800;
/// How far a SigV2 request's date may be from the server's clock (AWS: 15 minutes).
pub const SIGV2_SKEW_SECS_MAX: i64 = 15 * 60;

/// s3s's access hook for percore (s3s takes one): a request must pass [`check_auth`], fit
/// the bound on bodies read whole (`http_body`), ask for nothing [`refuse`] turns down, and be
/// allowed by its bucket's owner or policy (`authz`).
pub struct Gate {
    region: String,
    gateway: crate::s3::Gateway,
}

impl Gate {
    pub fn new(region: &str, gateway: crate::s3::Gateway) -> Gate {
        Gate {
            region: region.to_owned(),
            gateway,
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        check_header_values(cx.headers())?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if cx.extensions_mut().get::<AmzDateFromDate>().is_some() {
            let mut headers = cx.headers().clone();
            headers.remove("x-amz-date");
            check_auth(cx.method(), cx.uri(), &headers, &self.region, now)?;
        } else {
            check_auth(cx.method(), cx.uri(), cx.headers(), &self.region, now)?;
        }
        crate::http_body::check_body_limit(cx)?;
        crate::http_body::check_body_digests(cx)?;
        let op = cx.s3_op().name();
        if op == "CreateBucket" {
            if let s3s::path::S3Path::Bucket { bucket } = cx.s3_path() {
                check_bucket_name(bucket)?;
            }
        }
        let query = cx.uri().query();
        refused(&self.gateway, op, cx.s3_path(), cx.headers(), query).await?;
        crate::authz::judge(&self.gateway, cx).await
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        match refuse::put_object_refusal(&req.input) {
            Some(e) => {
                crate::public_access::check_put_object(&self.gateway, &req.input).await?;
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// `refuse`'s answer to a request asking for what percore does not do (NotImplemented), or
/// AccessDenied where the bucket's public access block refuses the public ACL it asks for:
/// every public ACL is refused, so only a refused request can be one the block turns into
/// AccessDenied. Shared by s3s's requests and browser POST uploads (`post_upload`).
pub async fn refused(
    gateway: &crate::s3::Gateway,
    op: &str,
    path: &s3s::path::S3Path,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> S3Result<()> {
    let Some(e) = refuse::refusal(op, headers, query) else {
        return Ok(());
    };
    let query = query.unwrap_or("");
    crate::public_access::check_acl_request(gateway, op, path, headers, query).await?;
    Err(e)
}

/// No header value longer than [`HEADER_VALUE_BYTES_MAX`]. Found by a test: a 300 KB
/// Content-Type reached the object head, whose strings have u16 lengths.
pub fn check_header_values(headers: &HeaderMap) -> S3Result<()> {
    match headers
        .iter()
        .find(|(_, v)| v.len() > HEADER_VALUE_BYTES_MAX)
    {
        Some((name, value)) => Err(s3_error!(
            RequestHeaderSectionTooLarge,
            "Your request header section exceeds the maximum allowed size: {name} has {} \
             bytes, at most {HEADER_VALUE_BYTES_MAX}.",
            value.len()
        )),
        None => Ok(()),
    }
}

/// Marks a request whose `x-amz-date` was made by `serve` from its `Date` (module docs).
#[derive(Debug, Clone, Copy)]
pub struct AmzDateFromDate;

/// The `x-amz-date` to add to a SigV4 header-signed request that carries a `Date` and no
/// `x-amz-date` (module docs); `None` for every other request.
pub fn amz_date_from_date(headers: &HeaderMap) -> Option<hyper::header::HeaderValue> {
    if headers.contains_key("x-amz-date") {
        return None;
    }
    let sigv4 = headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 "));
    if !sigv4 {
        return None;
    }
    let date = headers
        .get("date")?
        .to_str()
        .ok()
        .and_then(parse_http_date)?;
    let t = time::OffsetDateTime::from_unix_timestamp(date).ok()?;
    let value = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    hyper::header::HeaderValue::from_str(&value).ok()
}

/// The signature's coverage and lifetime (module docs). `now` is Unix seconds.
pub fn check_auth(
    _method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    region: &str,
    now: i64,
) -> S3Result<()> {
    let query = uri.query().unwrap_or("");
    if let Some(algorithm) = query_param(query, "X-Amz-Algorithm") {
        if algorithm == "AWS4-HMAC-SHA256" {
            return check_presigned_v4(query, headers, region);
        }
        return Ok(());
    }
    let Some(authorization) = headers.get("authorization") else {
        return Ok(());
    };
    let authorization = String::from_utf8_lossy(authorization.as_bytes());
    if let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256") {
        let credential = auth_field(rest, "Credential")
            .ok_or_else(|| s3_error!(AuthorizationHeaderMalformed, "missing Credential"))?;
        check_region(credential, region, false)?;
        let signed = auth_field(rest, "SignedHeaders")
            .ok_or_else(|| s3_error!(AuthorizationHeaderMalformed, "missing SignedHeaders"))?;
        check_signed_headers(signed, headers)
    } else if authorization.starts_with("AWS ") {
        check_sigv2_date(headers, now)
    } else {
        Ok(())
    }
}

fn check_presigned_v4(query: &str, headers: &HeaderMap, region: &str) -> S3Result<()> {
    let expires = query_param(query, "X-Amz-Expires").unwrap_or_default();
    match expires.parse::<u64>() {
        Ok(secs) if (1..=PRESIGNED_EXPIRES_SECS_MAX).contains(&secs) => {}
        _ => {
            return Err(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Expires must be a number of seconds from 1 to 604800 (7 days)"
            ))
        }
    }
    let credential = query_param(query, "X-Amz-Credential").unwrap_or_default();
    check_region(&credential, region, true)?;
    let signed = query_param(query, "X-Amz-SignedHeaders").unwrap_or_default();
    check_signed_headers(&signed, headers)
}

/// `AK/yyyymmdd/region/service/aws4_request`: the region must be ours.
fn check_region(credential: &str, region: &str, presigned: bool) -> S3Result<()> {
    let scope_region = credential.split('/').nth(2).unwrap_or("");
    if scope_region == region {
        return Ok(());
    }
    let message = format!("the region '{scope_region}' is wrong; expecting '{region}'");
    Err(if presigned {
        s3_error!(
            AuthorizationQueryParametersError,
            "Error parsing the X-Amz-Credential parameter; {message}"
        )
    } else {
        s3_error!(
            AuthorizationHeaderMalformed,
            "The authorization header is malformed; {message}"
        )
    })
}

/// `host` and every `x-amz-*` header present must be signed.
fn check_signed_headers(signed: &str, headers: &HeaderMap) -> S3Result<()> {
    let signed: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if !signed.iter().any(|h| h == "host") {
        return Err(s3_error!(
            AccessDenied,
            "There were headers present in the request which were not signed: host"
        ));
    }
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(hyper::header::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && !signed.iter().any(|s| s == name))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    unsigned.dedup();
    Err(s3_error!(
        AccessDenied,
        "There were headers present in the request which were not signed: {}",
        unsigned.join(", ")
    ))
}

fn check_sigv2_date(headers: &HeaderMap, now: i64) -> S3Result<()> {
    let date = headers
        .get("x-amz-date")
        .or_else(|| headers.get("date"))
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .ok_or_else(|| {
            s3_error!(
                AccessDenied,
                "AWS authentication requires a valid Date or x-amz-date header"
            )
        })?;
    if (now - date).abs() > SIGV2_SKEW_SECS_MAX {
        return Err(s3_error!(
            RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large."
        ));
    }
    Ok(())
}

/// An RFC 7231 date (`Thu, 03 Dec 2026 22:00:00 GMT`) as Unix seconds; the zero offsets of
/// RFC 2822 (`-0000`, which botocore writes, and `+0000`) count as GMT.
fn parse_http_date(s: &str) -> Option<i64> {
    if let Some(utc) = s
        .strip_suffix(" -0000")
        .or_else(|| s.strip_suffix(" +0000"))
    {
        return parse_http_date(&format!("{utc} GMT"));
    }
    let t = s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, s).ok()?;
    let t: time::OffsetDateTime = t.into();
    Some(t.unix_timestamp())
}

/// `Name=value` inside a SigV4 Authorization header, up to the next comma.
fn auth_field<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    rest.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

/// A query parameter by exact name, percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some((hex(bytes[i + 1])?, hex(bytes[i + 2])?)))
            .flatten();
        if let Some((h, l)) = escaped {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bucket-name rules s3s does not check (module docs).
pub fn check_bucket_name(name: &str) -> S3Result<()> {
    const PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let reserved =
        PREFIXES.iter().any(|p| name.starts_with(p)) || SUFFIXES.iter().any(|s| name.ends_with(s));
    let bad_label = name
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'));
    if reserved || bad_label {
        return Err(invalid_bucket_name(name));
    }
    Ok(())
}

fn invalid_bucket_name(name: &str) -> S3Error {
    s3_error!(
        InvalidBucketName,
        "The specified bucket is not valid: {name} (a reserved prefix or suffix, or a label that \
         starts or ends with a hyphen)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    const NOW: i64 = 1_796_335_200; // 2026-12-03T22:00:00Z

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    fn code(uri: &str, pairs: &[(&'static str, &str)]) -> Option<S3ErrorCode> {
        let uri: Uri = uri.parse().unwrap();
        check_auth(&Method::PUT, &uri, &headers(pairs), "us-east-1", NOW)
            .err()
            .map(|e| e.code().clone())
    }

    fn v4(signed: &str, region: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/20261203/{region}/s3/aws4_request, \
             SignedHeaders={signed}, Signature=00"
        )
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let auth = v4("host;x-amz-content-sha256;x-amz-date", "us-east-1");
        let base = [
            ("authorization", auth.as_str()),
            ("x-amz-date", "20261203T220000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        assert_eq!(code("/b/k", &base), None);
        let mut copy = base.to_vec();
        copy.push(("x-amz-copy-source", "/other/secret"));
        assert_eq!(code("/b/k", &copy), Some(S3ErrorCode::AccessDenied));
        let mut meta = base.to_vec();
        meta.push(("x-amz-meta-owner", "mallory"));
        assert_eq!(code("/b/k", &meta), Some(S3ErrorCode::AccessDenied));
        let no_host = v4("x-amz-content-sha256;x-amz-date", "us-east-1");
        assert_eq!(
            code(
                "/b/k",
                &[
                    ("authorization", &no_host),
                    ("x-amz-date", "20261203T220000Z")
                ]
            ),
            Some(S3ErrorCode::AccessDenied)
        );
    }

    #[test]
    fn region_must_be_ours() {
        for region in ["eu-west-1", ""] {
            let auth = v4("host;x-amz-date", region);
            assert_eq!(
                code(
                    "/b/k",
                    &[("authorization", &auth), ("x-amz-date", "20261203T220000Z")]
                ),
                Some(S3ErrorCode::AuthorizationHeaderMalformed),
                "{region:?}"
            );
        }
    }

    #[test]
    fn presigned_expiry_is_bounded() {
        let url = |expires: &str, region: &str| {
            format!(
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20161203%2F{region}\
                 %2Fs3%2Faws4_request&X-Amz-Date=20161203T000000Z&X-Amz-Expires={expires}\
                 &X-Amz-SignedHeaders=host&X-Amz-Signature=00"
            )
        };
        assert_eq!(code(&url("604800", "us-east-1"), &[]), None);
        for bad in ["604801", "4294967295", "0", "-1", "x"] {
            assert_eq!(
                code(&url(bad, "us-east-1"), &[]),
                Some(S3ErrorCode::AuthorizationQueryParametersError),
                "{bad}"
            );
        }
        assert_eq!(
            code(&url("60", "mars-1"), &[]),
            Some(S3ErrorCode::AuthorizationQueryParametersError)
        );
        assert_eq!(
            code(&url("60", "us-east-1"), &[("x-amz-acl", "private")]),
            Some(S3ErrorCode::AccessDenied)
        );
    }

    #[test]
    fn sigv2_dates_are_checked() {
        let fresh = "Thu, 03 Dec 2026 22:10:00 GMT";
        let old = "Wed, 03 Dec 2025 22:00:00 GMT";
        let auth = ("authorization", "AWS AK:c2ln");
        assert_eq!(code("/b/k", &[auth, ("date", fresh)]), None);
        assert_eq!(
            code("/b/k", &[auth, ("date", old)]),
            Some(S3ErrorCode::RequestTimeTooSkewed)
        );
        // x-amz-date wins over Date, as in AWS.
        assert_eq!(
            code("/b/k", &[auth, ("date", fresh), ("x-amz-date", old)]),
            Some(S3ErrorCode::RequestTimeTooSkewed)
        );
        assert_eq!(code("/b/k", &[auth]), Some(S3ErrorCode::AccessDenied));
    }

    #[test]
    fn amz_date_from_a_sigv4_date() {
        let auth = v4("date;host;x-amz-content-sha256", "us-east-1");
        let date = ("date", "Thu, 03 Dec 2026 22:10:05 GMT");
        assert_eq!(
            amz_date_from_date(&headers(&[("authorization", &auth), date])).unwrap(),
            "20261203T221005Z"
        );
        let both = headers(&[
            ("authorization", &auth),
            date,
            ("x-amz-date", "20261203T221005Z"),
        ]);
        assert!(amz_date_from_date(&both).is_none());
        let botocore = ("date", "Thu, 03 Dec 2026 22:10:05 -0000");
        assert_eq!(
            amz_date_from_date(&headers(&[("authorization", &auth), botocore])).unwrap(),
            "20261203T221005Z"
        );
        assert!(amz_date_from_date(&headers(&[("authorization", "AWS AK:c2ln"), date])).is_none());
        assert!(
            amz_date_from_date(&headers(&[("authorization", &auth), ("date", "soon")])).is_none()
        );
    }

    #[test]
    fn reserved_bucket_names() {
        for bad in [
            "sthree-x",
            "xn--abc",
            "amzn-s3-demo-bucket",
            "abc-s3alias",
            "abc--ol-s3",
            "abc.mrap",
            "abc--x-s3",
            "a.-b",
            "a-.b",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        for good in ["photos", "my-bucket.v2", "a-b.c-d", "s3alias-not-suffix"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn header_values_are_bounded() {
        let big = "a".repeat(HEADER_VALUE_BYTES_MAX + 1);
        let e = check_header_values(&headers(&[("content-type", big.as_str())]));
        assert_eq!(
            e.err().map(|e| e.code().clone()),
            Some(S3ErrorCode::RequestHeaderSectionTooLarge)
        );
        let fits = "a".repeat(HEADER_VALUE_BYTES_MAX);
        let many = [
            ("content-type", fits.as_str()),
            ("cache-control", fits.as_str()),
        ];
        assert!(check_header_values(&headers(&many)).is_ok());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("AK%2F2026%2fus"), "AK/2026/us");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
