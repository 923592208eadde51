//! CORS: a bucket's cross-origin rules (Put/Get/DeleteBucketCors), the answer to a browser's
//! preflight `OPTIONS`, and the `Access-Control-*` headers of actual cross-origin responses.
//!
//! The configuration is one metadata record, `R` ‖ scope ‖ `\0` ‖ `cors` (`bucket_config`), on
//! the bucket record's replicas, in this module's codec (format 1, at most [`RULES_MAX`] rules
//! and [`RECORD_BYTES_MAX`] bytes). Keyed by the bucket's scope, it dies with its incarnation:
//! the lifecycle pass reclaims it with the bucket's other records. Validation is S3's:
//! AllowedMethod only GET, PUT, HEAD, POST, DELETE; at most one `*` in an AllowedOrigin or an
//! AllowedHeader; no `*` in an ExposeHeader (InvalidRequest); a configuration without rules, a
//! rule without origin or method, more than 100 rules (MalformedXML).
//!
//! Preflights are unauthenticated (as in S3) and never reach s3s, which routes no `OPTIONS`:
//! `serve.rs` hands every `OPTIONS` naming a bucket (path style, or virtual-host style under
//! `--domain`) to [`Front::preflight`]. The first rule whose origin (one `*` matches any run
//! of characters), method and every requested header (case-insensitive, `*` too) match answers
//! 200 with the `Access-Control-Allow-*` headers; otherwise 403 AccessForbidden; no `Origin`
//! or `Access-Control-Request-Method`: 400.
//!
//! Any other request with an `Origin` is served as usual, then [`Front::decorate`] adds what
//! the first rule matching its origin and method allows (`Access-Control-Allow-Origin`,
//! `-Methods`, `-Expose-Headers`, `-Allow-Credentials` unless the origin is `*`), and
//! `Vary: Origin, ...` whenever the bucket has a configuration — error responses included.
//!
//! Both read the configuration through [`Cache`]: per bucket name, the lookup (no bucket, no
//! configuration, or the rules) kept [`CACHE_TTL`], at most [`CACHE_ENTRIES_MAX`] names and
//! [`CACHE_BYTES_MAX`] bytes (when full, expired entries go, then all). A
//! browser's requests cost no metadata read once the bucket's rules are cached; a name costs
//! at most two reads (bucket record, configuration) per TTL. Put/DeleteBucketCors drop the
//! name on the gateway that served them; another gateway of a cluster sees the change within
//! the TTL.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use s3s::dto::{
    CORSConfiguration, CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::host::S3Host;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::records::{Malformed, Reader};
use crate::s3::s3_err;
use crate::s3::{user_of, Gateway};
use crate::ttl_cache::TtlCache;

const VERSION: u8 = 1;
/// S3's limit on rules per configuration.
pub const RULES_MAX: usize = 100;
/// S3's limit on a rule ID.
pub const RULE_ID_CHARS_MAX: usize = 255;
/// The stored configuration must fit one metadata value (S3 bounds it at 64 KB too).
pub const RECORD_BYTES_MAX: usize = 64 * 1024;
const _: () = assert!(RECORD_BYTES_MAX < proto::limits::META_VALUE_BYTES_MAX as usize);
/// How long a bucket's looked-up rules are used without reading them again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Bucket names the cache holds at most (expired ones go first, then all).
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Bytes of rules the cache holds at most (a configuration is up to 64 KiB stored).
pub const CACHE_BYTES_MAX: usize = 8 << 20;
/// Headers one preflight may ask for (more is refused).
const REQUESTED_HEADERS_MAX: usize = 256;
/// The methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually \
     because the evalution of Origin, request method / Access-Control-Request-Method or \
     Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// One CORS rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub id: Option<String>,
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    /// As given (matched case-insensitively).
    pub headers: Vec<String>,
    pub expose: Vec<String>,
    pub max_age: Option<u32>,
}

/// `*` anywhere in `pattern` (once) stands for any run of characters.
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((pre, post)) => {
            value.len() >= pre.len() + post.len()
                && value.is_char_boundary(pre.len())
                && value.is_char_boundary(value.len() - post.len())
                && eq(pre, &value[..pre.len()])
                && eq(post, &value[value.len() - post.len()..])
        }
    }
}

impl Rule {
    fn allows(&self, origin: &str, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
            && self.origins.iter().any(|o| wildcard(o, origin, false))
    }

    fn allows_header(&self, header: &str) -> bool {
        self.headers.iter().any(|h| wildcard(h, header, true))
    }

    /// The value of `Access-Control-Allow-Origin` for `origin`.
    fn allow_origin<'a>(&self, origin: &'a str) -> &'a str {
        if self.origins.iter().any(|o| o == "*") {
            "*"
        } else {
            origin
        }
    }
}

/// The first rule allowing a preflight of `method` from `origin` with `headers` (lowercase).
pub fn preflight_rule<'a>(
    rules: &'a [Rule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.allows(origin, method) && headers.iter().all(|h| r.allows_header(h)))
}

/// The first rule allowing an actual request of `method` from `origin`.
pub fn actual_rule<'a>(rules: &'a [Rule], origin: &str, method: &str) -> Option<&'a Rule> {
    rules.iter().find(|r| r.allows(origin, method))
}

// ---------------------------------------------------------------------------------------------
// Validation and the DTO.

fn invalid(message: String) -> S3Error {
    S3Error::with_message(s3s::S3ErrorCode::InvalidRequest, message)
}

/// The rules of a PutBucketCors body, validated as S3 does.
pub fn from_dto(cfg: &CORSConfiguration) -> S3Result<Vec<Rule>> {
    if cfg.cors_rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a CORSConfiguration needs a CORSRule"
        ));
    }
    if cfg.cors_rules.len() > RULES_MAX {
        return Err(s3_error!(
            MalformedXML,
            "a CORSConfiguration has at most {RULES_MAX} rules"
        ));
    }
    cfg.cors_rules.iter().map(rule_from_dto).collect()
}

fn rule_from_dto(r: &CORSRule) -> S3Result<Rule> {
    if r.allowed_methods.is_empty() || r.allowed_origins.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a CORSRule needs an AllowedMethod and an AllowedOrigin"
        ));
    }
    if let Some(id) = &r.id {
        if id.chars().count() > RULE_ID_CHARS_MAX {
            return Err(invalid(format!(
                "The ID of a CORSRule is at most {RULE_ID_CHARS_MAX} characters."
            )));
        }
    }
    for m in &r.allowed_methods {
        if !METHODS.contains(&m.as_str()) {
            return Err(invalid(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
    }
    for o in &r.allowed_origins {
        if o.matches('*').count() > 1 {
            return Err(invalid(format!(
                "AllowedOrigin \"{o}\" can not have more than one wildcard."
            )));
        }
    }
    let headers = r.allowed_headers.clone().unwrap_or_default();
    for h in &headers {
        if h.matches('*').count() > 1 {
            return Err(invalid(format!(
                "AllowedHeader \"{h}\" can not have more than one wildcard."
            )));
        }
    }
    let expose = r.expose_headers.clone().unwrap_or_default();
    for h in &expose {
        if h.contains('*') {
            return Err(invalid(format!(
                "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard \
                 for ExposeHeader."
            )));
        }
        if HeaderValue::from_str(h).is_err() {
            return Err(invalid(format!(
                "ExposeHeader \"{h}\" is not a header name."
            )));
        }
    }
    let max_age = match r.max_age_seconds {
        None => None,
        Some(s) => Some(
            u32::try_from(s)
                .map_err(|_| invalid(format!("MaxAgeSeconds must not be negative (found {s}).")))?,
        ),
    };
    Ok(Rule {
        id: r.id.clone().filter(|id| !id.is_empty()),
        origins: r.allowed_origins.clone(),
        methods: r.allowed_methods.clone(),
        headers,
        expose,
        max_age,
    })
}

pub fn to_dto(rules: &[Rule]) -> Vec<CORSRule> {
    let opt = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    rules
        .iter()
        .map(|r| CORSRule {
            allowed_headers: opt(&r.headers),
            allowed_methods: r.methods.clone(),
            allowed_origins: r.origins.clone(),
            expose_headers: opt(&r.expose),
            id: r.id.clone(),
            max_age_seconds: r.max_age.map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The stored record.

/// The configuration's record name (`bucket_config`).
const CONFIG_NAME: &str = "cors";

/// Format 1: version u8 ‖ rule count u16 ‖ per rule: has id u8 ‖ [id str] ‖ origins ‖
/// methods ‖ headers ‖ expose (each a u16 count of str) ‖ has max age u8 ‖ [max age u32];
/// a str is a u16 length ‖ UTF-8; little-endian. `None` when it would not fit one record.
pub fn encode(rules: &[Rule]) -> Option<Bytes> {
    fn put_str(b: &mut BytesMut, s: &str) -> Option<()> {
        b.put_u16_le(u16::try_from(s.len()).ok()?);
        b.put_slice(s.as_bytes());
        Some(())
    }
    fn put_list(b: &mut BytesMut, list: &[String]) -> Option<()> {
        b.put_u16_le(u16::try_from(list.len()).ok()?);
        list.iter().try_for_each(|s| put_str(b, s))
    }
    let mut b = BytesMut::new();
    b.put_u8(VERSION);
    b.put_u16_le(u16::try_from(rules.len()).ok()?);
    for r in rules {
        match &r.id {
            Some(id) => {
                b.put_u8(1);
                put_str(&mut b, id)?;
            }
            None => b.put_u8(0),
        }
        for list in [&r.origins, &r.methods, &r.headers, &r.expose] {
            put_list(&mut b, list)?;
        }
        match r.max_age {
            Some(s) => {
                b.put_u8(1);
                b.put_u32_le(s);
            }
            None => b.put_u8(0),
        }
        if b.len() > RECORD_BYTES_MAX {
            return None;
        }
    }
    Some(b.freeze())
}

/// A list of strings: u16 count ‖ strings.
fn list(r: &mut Reader) -> Result<Vec<String>, Malformed> {
    let n = r.u16()?;
    (0..n).map(|_| r.str()).collect()
}

pub fn decode(b: Bytes) -> Result<Vec<Rule>, Malformed> {
    let mut r = Reader::new(b, "cors");
    if r.u8()? != VERSION {
        return Err(Malformed("unknown cors record version"));
    }
    let n = r.u16()?;
    let mut rules = Vec::with_capacity(usize::from(n).min(RULES_MAX));
    for _ in 0..n {
        let id = match r.u8()? {
            0 => None,
            1 => Some(r.str()?),
            _ => return Err(Malformed("cors record id tag")),
        };
        let origins = list(&mut r)?;
        let methods = list(&mut r)?;
        let headers = list(&mut r)?;
        let expose = list(&mut r)?;
        let max_age = match r.u8()? {
            0 => None,
            1 => Some(r.u32()?),
            _ => return Err(Malformed("cors record max age tag")),
        };
        rules.push(Rule {
            id,
            origins,
            methods,
            headers,
            expose,
            max_age,
        });
    }
    if !r.is_done() {
        return Err(Malformed("cors record has trailing bytes"));
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------------
// The cache of lookups.

/// What a bucket name has, as far as CORS goes.
#[derive(Debug, Clone)]
pub enum Lookup {
    NoBucket,
    /// The bucket has no configuration.
    NoConfig,
    Rules(Arc<Vec<Rule>>),
}

/// Per bucket name, its last lookup (see the module docs), within [`CACHE_ENTRIES_MAX`] names
/// and [`CACHE_BYTES_MAX`] bytes of rules.
pub struct Cache(TtlCache<Lookup>);

impl Default for Cache {
    fn default() -> Cache {
        Cache(TtlCache::new(CACHE_TTL, CACHE_ENTRIES_MAX, CACHE_BYTES_MAX))
    }
}

/// What an entry holds, about: its name and its rules' text.
fn size_of(bucket: &str, lookup: &Lookup) -> usize {
    let rules = match lookup {
        Lookup::Rules(rules) => rules
            .iter()
            .map(|r| {
                let strs = [&r.origins, &r.methods, &r.headers, &r.expose]
                    .iter()
                    .flat_map(|l| l.iter())
                    .map(|s| s.len() + 24)
                    .sum::<usize>();
                strs + r.id.as_ref().map_or(0, String::len) + 128
            })
            .sum(),
        Lookup::NoBucket | Lookup::NoConfig => 0,
    };
    bucket.len() + 64 + rules
}

impl Cache {
    fn get(&self, bucket: &str) -> Option<Lookup> {
        self.0.get(bucket)
    }

    fn put(&self, bucket: &str, lookup: Lookup) {
        let size = size_of(bucket, &lookup);
        self.0.put(bucket, lookup, size);
    }

    /// Drops `bucket`'s lookup (its configuration changed here).
    pub fn forget(&self, bucket: &str) {
        self.0.forget(bucket);
    }
}

// ---------------------------------------------------------------------------------------------
// The S3 calls.

impl Gateway {
    pub(crate) async fn cors_put(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let rules = from_dto(&input.cors_configuration)?;
        let encoded = encode(&rules).ok_or_else(|| {
            invalid(format!(
                "The CORS configuration is too large (at most {RECORD_BYTES_MAX} bytes stored)."
            ))
        })?;
        let stored = self.config_put(&scope, CONFIG_NAME, &encoded).await;
        self.cors.forget(&input.bucket);
        stored?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(crate) async fn cors_get(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let rules = self
            .cors_rules(&scope)
            .await?
            .ok_or_else(|| s3_error!(NoSuchCORSConfiguration))?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(to_dto(&rules)),
        }))
    }

    pub(crate) async fn cors_delete(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        self.config_delete(&scope, CONFIG_NAME).await?;
        self.cors.forget(&req.input.bucket);
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }

    /// A scope's CORS rules (`None`: no configuration).
    async fn cors_rules(&self, scope: &str) -> S3Result<Option<Vec<Rule>>> {
        self.config_read(scope, CONFIG_NAME)
            .await?
            .map(|v| decode(v).map_err(|e| s3_error!(e, InternalError)))
            .transpose()
    }

    /// What bucket `name` has, through the cache.
    async fn cors_lookup(&self, name: &str) -> S3Result<Lookup> {
        if let Some(l) = self.cors.get(name) {
            return Ok(l);
        }
        let lookup = match self.store.bucket(name).await.map_err(s3_err)? {
            None => Lookup::NoBucket,
            Some(b) => match self.cors_rules(&b.scope(name)).await? {
                None => Lookup::NoConfig,
                Some(rules) => Lookup::Rules(Arc::new(rules)),
            },
        };
        self.cors.put(name, lookup.clone());
        Ok(lookup)
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP side, called by `serve.rs`.

/// What the HTTP server needs for CORS: the object service and how buckets are addressed.
pub struct Front {
    gateway: Gateway,
    host: Option<crate::host::DomainHost>,
}

/// A cross-origin request's facts, taken before it is served.
pub struct Actual {
    bucket: String,
    origin: String,
    method: http::Method,
}

impl Front {
    pub fn new(gateway: Gateway, host: Option<crate::host::DomainHost>) -> Front {
        Front { gateway, host }
    }

    /// The bucket a request names: its host's under `--domain`, else the path's first segment;
    /// only S3's bucket names (s3s refuses the others), so no lookup is made for anything else.
    fn bucket_of(&self, req: &http::request::Parts) -> Option<String> {
        let from_host = self.host.as_ref().and_then(|host| {
            let header = req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri.authority().map(http::uri::Authority::as_str))?;
            let vh = host.parse_host_header(header).ok()?;
            vh.bucket().map(str::to_owned)
        });
        let bucket = match from_host {
            Some(b) => b,
            None => req
                .uri
                .path()
                .strip_prefix('/')?
                .split('/')
                .next()?
                .to_owned(),
        };
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'));
        valid.then_some(bucket)
    }

    /// The facts of a request with an `Origin` that names a bucket (`None` for any other).
    pub fn actual(&self, req: &http::request::Parts) -> Option<Actual> {
        let origin = req.headers.get(http::header::ORIGIN)?.to_str().ok()?;
        Some(Actual {
            bucket: self.bucket_of(req)?,
            origin: origin.to_owned(),
            method: req.method.clone(),
        })
    }

    /// Adds the CORS headers `actual`'s bucket allows to its response (a failed lookup adds
    /// none: the response stands).
    pub async fn decorate(&self, actual: Actual, response: &mut http::Response<s3s::Body>) {
        let Ok(Lookup::Rules(rules)) = self.gateway.cors_lookup(&actual.bucket).await else {
            return;
        };
        let headers = response.headers_mut();
        headers.append(http::header::VARY, HeaderValue::from_static(VARY));
        let Some(rule) = actual_rule(&rules, &actual.origin, actual.method.as_str()) else {
            return;
        };
        allow_headers(headers, rule, &actual.origin);
    }

    /// The answer to an `OPTIONS` request, or `None` when it names no bucket (s3s answers).
    pub async fn preflight(
        &self,
        req: &http::request::Parts,
        request_id: &str,
    ) -> Option<http::Response<s3s::Body>> {
        let bucket = self.bucket_of(req)?;
        let text = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
        let Some(origin) = text(http::header::ORIGIN) else {
            return Some(refusal(
                http::StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
                request_id,
            ));
        };
        let Some(method) = text(http::header::ACCESS_CONTROL_REQUEST_METHOD) else {
            return Some(refusal(
                http::StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid Access-Control-Request-Method: null",
                request_id,
            ));
        };
        let mut requested = Vec::new();
        for v in req
            .headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        {
            let Ok(v) = v.to_str() else {
                return Some(forbidden(NOT_ALLOWED, request_id));
            };
            requested.extend(
                v.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
            );
        }
        if requested.len() > REQUESTED_HEADERS_MAX {
            return Some(forbidden(NOT_ALLOWED, request_id));
        }
        let rules = match self.gateway.cors_lookup(&bucket).await {
            Ok(Lookup::Rules(rules)) => rules,
            Ok(Lookup::NoConfig) => {
                return Some(forbidden(
                    "CORSResponse: CORS is not enabled for this bucket.",
                    request_id,
                ))
            }
            Ok(Lookup::NoBucket) => {
                return Some(forbidden("CORSResponse: Bucket not found", request_id))
            }
            Err(e) => {
                let status = e
                    .status_code()
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                let message = e.message().unwrap_or("");
                return Some(refusal(status, e.code().as_str(), message, request_id));
            }
        };
        let Some(rule) = preflight_rule(&rules, origin, method, &requested) else {
            let mut refused = forbidden(NOT_ALLOWED, request_id);
            refused
                .headers_mut()
                .append(http::header::VARY, HeaderValue::from_static(VARY));
            return Some(refused);
        };
        let mut response = http::Response::new(s3s::Body::empty());
        let headers = response.headers_mut();
        allow_headers(headers, rule, origin);
        if !requested.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
                headers.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        if let Some(age) = rule.max_age {
            headers.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        headers.append(http::header::VARY, HeaderValue::from_static(VARY));
        Some(response)
    }
}

/// The headers every allowed cross-origin response carries.
fn allow_headers(headers: &mut HeaderMap, rule: &Rule, origin: &str) {
    let allow_origin = rule.allow_origin(origin);
    let Ok(value) = HeaderValue::from_str(allow_origin) else {
        return;
    };
    headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    if let Ok(v) = HeaderValue::from_str(&rule.methods.join(", ")) {
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !rule.expose.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rule.expose.join(", ")) {
            headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
    if allow_origin != "*" {
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn forbidden(message: &str, request_id: &str) -> http::Response<s3s::Body> {
    refusal(
        http::StatusCode::FORBIDDEN,
        "AccessForbidden",
        message,
        request_id,
    )
}

fn refusal(
    status: http::StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let mut response = http::Response::new(s3s::Body::from(crate::http_log::error_body(
        code, message, request_id,
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Rule {
            origins: v(origins),
            methods: v(methods),
            headers: v(headers),
            ..Rule::default()
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "http://a.example", false));
        assert!(wildcard(
            "http://*.example.com",
            "http://x.y.example.com",
            false
        ));
        assert!(!wildcard(
            "http://*.example.com",
            "http://example.com",
            false
        ));
        assert!(!wildcard("http://a.example", "http://A.example", false));
        assert!(wildcard("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard("ab*ba", "aba", false));
        assert!(wildcard("ab*ba", "abba", false));
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = vec![
            rule(&["http://a"], &["GET"], &[]),
            rule(&["*"], &["PUT"], &["x-*", "content-type"]),
        ];
        assert_eq!(actual_rule(&rules, "http://a", "GET"), Some(&rules[0]));
        assert_eq!(actual_rule(&rules, "http://b", "GET"), None);
        let h = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            preflight_rule(&rules, "http://b", "PUT", &h(&["x-test", "content-type"])),
            Some(&rules[1])
        );
        assert_eq!(
            preflight_rule(&rules, "http://b", "PUT", &h(&["authorization"])),
            None
        );
        assert_eq!(
            preflight_rule(&rules, "http://a", "GET", &h(&["x-y"])),
            None
        );
        assert_eq!(rules[1].allow_origin("http://b"), "*");
        assert_eq!(rules[0].allow_origin("http://a"), "http://a");
    }

    #[test]
    fn codec_round_trip_and_refusals() {
        let mut r = rule(&["http://a", "*"], &["GET", "PUT"], &["x-*"]);
        r.id = Some("one".into());
        r.expose = vec!["ETag".into()];
        r.max_age = Some(3000);
        let rules = vec![r, rule(&["*"], &["HEAD"], &[])];
        let b = encode(&rules).unwrap();
        assert_eq!(decode(b.clone()).unwrap(), rules);
        for cut in 0..b.len() {
            assert!(decode(b.slice(..cut)).is_err(), "cut at {cut} decoded");
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(decode(Bytes::from(longer)).is_err());
        let mut other = b.to_vec();
        other[0] = 9;
        assert!(decode(Bytes::from(other)).is_err());
        let huge = vec![rule(
            &[&"o".repeat(60_000), &"p".repeat(10_000)],
            &["GET"],
            &[],
        )];
        assert!(encode(&huge).is_none());
    }

    #[test]
    fn cache_is_bounded_and_forgets() {
        let cache = Cache::default();
        let big = Lookup::Rules(Arc::new(vec![
            rule(&[&"o".repeat(60_000)], &["GET"], &[]);
            4
        ]));
        for i in 0..200 {
            cache.put(&format!("b{i}"), big.clone());
            let (_, bytes) = cache.0.held();
            assert!(bytes <= CACHE_BYTES_MAX, "{bytes} bytes held");
        }
        for i in 0..(CACHE_ENTRIES_MAX + 10) {
            cache.put(&format!("n{i}"), Lookup::NoBucket);
            assert!(cache.0.held().0 <= CACHE_ENTRIES_MAX);
        }
        let last = format!("n{}", CACHE_ENTRIES_MAX + 9);
        assert!(matches!(cache.get(&last), Some(Lookup::NoBucket)));
        cache.forget(&last);
        assert!(cache.get(&last).is_none());
        cache.0.held();
    }

    #[test]
    fn validation() {
        let dto = |m: &str, o: &str, h: &str| CORSConfiguration {
            cors_rules: vec![CORSRule {
                allowed_methods: vec![m.into()],
                allowed_origins: vec![o.into()],
                allowed_headers: Some(vec![h.into()]),
                ..CORSRule::default()
            }],
        };
        let code = |c: &CORSConfiguration| from_dto(c).unwrap_err().code().as_str().to_owned();
        assert!(from_dto(&dto("GET", "*", "*")).is_ok());
        assert_eq!(code(&dto("PATCH", "*", "*")), "InvalidRequest");
        assert_eq!(code(&dto("GET", "*.*", "*")), "InvalidRequest");
        assert_eq!(code(&dto("GET", "*", "**")), "InvalidRequest");
        assert_eq!(
            code(&CORSConfiguration { cors_rules: vec![] }),
            "MalformedXML"
        );
        let many = CORSConfiguration {
            cors_rules: vec![dto("GET", "*", "*").cors_rules[0].clone(); RULES_MAX + 1],
        };
        assert_eq!(code(&many), "MalformedXML");
    }
}
