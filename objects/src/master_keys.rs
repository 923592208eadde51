//! The master key file: the key-encryption keys of SSE-S3 and SSE-KMS (issue 17 item 2). An
//! SSE-S3 object's data key is wrapped (`keywrap`) under the file's *active* key and its head
//! records that key's id; an SSE-KMS object's under the key its request names. Rotation adds a
//! new active key and keeps the old ones, so every object stays readable and no data is
//! rewritten.
//!
//! ```text
//! percore-master-keys 1
//! # comments and blank lines are ignored
//! key master-1 <base64 of 32 bytes>
//! key master-2 <base64 of 32 bytes>
//! key backups  <base64 of 32 bytes>
//! active master-2
//! ```
//!
//! A key id is 1 to 64 bytes of `A-Z a-z 0-9 - _ .`; ids are unique; `active` names one key
//! (it need not be the last: an operator can roll back). The file is refused, with the line and
//! what is wrong, when anything else is found: a store must never start with a key file it
//! half understood. Unix permissions must give the group and others nothing (as ssh does with
//! private keys): the file holds every object's key.
//!
//! What this module does not do: hold the file in a cluster map (every gateway needs the same
//! file, copied by the operator), talk to an external KMS, or remove keys (a removed key makes
//! its objects unreadable: the file keeps them).

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use rand::RngCore;

use crate::keywrap::KEK_BYTES;

/// The first line of every key file.
const HEADER: &str = "percore-master-keys 1";
/// Bound on the keys in one file (each is looked up by a linear scan).
pub const KEYS_MAX: usize = 1024;
/// Bound on a key id's length.
pub const KEY_ID_BYTES_MAX: usize = 64;
/// The prefix of the ids `generate` and `rotate` give.
const GENERATED_PREFIX: &str = "master-";

/// Why a key file was refused: the line (1-based; 0 for the file as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "master key file: {}", self.why),
            n => write!(f, "master key file, line {n}: {}", self.why),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// An I/O failure on the key file at `path`, as a refusal of the file.
fn io_refused(what: &str, path: &Path, e: &std::io::Error) -> KeyFileError {
    refused(0, format!("{what} {}: {e}", path.display()))
}

fn refused(line: usize, why: impl Into<String>) -> KeyFileError {
    KeyFileError {
        line,
        why: why.into(),
    }
}

/// The keys of a master key file, one of them active.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKeys {
    keys: Vec<(String, [u8; KEK_BYTES])>,
    active: usize,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key bytes never reach a log.
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "MasterKeys({ids:?}, active {})", self.active_id())
    }
}

/// Whether `id` may name a key.
pub fn valid_id(id: &str) -> bool {
    (1..=KEY_ID_BYTES_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn random_key() -> [u8; KEK_BYTES] {
    let mut key = [0u8; KEK_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

impl MasterKeys {
    /// A new file's keys: one random key, `master-1`, active.
    pub fn generate() -> MasterKeys {
        MasterKeys {
            keys: vec![(format!("{GENERATED_PREFIX}1"), random_key())],
            active: 0,
        }
    }

    /// Reads a key file's text (the module's format).
    pub fn parse(text: &str) -> Result<MasterKeys, KeyFileError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, HEADER)) => {}
            Some((n, _)) => return Err(refused(n, format!("the first line must be `{HEADER}`"))),
            None => return Err(refused(0, "the file is empty")),
        }
        let mut keys: Vec<(String, [u8; KEK_BYTES])> = Vec::new();
        let mut active: Option<(usize, String)> = None;
        for (n, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["key", id, key] => {
                    if !valid_id(id) {
                        return Err(refused(
                            n,
                            format!(
                                "key id {id:?}: 1 to {KEY_ID_BYTES_MAX} characters of A-Z a-z \
                                 0-9 - _ ."
                            ),
                        ));
                    }
                    if keys.iter().any(|(k, _)| k == id) {
                        return Err(refused(n, format!("key id {id} appears twice")));
                    }
                    if keys.len() == KEYS_MAX {
                        return Err(refused(n, format!("more than {KEYS_MAX} keys")));
                    }
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(key)
                        .ok()
                        .and_then(|k| <[u8; KEK_BYTES]>::try_from(k).ok())
                        .ok_or_else(|| {
                            refused(n, format!("key {id}: not {KEK_BYTES} bytes in base64"))
                        })?;
                    keys.push(((*id).to_owned(), bytes));
                }
                ["active", id] => {
                    if active.is_some() {
                        return Err(refused(n, "a second `active` line"));
                    }
                    active = Some((n, (*id).to_owned()));
                }
                _ => return Err(refused(n, "expected `key ID BASE64-KEY` or `active ID`")),
            }
        }
        let Some((n, active_id)) = active else {
            return Err(refused(0, "no `active ID` line"));
        };
        let active = keys
            .iter()
            .position(|(id, _)| *id == active_id)
            .ok_or_else(|| refused(n, format!("the active key {active_id} is not in the file")))?;
        Ok(MasterKeys { keys, active })
    }

    /// The file's text: what `parse` reads back to the same keys.
    pub fn encode(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = format!(
            "{HEADER}\n# percore's master keys (SSE-S3, SSE-KMS): every gateway needs this same \
             file.\n# Never remove a key: the objects written under it could not be read.\n"
        );
        for (id, key) in &self.keys {
            out.push_str("key ");
            out.push_str(id);
            out.push(' ');
            out.push_str(&b64.encode(key));
            out.push('\n');
        }
        out.push_str("active ");
        out.push_str(self.active_id());
        out.push('\n');
        out
    }

    /// The id of the key new SSE-S3 objects are wrapped under.
    pub fn active_id(&self) -> &str {
        &self.keys[self.active].0
    }

    /// The active key and its id.
    pub fn active(&self) -> (&str, &[u8; KEK_BYTES]) {
        let (id, key) = &self.keys[self.active];
        (id, key)
    }

    /// The key named `id`, if the file has it.
    pub fn get(&self, id: &str) -> Option<&[u8; KEK_BYTES]> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    /// Every key id, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Adds a new random key and makes it the active one; answers its id (`master-N`, N one
    /// past the highest such id in the file).
    pub fn rotate(&mut self) -> Result<String, KeyFileError> {
        let n = self
            .keys
            .iter()
            .filter_map(|(id, _)| id.strip_prefix(GENERATED_PREFIX)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let id = format!("{GENERATED_PREFIX}{}", n + 1);
        self.add(&id)?;
        self.active = self.keys.len() - 1;
        Ok(id)
    }

    /// Adds a new random key named `id` (a named key for SSE-KMS); the active key stays.
    pub fn add(&mut self, id: &str) -> Result<(), KeyFileError> {
        if !valid_id(id) {
            return Err(refused(0, format!("{id:?} is not a valid key id")));
        }
        if self.get(id).is_some() {
            return Err(refused(0, format!("key id {id} is already in the file")));
        }
        if self.keys.len() == KEYS_MAX {
            return Err(refused(0, format!("the file has {KEYS_MAX} keys already")));
        }
        self.keys.push((id.to_owned(), random_key()));
        Ok(())
    }

    /// Reads and parses the key file at `path`, refusing one that the group or others may
    /// read or write.
    pub fn load(path: &Path) -> Result<MasterKeys, KeyFileError> {
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| io_refused("reading", path, &e))?;
        MasterKeys::parse(&text).map_err(|e| KeyFileError {
            line: e.line,
            why: format!("{}: {}", path.display(), e.why),
        })
    }

    /// The key file at `path`, created with one new key (mode 0600) when there is none.
    /// Answers whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(MasterKeys, bool), KeyFileError> {
        if path.exists() {
            return Ok((MasterKeys::load(path)?, false));
        }
        let keys = MasterKeys::generate();
        keys.save(path)?;
        Ok((keys, true))
    }

    /// Writes the file at `path` whole or not at all: a new file (0600) synced, renamed over
    /// the old one, the directory synced.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let tmp = path.with_extension("keys.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(|e| io_refused("creating", &tmp, &e))?;
        file.write_all(self.encode().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_refused("writing", &tmp, &e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_refused("renaming to", path, &e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_refused("syncing", dir, &e))?;
        }
        Ok(())
    }
}

/// Refuses a key file the group or others may access.
fn check_private(path: &Path) -> Result<(), KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| io_refused("reading", path, &e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(refused(
                0,
                format!(
                    "{} is accessible to others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; KEK_BYTES])
    }

    #[test]
    fn a_file_round_trips_and_rotation_keeps_old_keys() {
        let mut keys = MasterKeys::generate();
        assert_eq!(keys.active_id(), "master-1");
        let first = *keys.get("master-1").unwrap();
        assert_eq!(keys.rotate().unwrap(), "master-2");
        keys.add("backups").unwrap();
        assert_eq!(keys.rotate().unwrap(), "master-3");
        let back = MasterKeys::parse(&keys.encode()).unwrap();
        assert_eq!(back, keys);
        assert_eq!(back.active_id(), "master-3");
        assert_eq!(back.get("master-1"), Some(&first));
        assert_eq!(
            back.ids().collect::<Vec<_>>(),
            ["master-1", "master-2", "backups", "master-3"]
        );
        assert_ne!(back.active().1, &first);
        assert!(keys.add("backups").is_err());
        assert!(keys.add("bad id").is_err());
    }

    #[test]
    fn an_operators_file_is_read() {
        let text = format!(
            "# keys\n\npercore-master-keys 1\nkey a {}\n  key b.2_x-y {}  \nactive a\n# end\n",
            b64(1),
            b64(2)
        );
        let keys = MasterKeys::parse(&text).unwrap();
        assert_eq!(keys.active(), ("a", &[1; KEK_BYTES]));
        assert_eq!(keys.get("b.2_x-y"), Some(&[2; KEK_BYTES]));
        assert_eq!(keys.get("c"), None);
        assert!(
            !format!("{keys:?}").contains("AQEB"),
            "no key bytes in Debug"
        );
    }

    /// Every bad file is refused, with the line that is wrong.
    #[test]
    fn bad_files_are_refused_with_their_line() {
        let h = HEADER;
        let (k1, k2) = (b64(1), b64(2));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        let long_id = "x".repeat(KEY_ID_BYTES_MAX + 1);
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 0, "empty"),
            ("# only a comment\n".into(), 0, "empty"),
            (format!("key a {k1}\nactive a\n"), 1, "first line"),
            ("percore-master-keys 2\n".into(), 1, "first line"),
            (format!("{h}\nkey a {k1}\n"), 0, "no `active"),
            (format!("{h}\nkey a {k1}\nactive b\n"), 3, "not in the file"),
            (
                format!("{h}\nkey a {k1}\nkey a {k2}\nactive a\n"),
                3,
                "twice",
            ),
            (format!("{h}\nkey a {short}\nactive a\n"), 2, "32 bytes"),
            (format!("{h}\nkey a not-base64!\nactive a\n"), 2, "32 bytes"),
            (format!("{h}\nkey a/b {k1}\nactive a/b\n"), 2, "key id"),
            (format!("{h}\nkey {long_id} {k1}\n"), 2, "key id"),
            (format!("{h}\nkey a {k1} extra\nactive a\n"), 2, "expected"),
            (format!("{h}\nkey a\nactive a\n"), 2, "expected"),
            (
                format!("{h}\nkey a {k1}\nactive a\nactive a\n"),
                4,
                "second",
            ),
            (format!("{h}\nkey a {k1}\nactive\n"), 3, "expected"),
            (format!("{h}\nkeys a {k1}\nactive a\n"), 2, "expected"),
        ];
        for (text, line, why) in cases {
            let e = MasterKeys::parse(&text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(why), "{text:?}: {e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn files_are_created_private_and_open_ones_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("percore-mk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.keys");
        let _ = std::fs::remove_file(&path);
        let (keys, created) = MasterKeys::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = MasterKeys::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, keys);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKeys::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "percore-master-keys 1\n").unwrap();
        let e = MasterKeys::load(&path).unwrap_err().to_string();
        assert!(e.contains("no `active"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
