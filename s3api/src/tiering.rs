//! Storage classes as S3 shows them: archive semantics on reads (GLACIER and DEEP_ARCHIVE are
//! readable only through a restored copy: InvalidObjectState otherwise), RestoreObject, the
//! `x-amz-restore` header, and percore's own `x-percore-*` headers of placement and access
//! tier.
//!
//! Not owned here: moving data between classes, restores' copies and access tracking (the
//! object service's `objects::tiering`), deciding when to move (`objects::lifecycle::pass`).

use s3s::dto::{RestoreObjectInput, RestoreObjectOutput};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::records::{ObjectHead, StorageClass};
use crate::s3::{check_key, s3_err, user_of, Gateway};
use cluster::ec::Policy;
use objects::tiering::Restoring;

/// Days a restore may ask for (S3's bound).
pub const RESTORE_DAYS_MAX: i32 = 30_000;

/// The `x-amz-restore` value of a head (None: no restore asked).
pub fn restore_header(head: &ObjectHead) -> Option<String> {
    let r = head.tiering.restore.as_ref()?;
    if r.ongoing {
        return Some("ongoing-request=\"true\"".to_owned());
    }
    let expiry = crate::s3::format_http_date(&crate::s3::timestamp(r.expiry_ms))?;
    Some(format!(
        "ongoing-request=\"false\", expiry-date=\"{expiry}\""
    ))
}

/// The storage class S3 shows (none for STANDARD, as S3 does).
pub fn shown_class(head: &ObjectHead) -> Option<s3s::dto::StorageClass> {
    let c = head.tiering.class;
    (c != StorageClass::Standard).then(|| s3s::dto::StorageClass::from(c.as_str().to_owned()))
}

fn invalid_state() -> s3s::S3Error {
    s3_error!(
        InvalidObjectState,
        "The operation is not valid for the object's storage class: restore it first"
    )
}

/// The head a GET or a copy reads: itself, or for an archived object its restored copy
/// (InvalidObjectState without a completed, unexpired restore).
pub(crate) fn readable(head: ObjectHead) -> S3Result<ObjectHead> {
    objects::tiering::readable(head).ok_or_else(invalid_state)
}

impl Gateway {
    pub(crate) async fn restore(
        &self,
        req: S3Request<RestoreObjectInput>,
    ) -> S3Result<S3Response<RestoreObjectOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let request = input.restore_request.unwrap_or_default();
        if request.type_.is_some() || request.select_parameters.is_some() {
            return Err(s3_error!(NotImplemented, "restore with SELECT"));
        }
        let days = match request.days {
            Some(d) if (1..=RESTORE_DAYS_MAX).contains(&d) => d as u32,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Days must be between 1 and {RESTORE_DAYS_MAX}"
                ))
            }
            None => return Err(s3_error!(MalformedXML, "RestoreRequest needs Days")),
        };
        let (head, _, bucket) = self
            .object_for_read(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        if !head.tiering.class.is_archive() {
            return Err(invalid_state());
        }
        let restoring = self
            .store
            .restore(&bucket, &input.key, &head, days)
            .await
            .map_err(s3_err)?;
        match restoring {
            Restoring::InProgress => Err(s3_error!(
                RestoreAlreadyInProgress,
                "Object restore is already in progress"
            )),
            Restoring::Changed => Err(s3_error!(
                RestoreAlreadyInProgress,
                "the object changed; retry the restore"
            )),
            // Already restored: S3 extends the copy's life and answers 200.
            Restoring::Extended => Ok(S3Response::new(RestoreObjectOutput::default())),
            Restoring::Started => {
                let mut out = S3Response::new(RestoreObjectOutput::default());
                out.headers.insert(
                    crate::serve::STATUS_HEADER,
                    http::HeaderValue::from_static("202"),
                );
                Ok(out)
            }
        }
    }
}

/// The response header of HEAD that shows an INTELLIGENT_TIERING object's access tier.
pub const ACCESS_TIER_HEADER: &str = "x-percore-access-tier";
/// The response header of HEAD that shows how the object's data is stored now, e.g.
/// `ec-8+4/hdd` or `replicas-3/nvme` (for operators and tests; S3 has no such header).
pub const PLACEMENT_HEADER: &str = "x-percore-placement";

/// The `x-percore-placement` value of the data a read would use.
pub fn placement_of(head: &ObjectHead) -> String {
    let scheme = match head.policy {
        Policy::Replicas(n) => format!("replicas-{n}"),
        Policy::Ec { k, m } => format!("ec-{k}+{m}"),
    };
    format!("{scheme}/{}", head.tiering.tier)
}

/// `FREQUENT` or `INFREQUENT` for INTELLIGENT_TIERING objects.
pub fn access_tier(head: &ObjectHead) -> Option<&'static str> {
    (head.tiering.class == StorageClass::IntelligentTiering).then_some(if head.tiering.infrequent {
        "INFREQUENT"
    } else {
        "FREQUENT"
    })
}
