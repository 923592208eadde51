//! The `multipart/form-data` body of a browser POST upload, read as it arrives: the fields
//! before the file are read into memory under fixed bounds, then the file part is handed on as
//! a stream that ends at the next boundary, so an object of any size flows into the store path
//! without being held whole (s3s 0.14 read the whole file into memory, up to 5 GB, before
//! calling any handler).
//!
//! Bounds (`limits::POST_*_MAX`): over any of them
//! the request answers 400 MaxPostPreDataLengthExceededError before more is read. Fields after
//! the file are ignored, as AWS does, but read (at most `POST_TAIL_BYTES_MAX`) before the file's
//! stream ends, so a body that stops early never counts as a complete file: a file part with
//! no closing boundary fails the stream, and the store path stores nothing.
//!
//! Does not know what the fields mean (`post_upload`) nor check a policy (`post_policy`).

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::limits::{
    POST_FIELDS_BYTES_MAX as FIELDS_BYTES_MAX, POST_PARTS_MAX as PARTS_MAX,
    POST_PART_HEADER_BYTES_MAX as PART_HEADER_BYTES_MAX, POST_TAIL_BYTES_MAX as TAIL_BYTES_MAX,
};

/// Bytes before the first boundary (RFC 2046 allows a preamble).
const PREAMBLE_BYTES_MAX: usize = 1024;

/// Why a form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// Not well-formed multipart/form-data (400 MalformedPOSTRequest); the text says where.
    Malformed(&'static str),
    /// The fields before the file are over the bounds (400 MaxPostPreDataLengthExceededError).
    FieldsTooLarge,
    /// No file part (400 InvalidArgument).
    NoFile,
    /// The body itself failed (cut, stalled: `serve` knows which).
    Body(String),
}

/// What ended a file stream early, read by `post_upload` to answer with the right error
/// (the store path sees only "the body failed").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFault {
    /// Over the policy's content-length-range maximum.
    TooLarge { max: u64 },
    /// Under its minimum.
    TooSmall { min: u64 },
    /// The form is broken after the file started (no closing boundary, a tail over the bound).
    Form(FormError),
}

/// The file part's headers.
#[derive(Debug, Clone, Default)]
pub struct FileHead {
    pub filename: String,
    pub content_type: Option<String>,
}

/// A form being read: the source and the bytes read from it but not yet used.
struct Reader<S> {
    src: S,
    buf: BytesMut,
    /// `\r\n--` ‖ boundary.
    delimiter: Vec<u8>,
    eof: bool,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// Reads one more piece; `false` at the end of the body.
    async fn fill(&mut self) -> Result<bool, FormError> {
        if self.eof {
            return Ok(false);
        }
        match self.src.next().await {
            Some(Ok(piece)) => {
                self.buf.extend_from_slice(&piece);
                Ok(true)
            }
            Some(Err(e)) => Err(FormError::Body(e.to_string())),
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Reads until `needle` is buffered, with at most `max` bytes before it; returns its offset.
    async fn until(
        &mut self,
        needle: &[u8],
        max: usize,
        over: FormError,
    ) -> Result<usize, FormError> {
        // Each byte is scanned once (a field arriving a byte at a time must not cost the
        // square of its length).
        let mut from = 0;
        loop {
            if let Some(i) = find(&self.buf[from..], needle).map(|i| i + from) {
                return if i > max { Err(over) } else { Ok(i) };
            }
            from = self.buf.len().saturating_sub(needle.len() - 1);
            if self.buf.len() > max + needle.len() {
                return Err(over);
            }
            if !self.fill().await? {
                return Err(FormError::Malformed("the body ended inside a part"));
            }
        }
    }

    /// After a delimiter: `true` when it was the closing one (`--`), else its line is skipped.
    async fn after_delimiter(&mut self) -> Result<bool, FormError> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(FormError::Malformed("the body ended after a boundary"));
            }
        }
        if self.buf.starts_with(b"--") {
            return Ok(true);
        }
        // Transport padding (RFC 2046) then CRLF.
        let end = self
            .until(
                b"\r\n",
                64,
                FormError::Malformed("a boundary line is malformed"),
            )
            .await?;
        if !self.buf[..end].iter().all(|b| matches!(b, b' ' | b'\t')) {
            return Err(FormError::Malformed("a boundary line is malformed"));
        }
        self.buf.advance(end + 2);
        Ok(false)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The fields before the file, its headers, and the file's bytes as a stream (module docs).
/// Field names are lowercased (AWS compares them without case); values must be UTF-8.
pub struct Form<S> {
    pub fields: Vec<(String, String)>,
    pub file: FileHead,
    reader: Reader<S>,
}

/// One part's headers: its name, and its file name if it has one.
struct PartHead {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

fn parse_part_head(block: &[u8]) -> Result<PartHead, FormError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| FormError::Malformed("a part's headers are not UTF-8"))?;
    let mut head = PartHead {
        name: String::new(),
        filename: None,
        content_type: None,
    };
    let mut named = false;
    for line in text.split("\r\n") {
        let Some((h, v)) = line.split_once(':') else {
            return Err(FormError::Malformed("a part header has no colon"));
        };
        let v = v.trim();
        if h.trim().eq_ignore_ascii_case("content-disposition") {
            named = true;
            let (kind, params) = v.split_once(';').unwrap_or((v, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(FormError::Malformed("a part is not form-data"));
            }
            for (k, val) in disposition_params(params) {
                match k.to_ascii_lowercase().as_str() {
                    "name" => head.name = val,
                    "filename" => head.filename = Some(val),
                    _ => {}
                }
            }
        } else if h.trim().eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v.to_owned());
        }
    }
    if !named || head.name.is_empty() {
        return Err(FormError::Malformed(
            "a part has no Content-Disposition name",
        ));
    }
    Ok(head)
}

/// `name="a"; filename="b.txt"`: quoted values may hold `;` and backslash escapes.
fn disposition_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        let Some((key, after)) = rest.split_once('=') else {
            return out;
        };
        let key = key.trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = next;
    }
}

impl<S, E> Form<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    /// Reads the fields up to the file part (module docs).
    pub async fn read(src: S, boundary: &str) -> Result<Form<S>, FormError> {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut reader = Reader {
            src,
            // The first delimiter needs no CRLF before it.
            buf: BytesMut::from(&b"\r\n"[..]),
            delimiter,
            eof: false,
        };
        let delim = reader.delimiter.clone();
        let start = reader
            .until(
                &delim,
                PREAMBLE_BYTES_MAX,
                FormError::Malformed("no boundary starts the body"),
            )
            .await?;
        reader.buf.advance(start + delim.len());
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut budget = FIELDS_BYTES_MAX;
        loop {
            if reader.after_delimiter().await? {
                return Err(FormError::NoFile);
            }
            if fields.len() >= PARTS_MAX {
                return Err(FormError::FieldsTooLarge);
            }
            let max = PART_HEADER_BYTES_MAX.min(budget);
            let end = reader
                .until(b"\r\n\r\n", max, FormError::FieldsTooLarge)
                .await?;
            let head = parse_part_head(&reader.buf[..end])?;
            reader.buf.advance(end + 4);
            budget -= end;
            if head.name.eq_ignore_ascii_case("file") {
                let file = FileHead {
                    filename: head.filename.unwrap_or_default(),
                    content_type: head.content_type,
                };
                return Ok(Form {
                    fields,
                    file,
                    reader,
                });
            }
            let end = reader
                .until(&delim, budget, FormError::FieldsTooLarge)
                .await?;
            let value = std::str::from_utf8(&reader.buf[..end])
                .map_err(|_| FormError::Malformed("a field's value is not UTF-8"))?
                .to_owned();
            reader.buf.advance(end + delim.len());
            budget -= end;
            fields.push((head.name.to_ascii_lowercase(), value));
        }
    }

    /// The file's bytes, checked against `range` (inclusive, bytes) as they pass; a fault is
    /// left in `fault` for the caller.
    pub fn file_stream(
        self,
        range: (u64, u64),
        fault: Arc<Mutex<Option<FileFault>>>,
    ) -> impl Stream<Item = Result<Bytes, FileError>> + Send + Unpin + 'static {
        let state = FileState {
            reader: self.reader,
            size: 0,
            range,
            fault,
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            match st.next().await {
                Ok(Some(piece)) => Some((Ok(piece), st)),
                Ok(None) => None,
                Err(f) => {
                    st.done = true;
                    *st.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(f.clone());
                    Some((Err(FileError(f)), st))
                }
            }
        }))
    }
}

/// The error a file stream ends with (the store path prints it).
#[derive(Debug)]
pub struct FileError(pub FileFault);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "POST form file: {:?}", self.0)
    }
}

impl std::error::Error for FileError {}

struct FileState<S> {
    reader: Reader<S>,
    size: u64,
    range: (u64, u64),
    fault: Arc<Mutex<Option<FileFault>>>,
    done: bool,
}

impl<S, E> FileState<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// The next piece of the file, `None` at its end (after the tail was read).
    async fn next(&mut self) -> Result<Option<Bytes>, FileFault> {
        let keep = self.reader.delimiter.len() - 1;
        loop {
            let found = find(&self.reader.buf, &self.reader.delimiter);
            let take = match found {
                Some(i) => i,
                None => self.reader.buf.len().saturating_sub(keep),
            };
            if take > 0 {
                let piece = self.reader.buf.split_to(take).freeze();
                self.size += piece.len() as u64;
                if self.size > self.range.1 {
                    return Err(FileFault::TooLarge { max: self.range.1 });
                }
                return Ok(Some(piece));
            }
            if found.is_some() {
                let len = self.reader.delimiter.len();
                self.reader.buf.advance(len);
                self.finish().await?;
                self.done = true;
                if self.size < self.range.0 {
                    return Err(FileFault::TooSmall { min: self.range.0 });
                }
                return Ok(None);
            }
            match self.reader.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(FileFault::Form(FormError::Malformed(
                        "the body ended inside the file (no closing boundary)",
                    )))
                }
                Err(e) => return Err(FileFault::Form(e)),
            }
        }
    }

    /// Reads what follows the file (ignored fields) to the end of the body, bounded.
    async fn finish(&mut self) -> Result<(), FileFault> {
        let mut tail = self.reader.buf.len();
        self.reader.buf.clear();
        loop {
            if tail > TAIL_BYTES_MAX {
                return Err(FileFault::Form(FormError::Malformed(
                    "more than 64 KiB follow the file",
                )));
            }
            match self.reader.fill().await {
                Ok(true) => {
                    tail += self.reader.buf.len();
                    self.reader.buf.clear();
                }
                Ok(false) => return Ok(()),
                Err(e) => return Err(FileFault::Form(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pieces: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, String>> + Unpin + Send {
        futures::stream::iter(pieces.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            b.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        b.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.txt\"\r\n\
              Content-Type: text/plain\r\n\r\n",
        );
        b.extend_from_slice(file);
        b.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nx\r\n--XyZ--\r\n",
        );
        b
    }

    async fn read_all(
        pieces: Vec<Vec<u8>>,
        range: (u64, u64),
    ) -> Result<(Vec<(String, String)>, FileHead, Vec<u8>), FileFault> {
        let f = Form::read(body(pieces), "XyZ")
            .await
            .map_err(FileFault::Form)?;
        let (fields, head) = (f.fields.clone(), f.file.clone());
        let fault = Arc::new(Mutex::new(None));
        let mut s = f.file_stream(range, fault);
        let mut out = Vec::new();
        while let Some(p) = s.next().await {
            out.extend_from_slice(&p.map_err(|e| e.0)?);
        }
        Ok((fields, head, out))
    }

    #[tokio::test]
    async fn split_anywhere() {
        // The file holds near-delimiters and CRLFs.
        let file = b"line\r\n--XY\r\n--Xy\r\n--XyY no\r\n-".repeat(50);
        let whole = form(&[("key", "k/${filename}"), ("Policy", "p")], &file);
        for step in [1, 2, 3, 7, 64, whole.len()] {
            let pieces: Vec<Vec<u8>> = whole.chunks(step).map(<[u8]>::to_vec).collect();
            let (fields, head, got) = read_all(pieces, (0, u64::MAX)).await.unwrap();
            assert_eq!(got, file, "step {step}");
            assert_eq!(
                fields,
                vec![
                    ("key".into(), "k/${filename}".into()),
                    ("policy".into(), "p".into())
                ]
            );
            assert_eq!(head.filename, "a;b.txt");
            assert_eq!(head.content_type.as_deref(), Some("text/plain"));
        }
    }

    #[tokio::test]
    async fn bounds_and_faults() {
        let big = "v".repeat(FIELDS_BYTES_MAX + 1);
        let whole = form(&[("key", &big)], b"x");
        assert_eq!(
            read_all(vec![whole], (0, u64::MAX)).await.unwrap_err(),
            FileFault::Form(FormError::FieldsTooLarge)
        );
        let whole = form(&[("key", "k")], b"0123456789");
        assert_eq!(
            read_all(vec![whole.clone()], (0, 9)).await.unwrap_err(),
            FileFault::TooLarge { max: 9 }
        );
        assert_eq!(
            read_all(vec![whole.clone()], (11, 20)).await.unwrap_err(),
            FileFault::TooSmall { min: 11 }
        );
        // Cut inside the file: never a complete file.
        let cut = whole[..whole.len() - 80].to_vec();
        assert!(matches!(
            read_all(vec![cut], (0, u64::MAX)).await.unwrap_err(),
            FileFault::Form(FormError::Malformed(_))
        ));
        let no_file =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XyZ--\r\n";
        assert!(matches!(
            Form::read(body(vec![no_file.to_vec()]), "XyZ").await,
            Err(FormError::NoFile)
        ));
    }
}
