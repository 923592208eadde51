//! GetObjectAttributes: what HEAD and ListParts would tell of one object version, from its
//! head alone (no data is read, so an archived object answers too).
//!
//! As S3 answers it: the attributes are those `x-amz-object-attributes` names (comma
//! separated, any case of S3's names; another name is InvalidArgument); StorageClass is shown
//! for STANDARD too; ObjectParts only for an object uploaded in parts, with its PartsCount, and
//! its parts one by one (number, size, checksum) only when the upload had a checksum algorithm
//! (S3 lists no parts otherwise), paged by `x-amz-max-parts` (default and most 1000) after
//! `x-amz-part-number-marker`. Part numbers are positions 1..=N in the completed object, the
//! numbering GET and HEAD's `partNumber` use. The ETag is shown unquoted, as S3 shows it here
//! (s3s quotes every ETag: `serve` removes the quotes, [`UNQUOTED_ETAG_HEADER`]).

use s3s::dto::{
    Checksum, ChecksumType, GetObjectAttributesInput, GetObjectAttributesOutput,
    GetObjectAttributesParts, ObjectAttributes, ObjectPart,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::Algo;
use crate::limits::LIST_PARTS_MAX;
use crate::records::ObjectHead;
use crate::s3::{etag, timestamp, user_of, Gateway};

/// A private response header: the response's XML shows its ETag without quotes (`serve`
/// rewrites the body and drops the header).
pub const UNQUOTED_ETAG_HEADER: &str = "x-percore-unquoted-etag";

/// An attribute a request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    ETag,
    Checksum,
    Parts,
    Class,
    Size,
}

/// The attribute names of `x-amz-object-attributes` (s3s gives each header line as one value;
/// clients send one line, comma separated).
fn wanted(lines: &[ObjectAttributes]) -> S3Result<Vec<Attr>> {
    lines
        .iter()
        .flat_map(|l| l.as_str().split(','))
        .map(str::trim)
        .map(|name| match name.to_ascii_lowercase().as_str() {
            "etag" => Ok(Attr::ETag),
            "checksum" => Ok(Attr::Checksum),
            "objectparts" => Ok(Attr::Parts),
            "storageclass" => Ok(Attr::Class),
            "objectsize" => Ok(Attr::Size),
            _ => Err(s3_error!(
                InvalidArgument,
                "Invalid attribute name specified: {name:?}"
            )),
        })
        .collect()
}

/// A checksum value of `algo` in S3's Checksum or ObjectPart fields.
macro_rules! put_sum {
    ($out:expr, $algo:expr, $value:expr) => {
        match $algo {
            Algo::Crc32 => $out.checksum_crc32 = Some($value),
            Algo::Crc32c => $out.checksum_crc32c = Some($value),
            Algo::Crc64Nvme => $out.checksum_crc64nvme = Some($value),
            Algo::Sha1 => $out.checksum_sha1 = Some($value),
            Algo::Sha256 => $out.checksum_sha256 = Some($value),
        }
    };
}

/// The ObjectParts of `head` (None: not uploaded in parts): one page of at most `max` parts
/// after number `marker`.
fn object_parts(head: &ObjectHead, marker: i32, max: i32) -> Option<GetObjectAttributesParts> {
    if !head.etag.contains('-') {
        return None;
    }
    let total = head.parts.len();
    let mut out = GetObjectAttributesParts {
        total_parts_count: Some(total as i32),
        ..Default::default()
    };
    if head.part_checksums.len() != total {
        return Some(out);
    }
    let start = usize::try_from(marker).unwrap_or(0).min(total);
    let end = start
        .saturating_add(usize::try_from(max).unwrap_or(0))
        .min(total);
    let sizes = head.shown_part_sizes();
    let parts = (start..end)
        .map(|i| {
            let mut p = ObjectPart {
                part_number: Some(i as i32 + 1),
                size: Some(sizes[i] as i64),
                ..Default::default()
            };
            let sum = &head.part_checksums[i];
            put_sum!(p, sum.algo(), sum.base64());
            p
        })
        .collect();
    out.parts = Some(parts);
    out.max_parts = Some(max);
    out.part_number_marker = Some(marker);
    out.is_truncated = Some(end < total);
    if end < total {
        out.next_part_number_marker = Some(end as i32);
    }
    Some(out)
}

impl Gateway {
    pub(crate) async fn attributes_get(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let user = user_of(&req)?;
        let input = req.input;
        let w = wanted(&input.object_attributes)?;
        let max = input.max_parts.unwrap_or(LIST_PARTS_MAX as i32);
        if !(0..=i32::MAX).contains(&max) {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-max-parts must be positive"
            ));
        }
        let max = max.min(LIST_PARTS_MAX as i32);
        let marker = input.part_number_marker.unwrap_or(0);
        if marker < 0 {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-part-number-marker must be positive"
            ));
        }
        let (head, version_id, _) = self
            .object_for_read(
                &user,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await?;
        // As GET and HEAD: an SSE-C object's attributes need its key (AWS requires the three
        // headers here too), and SSE-C headers for any other object are not applicable.
        let customer = crate::sse::customer_key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        crate::sse::read_key(self, &head, customer.as_ref())?;
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(timestamp(head.modified_ms)),
            version_id,
            ..Default::default()
        };
        if w.contains(&Attr::ETag) {
            out.e_tag = Some(etag(&head.etag));
        }
        if w.contains(&Attr::Size) {
            out.object_size = Some(head.shown_size() as i64);
        }
        if w.contains(&Attr::Class) {
            let class = head.tiering.class.as_str().to_owned();
            out.storage_class = Some(s3s::dto::StorageClass::from(class));
        }
        if w.contains(&Attr::Checksum) {
            out.checksum = head.checksum.as_ref().map(|c| {
                let mut shown = Checksum {
                    checksum_type: Some(ChecksumType::from_static(c.kind.s3_name())),
                    ..Default::default()
                };
                put_sum!(shown, c.sum.algo(), c.value());
                shown
            });
        }
        if w.contains(&Attr::Parts) {
            out.object_parts = object_parts(&head, marker, max);
        }
        let mut response = S3Response::new(out);
        response
            .headers
            .insert(UNQUOTED_ETAG_HEADER, http::HeaderValue::from_static("1"));
        Ok(response)
    }
}

/// `body` (a GetObjectAttributes response's XML) with its ETag's quotes removed.
pub fn unquote_etag(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<ETag>\"")? + "<ETag>".len();
    let end = start + 1 + text[start + 1..].find("\"</ETag>")?;
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.push_str(&text[start + 1..end]);
    out.push_str(&text[end + 1..]);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use objects::test_support::head_of_parts;

    #[test]
    fn attribute_names_split_on_commas_and_refuse_others() {
        let lines = [ObjectAttributes::from("ETag, objectsize".to_owned())];
        assert_eq!(wanted(&lines).unwrap(), [Attr::ETag, Attr::Size]);
        let bad = [ObjectAttributes::from("ETag,Owner".to_owned())];
        assert!(wanted(&bad).is_err());
    }

    #[test]
    fn etags_lose_their_quotes_only() {
        let xml = b"<A><ETag>\"abc-2\"</ETag><ObjectSize>3</ObjectSize></A>";
        assert_eq!(
            unquote_etag(xml).unwrap(),
            b"<A><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></A>".to_vec()
        );
        assert_eq!(unquote_etag(b"<A><ObjectSize>3</ObjectSize></A>"), None);
    }

    #[test]
    fn parts_page_after_the_marker() {
        let sum = crate::checksum::Sum::new(Algo::Crc32, &[1, 2, 3, 4]).unwrap();
        let mut head = head_of_parts(&[5, 5, 3]);
        // Without part checksums: only the count.
        let p = object_parts(&head, 0, 1000).unwrap();
        assert_eq!((p.total_parts_count, p.parts.is_none()), (Some(3), true));
        head.part_checksums = vec![sum.clone(), sum.clone(), sum];
        let p = object_parts(&head, 1, 1).unwrap();
        let parts = p.parts.unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].part_number, parts[0].size), (Some(2), Some(5)));
        assert_eq!(parts[0].checksum_crc32.as_deref(), Some("AQIDBA=="));
        assert_eq!(
            (p.is_truncated, p.next_part_number_marker),
            (Some(true), Some(2))
        );
        let last = object_parts(&head, 2, 1000).unwrap();
        assert_eq!(last.is_truncated, Some(false));
        assert_eq!(last.next_part_number_marker, None);
        head.etag = "00".into();
        assert!(object_parts(&head, 0, 1000).is_none());
    }
}
