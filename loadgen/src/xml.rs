//! Reading the few S3 XML documents the load generator needs: error bodies, ListObjectsV2
//! pages and the multipart-initiate response; writing the multipart-complete body.
//!
//! Works on complete, size-bounded bodies (the caller caps them with `limits`). It does not
//! validate documents against a schema: it reads the leaf elements it knows and ignores the rest.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::limits;

/// A document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("missing element {0}")]
    Missing(&'static str),
    #[error("bad value in {element}: {value:?}")]
    BadValue {
        element: &'static str,
        value: String,
    },
}

/// The code and message of an S3 `<Error>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ErrorBody {
    pub code: String,
    pub message: String,
}

/// One object in a list page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size_bytes: u64,
}

/// One ListObjectsV2 page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
}

/// Calls `on_leaf(path, text)` at the end of every element with the element path (local names
/// from the root) and the element's decoded text.
fn walk(body: &[u8], mut on_leaf: impl FnMut(&[String], &str)) -> Result<(), XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError::Malformed(e.to_string()))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut content = String::new();
    let malformed = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    loop {
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                path.push(name);
                content.clear();
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                path.push(name);
                on_leaf(&path, "");
                path.pop();
            }
            Event::Text(t) => content.push_str(&t.xml10_content().map_err(|e| malformed(&e))?),
            Event::CData(t) => content.push_str(&t.decode().map_err(|e| malformed(&e))?),
            Event::GeneralRef(r) => {
                if let Some(ch) = r.resolve_char_ref().map_err(|e| malformed(&e))? {
                    content.push(ch);
                } else {
                    let name = r.decode().map_err(|e| malformed(&e))?;
                    let resolved = resolve_predefined_entity(&name)
                        .ok_or_else(|| XmlError::Malformed(format!("unknown entity &{name};")))?;
                    content.push_str(resolved);
                }
            }
            Event::End(_) => {
                if path.is_empty() {
                    return Err(XmlError::Malformed("unbalanced end tag".to_owned()));
                }
                on_leaf(&path, &content);
                content.clear();
                path.pop();
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if path.is_empty() {
        Ok(())
    } else {
        Err(XmlError::Malformed(
            "document ends inside an element".to_owned(),
        ))
    }
}

fn is_path(path: &[String], expected: &[&str]) -> bool {
    path.len() == expected.len() && path.iter().zip(expected).all(|(a, b)| a == b)
}

/// Reads an S3 `<Error>` document; `None` when the body is not one.
pub fn parse_error(body: &[u8]) -> Option<S3ErrorBody> {
    let mut code = None;
    let mut message = String::new();
    walk(body, |path, text| {
        if is_path(path, &["Error", "Code"]) {
            code = Some(text.trim().to_owned());
        } else if is_path(path, &["Error", "Message"]) {
            text.trim().clone_into(&mut message);
        }
    })
    .ok()?;
    let mut code = code.filter(|c| !c.is_empty())?;
    // A hostile or broken server must not blow up the error table with huge codes.
    if code.len() > limits::ERROR_CODE_BYTES_MAX {
        let mut cut = limits::ERROR_CODE_BYTES_MAX;
        while !code.is_char_boundary(cut) {
            cut -= 1;
        }
        code.truncate(cut);
    }
    Some(S3ErrorBody { code, message })
}

/// Reads a ListObjectsV2 result. Keys are URL-decoded when the page says `EncodingType=url`.
pub fn parse_list_v2(body: &[u8]) -> Result<ListPage, XmlError> {
    const ROOT: &str = "ListBucketResult";
    let mut page = ListPage::default();
    let mut url_encoded = false;
    let mut key: Option<String> = None;
    let mut size: Option<String> = None;
    let mut bad: Option<XmlError> = None;
    let mut root_seen = false;
    walk(body, |path, text| {
        if path.first().map(String::as_str) != Some(ROOT) {
            return;
        }
        root_seen = true;
        match path.iter().map(String::as_str).collect::<Vec<_>>()[1..] {
            ["Contents", "Key"] => key = Some(text.to_owned()),
            ["Contents", "Size"] => size = Some(text.trim().to_owned()),
            ["Contents"] => {
                let Some(k) = key.take() else {
                    bad.get_or_insert(XmlError::Missing("Contents/Key"));
                    return;
                };
                let text_size = size.take().unwrap_or_default();
                match text_size.parse::<u64>() {
                    Ok(size_bytes) => page.objects.push(ListedObject { key: k, size_bytes }),
                    Err(_) => {
                        bad.get_or_insert(XmlError::BadValue {
                            element: "Contents/Size",
                            value: text_size,
                        });
                    }
                }
            }
            ["CommonPrefixes", "Prefix"] => page.common_prefixes.push(text.to_owned()),
            ["IsTruncated"] => page.is_truncated = text.trim() == "true",
            ["NextContinuationToken"] => {
                page.next_continuation_token = Some(text.trim().to_owned());
            }
            ["EncodingType"] => url_encoded = text.trim() == "url",
            _ => {}
        }
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    if !root_seen {
        return Err(XmlError::Missing(ROOT));
    }
    if url_encoded {
        for object in &mut page.objects {
            object.key = url_decode(&object.key)?;
        }
        for prefix in &mut page.common_prefixes {
            *prefix = url_decode(prefix)?;
        }
    }
    if page.is_truncated && page.next_continuation_token.is_none() {
        return Err(XmlError::Missing("NextContinuationToken"));
    }
    Ok(page)
}

fn url_decode(text: &str) -> Result<String, XmlError> {
    // S3 encodes with form rules: a space may come as '+'.
    let spaced: Cow<'_, str> = if text.contains('+') {
        Cow::Owned(text.replace('+', " "))
    } else {
        Cow::Borrowed(text)
    };
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| XmlError::BadValue {
            element: "Key",
            value: text.to_owned(),
        })
}

/// Reads the `UploadId` of an InitiateMultipartUploadResult.
pub fn parse_initiate_multipart(body: &[u8]) -> Result<String, XmlError> {
    let mut upload_id = None;
    walk(body, |path, text| {
        if is_path(path, &["InitiateMultipartUploadResult", "UploadId"]) {
            upload_id = Some(text.trim().to_owned());
        }
    })?;
    upload_id
        .filter(|id| !id.is_empty())
        .ok_or(XmlError::Missing("UploadId"))
}

/// The CompleteMultipartUpload body for `(part number, ETag)` pairs in order.
pub fn complete_multipart_body(parts: &[(u32, String)]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        body.push_str("<Part><PartNumber>");
        body.push_str(&number.to_string());
        body.push_str("</PartNumber><ETag>");
        body.push_str(&escape_text(etag));
        body.push_str("</ETag></Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

fn escape_text(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_gives_code_and_message() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist &amp; never did</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
</Error>"#;
        let error = parse_error(body).unwrap();
        assert_eq!(error.code, "NoSuchKey");
        assert_eq!(
            error.message,
            "The resource you requested does not exist & never did"
        );
    }

    #[test]
    fn non_error_bodies_give_none() {
        assert_eq!(parse_error(b""), None);
        assert_eq!(
            parse_error(b"<html><body>502 Bad Gateway</body></html>"),
            None
        );
        assert_eq!(parse_error(b"<Error><Code></Code></Error>"), None);
        assert_eq!(parse_error(b"<Error><Code>Slow"), None);
        assert_eq!(parse_error(&[0xff, 0xfe]), None);
    }

    #[test]
    fn huge_codes_are_cut() {
        let body = format!("<Error><Code>{}</Code></Error>", "X".repeat(5000));
        let error = parse_error(body.as_bytes()).unwrap();
        assert_eq!(error.code.len(), limits::ERROR_CODE_BYTES_MAX);
    }

    #[test]
    fn list_page_is_read() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix>lg/</Prefix>
  <KeyCount>2</KeyCount>
  <MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>lg/0000000001</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
    <Size>4096</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>lg/a&amp;b&#x20;c</Key>
    <Size>0</Size>
  </Contents>
  <CommonPrefixes><Prefix>lg/dir/</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = parse_list_v2(body).unwrap();
        assert_eq!(
            page.objects,
            vec![
                ListedObject {
                    key: "lg/0000000001".to_owned(),
                    size_bytes: 4096
                },
                ListedObject {
                    key: "lg/a&b c".to_owned(),
                    size_bytes: 0
                },
            ]
        );
        assert_eq!(page.common_prefixes, vec!["lg/dir/".to_owned()]);
        assert!(page.is_truncated);
        assert_eq!(
            page.next_continuation_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    #[test]
    fn url_encoded_list_keys_are_decoded() {
        let body = br"<ListBucketResult><EncodingType>url</EncodingType>
<Contents><Key>lg/a%20b+c%2Fd</Key><Size>7</Size></Contents>
<IsTruncated>false</IsTruncated></ListBucketResult>";
        let page = parse_list_v2(body).unwrap();
        assert_eq!(page.objects[0].key, "lg/a b c/d");
        assert!(!page.is_truncated);
    }

    #[test]
    fn broken_list_pages_are_errors() {
        assert!(matches!(
            parse_list_v2(b"<Error><Code>AccessDenied</Code></Error>"),
            Err(XmlError::Missing(_))
        ));
        assert!(matches!(
            parse_list_v2(b"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"),
            Err(XmlError::BadValue { .. })
        ));
        assert!(matches!(
            parse_list_v2(b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"),
            Err(XmlError::Missing("NextContinuationToken"))
        ));
        assert!(parse_list_v2(b"<ListBucketResult><Contents>").is_err());
    }

    #[test]
    fn multipart_documents() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket><Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>"#;
        assert_eq!(
            parse_initiate_multipart(body).unwrap(),
            "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
        );
        assert!(parse_initiate_multipart(b"<InitiateMultipartUploadResult/>").is_err());
        assert_eq!(
            complete_multipart_body(&[(1, "\"a\"".to_owned()), (2, "\"b\"".to_owned())]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag>\
             </Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part>\
             </CompleteMultipartUpload>"
        );
    }
}
