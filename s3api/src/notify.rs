//! Bucket event notifications, the configuration: Put/GetBucketNotificationConfiguration, kept
//! as the bucket configuration record `notification` (`bucket_config`).
//!
//! A webhook is named by the node's operator in the server config (`[[webhook]]` with `name`
//! and `url`), never by a bucket owner: a URL in a bucket's configuration would let anyone with
//! a bucket make the server POST to any address it can reach. A bucket owner points a standard
//! `QueueConfiguration` at one with the ARN `arn:percore:webhook::NAME`, so the aws CLI's
//! `put-bucket-notification-configuration` works unchanged.
//!
//! Refused, never ignored: Topic and LambdaFunction configurations, SQS ARNs and EventBridge
//! answer `NotImplemented`; event types S3 has but percore does not emit (restore, replication,
//! tagging, ACL, lifecycle …) answer `NotImplemented` too; names S3 does not know, malformed
//! filters, unknown webhooks and overlapping configurations answer `InvalidArgument`, as S3 does.
//!
//! After a successful write, [`Gateway::notify_created`] and [`Gateway::notify_removed`] (one
//! call in each write path) turn the bucket's matching rules into S3 event records and hand
//! them to this node's durable queue. Not owned here: the queue and its delivery
//! (`notify_queue`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use s3s::dto::{
    Event, FilterRule, FilterRuleName, GetBucketNotificationConfigurationInput,
    GetBucketNotificationConfigurationOutput, NotificationConfiguration,
    NotificationConfigurationFilter, PutBucketNotificationConfigurationInput,
    PutBucketNotificationConfigurationOutput, QueueConfiguration, S3KeyFilter,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::records::ObjectHead;
use crate::s3::{user_of, Gateway};

/// The bucket configuration record holding a bucket's notification rules.
const BUCKET_CONFIG: &str = "notification";
/// The record's format version.
const VERSION: u8 = 1;
/// The ARN prefix that names a webhook of the server config.
pub const WEBHOOK_ARN_PREFIX: &str = "arn:percore:webhook::";
/// Most configurations one bucket may hold (S3's documented bound is 100 per type).
pub const RULES_MAX: usize = 100;
/// Most event names one configuration may list.
pub const EVENTS_MAX: usize = 16;
/// Longest configuration id, webhook name and filter value, in bytes (S3: 1,024 for keys).
pub const TEXT_BYTES_MAX: usize = 1024;

/// The event types percore emits, as S3 names them.
pub const EMITTED: &[&str] = &[
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];

/// Event types S3 has and percore does not emit: asking for them is refused.
const NOT_EMITTED: &[&str] = &[
    "s3:ReducedRedundancyLostObject",
    "s3:ObjectRestore:*",
    "s3:ObjectRestore:Post",
    "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:Replication:*",
    "s3:Replication:OperationFailedReplication",
    "s3:Replication:OperationNotTracked",
    "s3:Replication:OperationMissedThreshold",
    "s3:Replication:OperationReplicatedAfterThreshold",
    "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectAcl:Put",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
];

/// One notification configuration: which events of which keys go to which webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// The webhook's name in the server config.
    pub webhook: String,
    /// Event names as given: an entry of [`EMITTED`] or a family wildcard (`s3:ObjectCreated:*`).
    pub events: Vec<String>,
    pub prefix: String,
    pub suffix: String,
}

impl Rule {
    /// Whether this rule asks for event `name` (an entry of [`EMITTED`]) on `key`.
    pub fn matches(&self, name: &str, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && key.ends_with(&self.suffix)
            && self.events.iter().any(|e| event_covers(e, name))
    }
}

/// Whether the event name or wildcard `pattern` covers the emitted event `name`.
fn event_covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(family) => name.starts_with(family),
        None => pattern == name,
    }
}

/// Whether two event names or wildcards cover a common event.
fn events_overlap(a: &str, b: &str) -> bool {
    EMITTED
        .iter()
        .any(|e| event_covers(a, e) && event_covers(b, e))
}

/// Checks one event name: known and emitted, or a refusal as S3 or percore answers it.
fn check_event(name: &str) -> S3Result<()> {
    let known =
        EMITTED.contains(&name) || name == "s3:ObjectCreated:*" || name == "s3:ObjectRemoved:*";
    if known {
        return Ok(());
    }
    if NOT_EMITTED.contains(&name) {
        return Err(s3_error!(
            NotImplemented,
            "percore does not emit {name} events"
        ));
    }
    Err(s3_error!(
        InvalidArgument,
        "The event is not supported for notifications: {name}"
    ))
}

/// The prefix and suffix of a filter (each at most once, names case-insensitive as in S3).
fn check_filter(filter: Option<NotificationConfigurationFilter>) -> S3Result<(String, String)> {
    let rules = filter
        .and_then(|f| f.key)
        .and_then(|k| k.filter_rules)
        .unwrap_or_default();
    let (mut prefix, mut suffix) = (None, None);
    for rule in rules {
        let name = rule.name.as_ref().map(|n| n.as_str().to_ascii_lowercase());
        let value = rule.value.unwrap_or_default();
        if value.len() > TEXT_BYTES_MAX {
            return Err(s3_error!(
                InvalidArgument,
                "filter rule values are at most {TEXT_BYTES_MAX} bytes"
            ));
        }
        let slot = match name.as_deref() {
            Some("prefix") => &mut prefix,
            Some("suffix") => &mut suffix,
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "filter rule name must be either prefix or suffix"
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "Cannot specify more than one {} rule in a filter.",
                name.unwrap_or_default()
            ));
        }
    }
    Ok((prefix.unwrap_or_default(), suffix.unwrap_or_default()))
}

/// The webhook a queue ARN names, which the server config must define.
fn check_target(arn: &str, webhooks: &Webhooks) -> S3Result<String> {
    let Some(name) = arn.strip_prefix(WEBHOOK_ARN_PREFIX) else {
        return Err(s3_error!(
            NotImplemented,
            "percore delivers notifications to webhooks only: use a Queue ARN \
             {WEBHOOK_ARN_PREFIX}NAME with NAME a webhook of the server config"
        ));
    };
    if !webhooks.contains_key(name) {
        return Err(s3_error!(
            InvalidArgument,
            "Unable to validate the following destination configurations: no webhook named \
             {name:?} in the server config"
        ));
    }
    Ok(name.to_owned())
}

/// The operator's webhooks, name → URL.
pub type Webhooks = std::collections::BTreeMap<String, String>;

/// Checks a configuration as S3 does and turns it into rules.
pub fn check(config: NotificationConfiguration, webhooks: &Webhooks) -> S3Result<Vec<Rule>> {
    if config.event_bridge_configuration.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "percore does not deliver to EventBridge"
        ));
    }
    if config.topic_configurations.is_some_and(|t| !t.is_empty())
        || config
            .lambda_function_configurations
            .is_some_and(|l| !l.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "percore delivers notifications to webhooks only (QueueConfiguration with \
             {WEBHOOK_ARN_PREFIX}NAME)"
        ));
    }
    let queues = config.queue_configurations.unwrap_or_default();
    if queues.len() > RULES_MAX {
        return Err(s3_error!(
            InvalidArgument,
            "at most {RULES_MAX} notification configurations per bucket"
        ));
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(queues.len());
    for (i, q) in queues.into_iter().enumerate() {
        let rule = check_queue(q, i, webhooks)?;
        if rules.iter().any(|r| r.id == rule.id) {
            return Err(s3_error!(
                InvalidArgument,
                "Configuration Id {:?} is used more than once",
                rule.id
            ));
        }
        if rules.iter().any(|r| overlap(r, &rule)) {
            return Err(s3_error!(
                InvalidArgument,
                "Configurations overlap. Configurations on the same bucket cannot share a common \
                 event type."
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn check_queue(q: QueueConfiguration, index: usize, webhooks: &Webhooks) -> S3Result<Rule> {
    let webhook = check_target(&q.queue_arn, webhooks)?;
    if q.events.is_empty() || q.events.len() > EVENTS_MAX {
        return Err(s3_error!(
            InvalidArgument,
            "a configuration lists 1 to {EVENTS_MAX} events"
        ));
    }
    let events: Vec<String> = q.events.into_iter().map(String::from).collect();
    for e in &events {
        check_event(e)?;
    }
    let (prefix, suffix) = check_filter(q.filter)?;
    let id = match q.id {
        Some(id) if !id.is_empty() => id,
        // S3 assigns an id to a configuration without one.
        _ => format!("notification-{}", index + 1),
    };
    if id.len() > TEXT_BYTES_MAX {
        return Err(s3_error!(
            InvalidArgument,
            "configuration ids are at most {TEXT_BYTES_MAX} bytes"
        ));
    }
    Ok(Rule {
        id,
        webhook,
        events,
        prefix,
        suffix,
    })
}

/// Two rules overlap when an event of one key could match both (S3 refuses that: which
/// destination would get it?): a common event type, prefixes one of which starts the other,
/// suffixes one of which ends the other.
fn overlap(a: &Rule, b: &Rule) -> bool {
    let events = a
        .events
        .iter()
        .any(|x| b.events.iter().any(|y| events_overlap(x, y)));
    let prefixes = a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix);
    let suffixes = a.suffix.ends_with(&b.suffix) || b.suffix.ends_with(&a.suffix);
    events && prefixes && suffixes
}

/// version u8 ‖ count u16 ‖ per rule: id, webhook, prefix, suffix (each u16 length ‖ UTF-8),
/// event count u8 ‖ events (each u16 length ‖ UTF-8). All little-endian.
pub fn encode(rules: &[Rule]) -> Bytes {
    assert!(rules.len() <= RULES_MAX, "checked rules");
    let mut b = BytesMut::new();
    b.put_u8(VERSION);
    b.put_u16_le(u16::try_from(rules.len()).expect("at most RULES_MAX"));
    for r in rules {
        for s in [&r.id, &r.webhook, &r.prefix, &r.suffix] {
            put_str(&mut b, s);
        }
        b.put_u8(u8::try_from(r.events.len()).expect("at most EVENTS_MAX"));
        for e in &r.events {
            put_str(&mut b, e);
        }
    }
    b.freeze()
}

fn put_str(b: &mut BytesMut, s: &str) {
    assert!(s.len() <= TEXT_BYTES_MAX, "checked text");
    b.put_u16_le(u16::try_from(s.len()).expect("at most TEXT_BYTES_MAX"));
    b.put_slice(s.as_bytes());
}

/// The rules `encode` wrote (`None`: not such a record).
pub fn decode(mut b: Bytes) -> Option<Vec<Rule>> {
    if b.remaining() < 3 || b.get_u8() != VERSION {
        return None;
    }
    let n = b.get_u16_le();
    let mut rules = Vec::with_capacity(usize::from(n).min(RULES_MAX));
    for _ in 0..n {
        let id = get_str(&mut b)?;
        let webhook = get_str(&mut b)?;
        let prefix = get_str(&mut b)?;
        let suffix = get_str(&mut b)?;
        if b.remaining() < 1 {
            return None;
        }
        let count = b.get_u8();
        let events = (0..count).map(|_| get_str(&mut b)).collect::<Option<_>>()?;
        rules.push(Rule {
            id,
            webhook,
            events,
            prefix,
            suffix,
        });
    }
    b.is_empty().then_some(rules)
}

fn get_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = usize::from(b.get_u16_le());
    if b.remaining() < len {
        return None;
    }
    String::from_utf8(b.split_to(len).to_vec()).ok()
}

/// The configuration S3 answers for `rules`.
fn queue_configurations(rules: Vec<Rule>) -> Vec<QueueConfiguration> {
    rules
        .into_iter()
        .map(|r| {
            let mut filter_rules = Vec::new();
            for (name, value) in [("Prefix", r.prefix), ("Suffix", r.suffix)] {
                if !value.is_empty() {
                    filter_rules.push(FilterRule {
                        name: Some(FilterRuleName::from(name.to_owned())),
                        value: Some(value),
                    });
                }
            }
            QueueConfiguration {
                events: r.events.into_iter().map(Event::from).collect(),
                filter: (!filter_rules.is_empty()).then_some(NotificationConfigurationFilter {
                    key: Some(S3KeyFilter {
                        filter_rules: Some(filter_rules),
                    }),
                }),
                id: Some(r.id),
                queue_arn: format!("{WEBHOOK_ARN_PREFIX}{}", r.webhook),
            }
        })
        .collect()
}

/// Marks a PutObject request that is a browser POST upload (`post_upload`): its event is
/// `s3:ObjectCreated:Post`.
#[derive(Debug, Clone, Copy)]
pub struct ViaPost;

/// What a write did, for its event record.
pub(crate) struct Written<'a> {
    /// `s3:…`, an entry of [`EMITTED`].
    pub(crate) name: &'static str,
    pub(crate) key: &'a str,
    pub(crate) size: Option<u64>,
    pub(crate) etag: Option<&'a str>,
    pub(crate) version_id: Option<String>,
}

/// A key as S3 writes it in an event: URL-encoded, `/` kept, a space as `+`.
pub fn event_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

/// An ISO 8601 UTC time with milliseconds, as S3's `eventTime`.
fn event_time(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

impl Gateway {
    /// Queues the events of a new current version `head` of `key` in the bucket incarnation
    /// `scope` (`name`: Put, Post, Copy or CompleteMultipartUpload).
    pub(crate) async fn notify_created(
        &self,
        scope: &str,
        key: &str,
        head: &ObjectHead,
        name: &'static str,
    ) {
        let written = Written {
            name,
            key,
            size: Some(head.size),
            etag: Some(&head.etag),
            version_id: head
                .in_versions
                .then(|| crate::versioning::head_version_id(head)),
        };
        self.notify(scope, written).await;
    }

    /// Queues the events of a delete of `key`: `marker_made`, a simple delete that left a
    /// delete marker (`version_id` the marker's), else a removed version or object.
    pub(crate) async fn notify_removed(
        &self,
        scope: &str,
        key: &str,
        marker_made: bool,
        version_id: Option<String>,
    ) {
        let name = if marker_made {
            "s3:ObjectRemoved:DeleteMarkerCreated"
        } else {
            "s3:ObjectRemoved:Delete"
        };
        let written = Written {
            name,
            key,
            size: None,
            etag: None,
            version_id,
        };
        self.notify(scope, written).await;
    }

    async fn notify(&self, scope: &str, w: Written<'_>) {
        debug_assert!(EMITTED.contains(&w.name));
        // Without webhooks here and no other process to define them, no bucket can have
        // rules: no record read on the write path.
        if self.notify.webhooks.is_empty() && !self.notify.shared {
            return;
        }
        let rules = match self.notification_rules(scope).await {
            Ok(rules) => rules,
            Err(e) => {
                tracing::error!("reading {scope}'s notification rules: {e}: its event dropped");
                crate::metrics::global().notify_event("dropped");
                return;
            }
        };
        for rule in rules.iter().filter(|r| r.matches(w.name, w.key)) {
            if !self.notify.webhooks.contains_key(&rule.webhook) {
                // Set through a process that defines it; this one cannot queue for it.
                crate::metrics::global().notify_event("dropped");
                let first = self
                    .notify
                    .lacking
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(rule.webhook.clone());
                if first {
                    tracing::error!(
                        webhook = rule.webhook,
                        "a bucket's notification rule names a webhook this process's config \
                         does not define: events of writes through this process are dropped \
                         (define the same [[webhook]] tables on every process that serves S3)"
                    );
                }
                continue;
            }
            let record = self.event_record(scope, rule, &w);
            self.notify.enqueue(&rule.webhook, record).await;
        }
    }

    /// `scope`'s rules, as last read (`notify_queue::Hub::rules`).
    async fn notification_rules(&self, scope: &str) -> S3Result<std::sync::Arc<Vec<Rule>>> {
        if let Some(rules) = self.notify.rules.get(scope) {
            return Ok(rules);
        }
        let rules = self.stored_rules(scope).await?;
        let size = rules
            .iter()
            .map(|r| r.prefix.len() + r.suffix.len() + 256)
            .sum();
        let rules = std::sync::Arc::new(rules);
        self.notify.rules.put(scope, rules.clone(), size);
        Ok(rules)
    }

    /// `scope`'s rules as stored now (none stored: none), for the cache and for
    /// GetBucketNotificationConfiguration, which shows the stored rules, not the cached ones.
    async fn stored_rules(&self, scope: &str) -> S3Result<Vec<Rule>> {
        match self.config_read(scope, BUCKET_CONFIG).await? {
            None => Ok(Vec::new()),
            Some(stored) => decode(stored).ok_or_else(|| {
                s3_error!(
                    InternalError,
                    "the stored notification configuration does not decode"
                )
            }),
        }
    }

    /// The S3 event message of `w` for `rule`.
    fn event_record(&self, scope: &str, rule: &Rule, w: &Written<'_>) -> serde_json::Value {
        let bucket = crate::records::scope_name(scope);
        let mut object = serde_json::json!({
            "key": event_key(w.key),
            "sequencer": format!("{:016X}", self.store.backend().hlc()),
        });
        if let Some(size) = w.size {
            object["size"] = size.into();
        }
        if let Some(etag) = w.etag {
            object["eTag"] = etag.into();
        }
        if let Some(v) = &w.version_id {
            object["versionId"] = v.as_str().into();
        }
        serde_json::json!({ "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region(),
            "eventTime": event_time(crate::s3::now_ms()),
            "eventName": w.name.strip_prefix("s3:").unwrap_or(w.name),
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": rule.id,
                "bucket": { "name": bucket, "arn": format!("arn:aws:s3:::{bucket}") },
                "object": object,
            },
        }]})
    }

    pub(crate) async fn notification_put(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let scope = self.owned_bucket(&input.bucket, &user).await?.scope;
        let rules = check(input.notification_configuration, &self.notify.webhooks)?;
        if rules.is_empty() {
            self.config_delete(&scope, BUCKET_CONFIG).await?;
        } else {
            self.config_put(&scope, BUCKET_CONFIG, &encode(&rules))
                .await?;
        }
        Ok(S3Response::new(
            PutBucketNotificationConfigurationOutput::default(),
        ))
    }

    pub(crate) async fn notification_get(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let user = user_of(&req)?;
        let scope = self.owned_bucket(&req.input.bucket, &user).await?.scope;
        let rules = self.stored_rules(&scope).await?;
        // S3 answers an empty configuration, not an error, for a bucket without one.
        Ok(S3Response::new(GetBucketNotificationConfigurationOutput {
            queue_configurations: (!rules.is_empty()).then(|| queue_configurations(rules)),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(events: &[&str], prefix: &str, suffix: &str) -> Rule {
        Rule {
            id: "r".into(),
            webhook: "w".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    #[test]
    fn wildcards_cover_their_family() {
        let r = rule(&["s3:ObjectCreated:*"], "img/", ".jpg");
        assert!(r.matches("s3:ObjectCreated:Put", "img/a.jpg"));
        assert!(r.matches("s3:ObjectCreated:CompleteMultipartUpload", "img/a.jpg"));
        assert!(!r.matches("s3:ObjectRemoved:Delete", "img/a.jpg"));
        assert!(!r.matches("s3:ObjectCreated:Put", "doc/a.jpg"));
        assert!(!r.matches("s3:ObjectCreated:Put", "img/a.png"));
    }

    #[test]
    fn overlap_needs_events_prefixes_and_suffixes() {
        let a = rule(&["s3:ObjectCreated:*"], "img/", "");
        assert!(overlap(&a, &rule(&["s3:ObjectCreated:Put"], "img/x", "")));
        assert!(overlap(&a, &rule(&["s3:ObjectCreated:Put"], "", ".jpg")));
        assert!(!overlap(&a, &rule(&["s3:ObjectRemoved:*"], "img/", "")));
        assert!(!overlap(&a, &rule(&["s3:ObjectCreated:Put"], "doc/", "")));
        let b = rule(&["s3:ObjectCreated:*"], "", ".jpg");
        assert!(!overlap(&b, &rule(&["s3:ObjectCreated:*"], "", ".png")));
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let rules = vec![
            rule(
                &["s3:ObjectCreated:*", "s3:ObjectRemoved:Delete"],
                "a/",
                ".b",
            ),
            rule(&["s3:ObjectRemoved:*"], "", ""),
        ];
        let b = encode(&rules);
        assert_eq!(decode(b.clone()), Some(rules));
        assert_eq!(decode(b.slice(..b.len() - 1)), None);
        let mut longer = BytesMut::from(&b[..]);
        longer.put_u8(0);
        assert_eq!(decode(longer.freeze()), None);
        assert_eq!(decode(Bytes::from_static(&[2, 0, 0])), None);
    }

    #[test]
    fn version_1_records_still_decode() {
        // A version 1 record as written: one rule "r" to webhook "w", prefix "p/", no suffix,
        // events s3:ObjectCreated:*.
        let mut golden = vec![
            1, 1, 0, 1, 0, b'r', 1, 0, b'w', 2, 0, b'p', b'/', 0, 0, 1, 18, 0,
        ];
        golden.extend_from_slice(b"s3:ObjectCreated:*");
        let rules = decode(Bytes::from(golden.clone())).expect("decodes");
        assert_eq!(rules, vec![rule(&["s3:ObjectCreated:*"], "p/", "")]);
        assert_eq!(&encode(&rules)[..], &golden[..]);
    }

    #[test]
    fn keys_and_times_as_s3_writes_them() {
        assert_eq!(event_key("a b/c+d%é"), "a+b/c%2Bd%25%C3%A9");
        assert_eq!(event_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn event_names_are_checked() {
        assert!(check_event("s3:ObjectRemoved:*").is_ok());
        assert!(check_event("s3:ObjectCreated:Copy").is_ok());
        let code = |n| check_event(n).unwrap_err().code().as_str().to_owned();
        assert_eq!(code("s3:ObjectRestore:*"), "NotImplemented");
        assert_eq!(code("s3:ObjectCreated:Bogus"), "InvalidArgument");
        assert_eq!(code("s3:*"), "InvalidArgument");
    }
}
