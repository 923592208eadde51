//! The pieces every record codec shares: strings, pairs, checksums, format checks.

use super::{
    Algo, Buf, BufMut, Bytes, BytesMut, Kind, ObjectChecksum, Sum, UploadChecksum,
    CHECKSUM_BYTES_MAX, VERSION, VERSION_CHECKSUMS,
};

#[derive(Debug, thiserror::Error)]
#[error("malformed {0} record")]
pub struct Malformed(pub &'static str);

/// The version byte of a record that may carry checksums: whether it does (version 2).
pub(super) fn get_version(b: &mut Bytes, what: &'static str) -> Result<bool, Malformed> {
    check(b, 1, what)?;
    match b.get_u8() {
        VERSION => Ok(false),
        VERSION_CHECKSUMS => Ok(true),
        _ => Err(Malformed(what)),
    }
}

/// Persisted codes of the checksum algorithms (0 is "none"); never reuse one.
pub(super) fn algo_code(algo: Algo) -> u8 {
    match algo {
        Algo::Crc32 => 1,
        Algo::Crc32c => 2,
        Algo::Crc64Nvme => 3,
        Algo::Sha1 => 4,
        Algo::Sha256 => 5,
    }
}

pub(super) fn algo_of(code: u8) -> Option<Algo> {
    match code {
        1 => Some(Algo::Crc32),
        2 => Some(Algo::Crc32c),
        3 => Some(Algo::Crc64Nvme),
        4 => Some(Algo::Sha1),
        5 => Some(Algo::Sha256),
        _ => None,
    }
}

pub(super) fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Composite => 1,
        Kind::FullObject => 2,
    }
}

pub(super) fn kind_of(code: u8) -> Option<Kind> {
    match code {
        1 => Some(Kind::Composite),
        2 => Some(Kind::FullObject),
        _ => None,
    }
}

/// algorithm code u8 (0: none) ‖ the raw value (the algorithm's width).
pub(super) fn put_sum(b: &mut BytesMut, sum: Option<&Sum>) {
    match sum {
        None => b.put_u8(0),
        Some(s) => {
            assert!(s.raw().len() <= CHECKSUM_BYTES_MAX, "checked by Sum::new");
            b.put_u8(algo_code(s.algo()));
            b.put_slice(s.raw());
        }
    }
}

pub(super) fn get_sum(b: &mut Bytes, what: &'static str) -> Result<Option<Sum>, Malformed> {
    check(b, 1, what)?;
    let code = b.get_u8();
    if code == 0 {
        return Ok(None);
    }
    let algo = algo_of(code).ok_or(Malformed(what))?;
    check(b, algo.value_bytes(), what)?;
    let raw = b.split_to(algo.value_bytes());
    Sum::new(algo, &raw).map(Some).ok_or(Malformed(what))
}

/// algorithm code u8 (0: none) ‖ type code u8.
pub(super) fn get_upload_checksum(b: &mut Bytes) -> Result<Option<UploadChecksum>, Malformed> {
    check(b, 1, "upload")?;
    let code = b.get_u8();
    if code == 0 {
        return Ok(None);
    }
    check(b, 1, "upload")?;
    let algo = algo_of(code).ok_or(Malformed("upload"))?;
    let kind = kind_of(b.get_u8()).ok_or(Malformed("upload"))?;
    Ok(Some(UploadChecksum { algo, kind }))
}

/// The sum (as `put_sum`) ‖ type code u8 ‖ part count u32, the `N` of `-N`.
pub(super) fn put_object_checksum(b: &mut BytesMut, checksum: Option<&ObjectChecksum>) {
    put_sum(b, checksum.map(|c| &c.sum));
    if let Some(c) = checksum {
        b.put_u8(kind_code(c.kind));
        b.put_u32_le(c.parts);
    }
}

pub(super) fn get_object_checksum(
    b: &mut Bytes,
    parts_stored: usize,
) -> Result<Option<ObjectChecksum>, Malformed> {
    let Some(sum) = get_sum(b, "object")? else {
        return Ok(None);
    };
    check(b, 5, "object")?;
    let kind = kind_of(b.get_u8()).ok_or(Malformed("object"))?;
    let parts = b.get_u32_le();
    let consistent = match kind {
        Kind::Composite => usize::try_from(parts).is_ok_and(|p| p == parts_stored),
        Kind::FullObject => parts >= 1,
    };
    if !consistent {
        return Err(Malformed("object"));
    }
    Ok(Some(ObjectChecksum { sum, kind, parts }))
}

pub(super) fn put_str(b: &mut BytesMut, s: &str) {
    // Every string stored here comes from a request whose header section the access gate
    // bounds (`access::HEADER_VALUE_BYTES_MAX`); a longer one is a bug, never a record whose
    // length wrapped.
    assert!(
        u16::try_from(s.len()).is_ok(),
        "record string of {} bytes",
        s.len()
    );
    b.put_u16_le(s.len() as u16);
    b.put_slice(s.as_bytes());
}

pub(super) fn get_str(b: &mut Bytes, what: &'static str) -> Result<String, Malformed> {
    if b.remaining() < 2 {
        return Err(Malformed(what));
    }
    let n = usize::from(b.get_u16_le());
    if b.remaining() < n {
        return Err(Malformed(what));
    }
    String::from_utf8(b.split_to(n).to_vec()).map_err(|_| Malformed(what))
}

pub(super) fn get_pairs(b: &mut Bytes) -> Result<Vec<(String, String)>, Malformed> {
    check(b, 2, "object")?;
    let n = b.get_u16_le();
    let mut pairs = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let k = get_str(b, "object")?;
        pairs.push((k, get_str(b, "object")?));
    }
    Ok(pairs)
}

pub(super) fn check(b: &Bytes, n: usize, what: &'static str) -> Result<(), Malformed> {
    if b.remaining() < n {
        Err(Malformed(what))
    } else {
        Ok(())
    }
}

/// A reader of a record's fields that answers `Malformed(what)`, never a panic, when the bytes
/// end early or a string is not UTF-8 (the configuration records: lifecycle and CORS rules).
pub struct Reader {
    bytes: Bytes,
    what: &'static str,
}

impl Reader {
    pub fn new(bytes: Bytes, what: &'static str) -> Reader {
        Reader { bytes, what }
    }

    fn need(&self, n: usize) -> Result<(), Malformed> {
        if self.bytes.remaining() < n {
            return Err(Malformed(self.what));
        }
        Ok(())
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        self.need(1)?;
        Ok(self.bytes.get_u8())
    }

    pub fn u16(&mut self) -> Result<u16, Malformed> {
        self.need(2)?;
        Ok(self.bytes.get_u16_le())
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        self.need(4)?;
        Ok(self.bytes.get_u32_le())
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        self.need(8)?;
        Ok(self.bytes.get_u64_le())
    }

    /// u16 length ‖ UTF-8.
    pub fn str(&mut self) -> Result<String, Malformed> {
        let n = usize::from(self.u16()?);
        self.need(n)?;
        String::from_utf8(self.bytes.split_to(n).to_vec()).map_err(|_| Malformed(self.what))
    }

    /// Whether every byte was read (a record must end where its fields do).
    pub fn is_done(&self) -> bool {
        !self.bytes.has_remaining()
    }
}
