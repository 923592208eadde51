//! AWS Signature Version 4, header form, as S3 uses it.
//!
//! Owns the canonical request, the string to sign, the signing key and the `Authorization`
//! header, plus the S3 percent-encoding rules and the `x-amz-date` clock format. It does not
//! build HTTP requests (see `s3`) and does not do query-string (presigned) or chunked signing.
//!
//! S3 differs from the generic algorithm in one place: the path is encoded once (the object key's
//! bytes), not normalised and encoded twice. Callers pass the path already encoded with
//! [`encode_path`], and the same string goes on the wire, so the two cannot disagree.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything except the unreserved characters `A-Z a-z 0-9 - _ . ~`.
const ENCODE_ALL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As `ENCODE_ALL`, but `/` stays: used for object keys in the path.
const ENCODE_PATH: &AsciiSet = &ENCODE_ALL.remove(b'/');

/// The hex SHA-256 of an empty payload.
#[cfg(test)]
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash that tells S3 the body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An access key pair. The secret never appears in `Debug` output or reports.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
}

impl Credentials {
    pub fn new(access_key_id: String, secret_access_key: String) -> Self {
        Credentials {
            access_key_id,
            secret_access_key,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// One request as the signer sees it.
#[derive(Debug)]
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The path exactly as sent, already encoded (see [`encode_path`]).
    pub path_encoded: &'a str,
    /// Query parameters, not encoded; order does not matter.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign, including `host` and `x-amz-date`; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Signs requests for one region and service.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: Credentials,
    region: String,
    service: String,
}

impl Signer {
    pub fn new(credentials: Credentials, region: String, service: String) -> Self {
        Signer {
            credentials,
            region,
            service,
        }
    }

    /// The `Authorization` header value for `input` at `amz_datetime` (`YYYYMMDDTHHMMSSZ`).
    pub fn authorization(&self, amz_datetime: &str, input: &SignInput<'_>) -> String {
        assert_eq!(amz_datetime.len(), 16, "x-amz-date is YYYYMMDDTHHMMSSZ");
        let date = &amz_datetime[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let (canonical, signed_headers) = canonical_request(input);
        let to_sign = string_to_sign(amz_datetime, &scope, &canonical);
        let key = signing_key(
            &self.credentials.secret_access_key,
            date,
            &self.region,
            &self.service,
        );
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.credentials.access_key_id
        )
    }
}

/// Percent-encodes a query key or value (everything but unreserved characters).
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, ENCODE_ALL).to_string()
}

/// The encoded path for `bucket` and optional `key`, path-style: `/bucket/key`.
pub fn encode_path(bucket: &str, key: Option<&str>) -> String {
    let mut path = String::with_capacity(bucket.len() + key.map_or(0, str::len) * 3 + 2);
    path.push('/');
    path.push_str(&encode_component(bucket));
    if let Some(key) = key {
        path.push('/');
        let _ = write!(path, "{}", utf8_percent_encode(key, ENCODE_PATH));
    }
    path
}

/// The canonical query string: encoded pairs sorted by key, then value.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode_component(k), encode_component(v)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Returns the canonical request and the signed-headers list.
pub fn canonical_request(input: &SignInput<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), normalize_header_value(value)))
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated names are joined with commas in the order given, as the algorithm requires.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let mut canonical = String::with_capacity(256);
    canonical.push_str(input.method);
    canonical.push('\n');
    canonical.push_str(input.path_encoded);
    canonical.push('\n');
    canonical.push_str(&canonical_query(input.query));
    canonical.push('\n');
    for (name, value) in &merged {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    let signed: Vec<&str> = merged.iter().map(|(n, _)| n.as_str()).collect();
    let signed_headers = signed.join(";");
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(input.payload_hash);
    (canonical, signed_headers)
}

/// Trims a header value and collapses inner runs of spaces to one.
fn normalize_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_datetime: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_datetime}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The derived signing key for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds (UTC).
pub fn amz_datetime(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let seconds_of_day = unix_s % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds_of_day / 3600,
        (seconds_of_day / 60) % 60,
        seconds_of_day % 60
    )
}

/// `x-amz-date` for now.
pub fn amz_datetime_now() -> String {
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    amz_datetime(unix_s)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AWS SigV4 test suite: example credentials, us-east-1, service "service",
    // 2015-08-30T12:36:00Z. Expected signatures as published in the suite.
    const DATETIME: &str = "20150830T123600Z";

    fn suite_signer() -> Signer {
        Signer::new(
            Credentials::new(
                "AKIDEXAMPLE".to_owned(),
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            ),
            "us-east-1".to_owned(),
            "service".to_owned(),
        )
    }

    fn suite_case(method: &str, path: &str, query: &[(&str, &str)]) -> String {
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", DATETIME)];
        suite_signer().authorization(
            DATETIME,
            &SignInput {
                method,
                path_encoded: path,
                query,
                headers: &headers,
                payload_hash: EMPTY_PAYLOAD_SHA256,
            },
        )
    }

    const SCOPE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";

    #[test]
    fn get_vanilla() {
        assert_eq!(
            suite_case("GET", "/", &[]),
            format!("{SCOPE}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
    }

    #[test]
    fn get_vanilla_canonical_request_and_string_to_sign() {
        let headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", DATETIME)];
        let (canonical, signed) = canonical_request(&SignInput {
            method: "GET",
            path_encoded: "/",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_PAYLOAD_SHA256,
        });
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            DATETIME,
            "20150830/us-east-1/service/aws4_request",
            &canonical,
        );
        assert!(
            to_sign.ends_with("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        );
    }

    #[test]
    fn post_vanilla() {
        assert_eq!(
            suite_case("POST", "/", &[]),
            format!("{SCOPE}5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        assert_eq!(
            suite_case("GET", "/", &[("Param2", "value2"), ("Param1", "value1")]),
            format!("{SCOPE}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
    }

    #[test]
    fn get_unreserved_and_utf8_paths() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let path = format!("/{}", encode_component(unreserved));
        assert_eq!(
            suite_case("GET", &path, &[]),
            format!("{SCOPE}07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f")
        );
        let path = format!("/{}", encode_component("\u{1234}"));
        assert_eq!(path, "/%E1%88%B4");
        assert_eq!(
            suite_case("GET", &path, &[]),
            format!("{SCOPE}8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        // A signed body and a third signed header.
        let payload = sha256_hex(b"Param1=value1");
        assert_eq!(
            payload,
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", DATETIME),
        ];
        let auth = suite_signer().authorization(
            DATETIME,
            &SignInput {
                method: "POST",
                path_encoded: "/",
                query: &[],
                headers: &headers,
                payload_hash: &payload,
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn get_header_value_trim() {
        // Values are trimmed and inner runs of spaces collapsed before signing.
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("My-Header1", " value1"),
            ("My-Header2", " \"a   b   c\""),
            ("X-Amz-Date", DATETIME),
        ];
        let auth = suite_signer().authorization(
            DATETIME,
            &SignInput {
                method: "GET",
                path_encoded: "/",
                query: &[],
                headers: &headers,
                payload_hash: EMPTY_PAYLOAD_SHA256,
            },
        );
        assert!(auth.contains("SignedHeaders=host;my-header1;my-header2;x-amz-date,"));
        assert!(
            auth.ends_with("acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
            "{auth}"
        );
    }

    // The S3 documentation's header-auth examples ("Signature Calculations for the Authorization
    // Header"): AKIAIOSFODNN7EXAMPLE, us-east-1, s3, 2013-05-24T00:00:00Z.
    fn s3_doc_signature(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        payload_hash: &str,
    ) -> String {
        let signer = Signer::new(
            Credentials::new(
                "AKIAIOSFODNN7EXAMPLE".to_owned(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            ),
            "us-east-1".to_owned(),
            "s3".to_owned(),
        );
        let mut headers = vec![
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", payload_hash),
        ];
        headers.extend_from_slice(extra);
        let auth = signer.authorization(
            "20130524T000000Z",
            &SignInput {
                method,
                path_encoded: path,
                query,
                headers: &headers,
                payload_hash,
            },
        );
        auth.rsplit("Signature=").next().unwrap().to_owned()
    }

    #[test]
    fn s3_doc_get_object_with_range() {
        assert_eq!(
            s3_doc_signature(
                "GET",
                "/test.txt",
                &[],
                &[("Range", "bytes=0-9")],
                EMPTY_PAYLOAD_SHA256
            ),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn s3_doc_put_object_encodes_the_key_once() {
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", encode_component("test$file.text"));
        assert_eq!(path, "/test%24file.text");
        assert_eq!(
            s3_doc_signature(
                "PUT",
                &path,
                &[],
                &[
                    ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ],
                &payload
            ),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn s3_doc_list_objects_sorts_the_query() {
        assert_eq!(
            s3_doc_signature(
                "GET",
                "/",
                &[("prefix", "J"), ("max-keys", "2")],
                &[],
                EMPTY_PAYLOAD_SHA256
            ),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(normalize_header_value("  a   b  c "), "a b c");
    }

    #[test]
    fn s3_paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            encode_path("bucket", Some("dir/a b+c&d~é")),
            "/bucket/dir/a%20b%2Bc%26d~%C3%A9"
        );
        assert_eq!(encode_path("bucket", None), "/bucket");
        assert_eq!(
            canonical_query(&[("prefix", "a/b"), ("list-type", "2"), ("max-keys", "")]),
            "list-type=2&max-keys=&prefix=a%2Fb"
        );
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_datetime(0), "19700101T000000Z");
        // 2015-08-30T12:36:00Z, the suite's date.
        assert_eq!(amz_datetime(1_440_938_160), DATETIME);
        // A leap day.
        assert_eq!(amz_datetime(951_782_400), "20000229T000000Z");
    }
}
