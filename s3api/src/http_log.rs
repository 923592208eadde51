//! Request ids and the log line of a failed request.
//!
//! Every response carries `x-amz-request-id`; an error body gets the same id as `<RequestId>`
//! (s3s writes one only when the handler set it). A failed request is logged once, here: a
//! server fault (5xx) at ERROR, a client error (4xx) at DEBUG, with the client-supplied parts
//! (path, message) cut to [`LOG_FIELD_CHARS_MAX`] characters.
//!
//! s3s 0.14 logs every error response at ERROR itself, with the whole request body when the
//! XML was malformed (1 MB log lines from one request; an authenticated client can send
//! 20 MiB). [`keep`] drops s3s's ERROR events: the binary installs it as a filter, and
//! this module's line replaces them. It drops s3s's spans too: s3s 0.14 opens three at INFO
//! around every signature check, which the log never shows (percore logs no span context) and
//! which cost about 2% of a 4 KiB PUT's CPU (the registry's slot, the fmt layer formatting
//! their fields) while enabled.
//!
//! Does not decide statuses or codes (`s3::s3_err`, `serve`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::limits::{ERROR_BODY_BYTES_MAX, LOG_FIELD_CHARS_MAX};

pub const REQUEST_ID_HEADER: &str = "x-amz-request-id";

/// Whether a tracing event or span is kept: everything but s3s's own ERROR events and s3s's
/// spans. It reads only the callsite's metadata, so tracing caches the answer per callsite and
/// a dropped span costs one atomic load.
pub fn keep(meta: &tracing::Metadata<'_>) -> bool {
    let from_s3s = meta.target() == "s3s" || meta.target().starts_with("s3s::");
    !(from_s3s && (meta.is_span() || *meta.level() == tracing::Level::ERROR))
}

/// A new request id: 16 uppercase hex digits, unique within the process (a per-process random
/// base plus a counter), like S3's.
pub fn new_request_id() -> String {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016X}", base.wrapping_add(n))
}

/// An error response's body written by percore itself (s3s serialises the others).
pub fn error_body(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}\
         </Message><RequestId>{request_id}</RequestId></Error>",
        xml_escape(message)
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The text between `<tag>` and `</tag>` in `xml`, if any.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
}

/// At most `LOG_FIELD_CHARS_MAX` characters of `s`, with `…` when cut.
pub fn truncated(s: &str) -> String {
    match s.char_indices().nth(LOG_FIELD_CHARS_MAX) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// The error's code and message, and the body with `<RequestId>` added when it had none.
/// `None` when `body` is not an S3 error document.
fn with_request_id(body: &Bytes, request_id: &str) -> Option<(String, String, Bytes)> {
    if body.len() > ERROR_BODY_BYTES_MAX {
        return None;
    }
    let xml = std::str::from_utf8(body).ok()?;
    let end = xml.rfind("</Error>")?;
    let code = element(xml, "Code").unwrap_or_default().to_owned();
    let message = element(xml, "Message").unwrap_or_default().to_owned();
    if xml.contains("<RequestId>") {
        return Some((code, message, body.clone()));
    }
    let with_id = format!(
        "{}<RequestId>{request_id}</RequestId>{}",
        &xml[..end],
        &xml[end..]
    );
    Some((code, message, Bytes::from(with_id)))
}

/// Stamps `response` with `request_id` (header, and error body) and logs it when it failed.
pub fn finish(
    response: &mut http::Response<s3s::Body>,
    request_id: &str,
    method: &http::Method,
    uri: &http::Uri,
) {
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let (code, message) = match response
        .body()
        .bytes()
        .and_then(|b| with_request_id(&b, request_id))
    {
        Some((code, message, body)) => {
            if response
                .headers()
                .contains_key(http::header::CONTENT_LENGTH)
            {
                response.headers_mut().insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from(body.len()),
                );
            }
            *response.body_mut() = s3s::Body::from(body);
            (code, message)
        }
        None => (String::new(), String::new()),
    };
    let path = truncated(uri.path());
    let message = truncated(&message);
    if status.is_server_error() {
        tracing::error!(request_id, %method, path, status = status.as_u16(), code, message, "request failed");
    } else {
        tracing::debug!(request_id, %method, path, status = status.as_u16(), code, message, "request refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary's filter function (`src/main.rs` puts it after `RUST_LOG`'s), on a layer that
    /// counts what reaches it.
    #[test]
    fn s3s_spans_and_error_events_are_dropped_and_the_rest_kept() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        use tracing_subscriber::filter::filter_fn;
        use tracing_subscriber::prelude::*;

        #[derive(Clone, Default)]
        struct Seen {
            events: Arc<AtomicUsize>,
            spans: Arc<AtomicUsize>,
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_event(
                &self,
                _: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.events.fetch_add(1, Ordering::Relaxed);
            }
            fn on_new_span(
                &self,
                _: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.spans.fetch_add(1, Ordering::Relaxed);
            }
        }
        let seen = Seen::default();
        let subscriber =
            tracing_subscriber::registry().with(seen.clone().with_filter(filter_fn(keep)));
        tracing::subscriber::with_default(subscriber, || {
            // As s3s's `#[tracing::instrument]` on its signature checks opens them.
            let span = tracing::info_span!(target: "s3s::ops::signature", "v4_check");
            assert!(span.is_disabled());
            tracing::error!(target: "s3s::ops", "an error response");
            tracing::error!(target: "s3s", "an error response");
            assert_eq!(seen.spans.load(Ordering::Relaxed), 0);
            assert_eq!(seen.events.load(Ordering::Relaxed), 0);

            let span = tracing::info_span!(target: "openraft::core", "election");
            assert!(!span.is_disabled());
            // A crate whose name only starts like s3s's is not s3s.
            tracing::error!(target: "s3sx", "kept");
            tracing::warn!(target: "s3s::ops", "kept");
            tracing::error!(target: "s3api::serve", "kept");
            assert_eq!(seen.spans.load(Ordering::Relaxed), 1);
            assert_eq!(seen.events.load(Ordering::Relaxed), 3);
        });
    }

    #[test]
    fn request_id_goes_before_the_end_of_the_error() {
        let body = Bytes::from_static(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>\
              <Message>gone</Message></Error>",
        );
        let (code, message, out) = with_request_id(&body, "ABC").unwrap();
        assert_eq!((code.as_str(), message.as_str()), ("NoSuchKey", "gone"));
        let out = std::str::from_utf8(&out).unwrap();
        assert!(out.ends_with("<Message>gone</Message><RequestId>ABC</RequestId></Error>"));
        // An id already there is kept.
        let (_, _, again) = with_request_id(&Bytes::from(out.to_owned()), "XYZ").unwrap();
        assert_eq!(std::str::from_utf8(&again).unwrap(), out);
        assert!(with_request_id(&Bytes::from_static(b"not xml"), "A").is_none());
    }

    #[test]
    fn ids_are_unique_and_log_fields_bounded() {
        let a = new_request_id();
        assert_eq!(a.len(), 16);
        assert_ne!(a, new_request_id());
        let long = "é".repeat(LOG_FIELD_CHARS_MAX * 4);
        assert_eq!(truncated(&long).chars().count(), LOG_FIELD_CHARS_MAX + 1);
        assert_eq!(truncated("short"), "short");
    }

    #[test]
    fn percore_error_bodies_escape_the_message() {
        let body = error_body("RequestTimeout", "a<b", "ID");
        assert!(body.contains("<Message>a&lt;b</Message><RequestId>ID</RequestId>"));
    }
}
