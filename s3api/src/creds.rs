//! Users and their keys: the root user (generated on first start and kept in the data
//! directory, or given by `PERCORE_ROOT_ACCESS_KEY` / `PERCORE_ROOT_SECRET_KEY`), the users
//! of the data directory's `users.toml` (`percore user …`, `user_admin`) and of a `--users`
//! TOML file, and each user's identity policy (`identity`). A running gateway holds them in
//! `live_users`, which re-reads the files when they change and through which s3s checks SigV4
//! (headers, presigned, streaming) against these secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub const ROOT_USER: &str = "root";
const CREDENTIALS_FILE: &str = "credentials.toml";
pub(crate) const ACCESS_KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const SECRET_KEY_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
}

/// A `[[user]]` table of a users file: a user, its first key, optionally its identity policy
/// (a JSON document in a TOML string) and more keys (`[[user.key]]`, for rotation).
///
/// The first access key is the user's id: the buckets the user creates record it as their
/// owner, whichever of its keys signed. Deleting it (`retired`) stops it signing and keeps it
/// as the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, rename = "key", skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyEntry>,
}

/// A user's key beyond its first (`[[user.key]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    pub access_key: String,
    pub secret_key: String,
}

impl Entry {
    pub(crate) fn user(&self) -> User {
        User {
            name: self.name.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersFile {
    #[serde(default, rename = "user")]
    pub users: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Every user the gateway accepts, by access key, and the users' identity policies.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// The keys that sign.
    by_access_key: BTreeMap<String, User>,
    /// Every user's id (its first key, `Entry`), signing or not.
    ids: BTreeSet<String>,
    /// The id of the user of each key that is not its user's id.
    id_of_key: BTreeMap<String, String>,
    names: BTreeSet<String>,
    /// By user name; root never has one.
    identity: BTreeMap<String, Arc<policy::Policy>>,
}

impl Users {
    pub fn add(&mut self, user: User) -> Result<(), String> {
        validate(&user)?;
        self.add_name(&user.name)?;
        self.reserve_key(&user.name, &user.access_key)?;
        self.ids.insert(user.access_key.clone());
        self.by_access_key.insert(user.access_key.clone(), user);
        Ok(())
    }

    fn add_name(&mut self, name: &str) -> Result<(), String> {
        if self.names.insert(name.to_owned()) {
            Ok(())
        } else {
            Err(format!("user {name} is defined twice"))
        }
    }

    fn reserve_key(&self, name: &str, access_key: &str) -> Result<(), String> {
        if self.by_access_key.contains_key(access_key) || self.ids.contains(access_key) {
            return Err(format!("access key of user {name} is already in use"));
        }
        Ok(())
    }

    pub fn by_access_key(&self, access_key: &str) -> Option<&User> {
        self.by_access_key.get(access_key)
    }

    /// The id of the user who signs with `access_key` (its first key: what its buckets record
    /// as their owner); `None`: no such key.
    pub fn id_of(&self, access_key: &str) -> Option<&str> {
        if let Some(id) = self.id_of_key.get(access_key) {
            return Some(id);
        }
        self.by_access_key
            .get_key_value(access_key)
            .map(|(k, _)| k.as_str())
    }

    /// Whether a user is named `name` (bucket policies name users).
    pub fn has_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    pub fn root(&self) -> Option<&User> {
        self.by_access_key.values().find(|u| u.name == ROOT_USER)
    }

    /// Adds the user of a users file's table, with its keys and its identity policy if it
    /// has one.
    pub(crate) fn add_entry(&mut self, entry: &Entry) -> Result<(), String> {
        let first = entry.user();
        validate(&first)?;
        if entry.retired {
            self.add_name(&first.name)?;
            self.reserve_key(&first.name, &first.access_key)?;
            self.ids.insert(first.access_key);
        } else {
            self.add(first)?;
        }
        let signing = usize::from(!entry.retired) + entry.keys.len();
        if signing > crate::limits::USER_KEYS_MAX {
            return Err(format!(
                "user {} has {signing} keys, more than {}",
                entry.name,
                crate::limits::USER_KEYS_MAX
            ));
        }
        for key in &entry.keys {
            let user = User {
                name: entry.name.clone(),
                access_key: key.access_key.clone(),
                secret_key: key.secret_key.clone(),
            };
            validate(&user)?;
            self.reserve_key(&user.name, &user.access_key)?;
            self.id_of_key
                .insert(key.access_key.clone(), entry.access_key.clone());
            self.by_access_key.insert(key.access_key.clone(), user);
        }
        if let Some(text) = &entry.policy {
            let policy = crate::identity::validate(text)
                .map_err(|e| format!("identity policy of user {}: {e}", entry.name))?;
            self.identity.insert(entry.name.clone(), Arc::new(policy));
        }
        Ok(())
    }

    /// The identity policy of the user named `name` (`None`: none, the user's requests are
    /// judged as before identity policies; root never has one).
    pub fn identity_policy(&self, name: &str) -> Option<&Arc<policy::Policy>> {
        self.identity.get(name)
    }

    /// How many users there are (root included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn validate(u: &User) -> Result<(), String> {
    if u.name.is_empty() || u.name.len() > 64 || !u.name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "user name {:?} must be 1-64 printable ASCII characters",
            u.name
        ));
    }
    if !(16..=128).contains(&u.access_key.len())
        || !u.access_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(format!(
            "access key of {} must be 16-128 letters or digits",
            u.name
        ));
    }
    if !(20..=128).contains(&u.secret_key.len())
        || !u.secret_key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "secret key of {} must be 20-128 printable characters",
            u.name
        ));
    }
    Ok(())
}

pub fn random_string(len: usize, alphabet: &[u8]) -> Result<String, std::io::Error> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    // Rejection-free mapping: 256 % 36 and 256 % 62 leave a bias under 1%, fine for key text
    // whose entropy (≥ 5 bits a character × 40) is far above what brute force reaches.
    Ok(bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// The root user: from the environment if both variables are set, else from
/// `<dir>/credentials.toml`, else newly generated and saved there (mode 0600).
pub fn root_user(dir: &Path) -> Result<User, CredsError> {
    let env_access = std::env::var("PERCORE_ROOT_ACCESS_KEY").ok();
    let env_secret = std::env::var("PERCORE_ROOT_SECRET_KEY").ok();
    let path = dir.join(CREDENTIALS_FILE);
    let show = || path.display().to_string();
    if let (Some(access_key), Some(secret_key)) = (env_access, env_secret) {
        let u = User {
            name: ROOT_USER.into(),
            access_key,
            secret_key,
        };
        validate(&u).map_err(|message| CredsError::Invalid {
            path: "environment".into(),
            message,
        })?;
        return Ok(u);
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let u: User = toml::from_str(&text).map_err(|e| CredsError::Invalid {
                path: show(),
                message: e.to_string(),
            })?;
            validate(&u).map_err(|message| CredsError::Invalid {
                path: show(),
                message,
            })?;
            Ok(u)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let io = |source| CredsError::Io {
                path: show(),
                source,
            };
            let u = User {
                name: ROOT_USER.into(),
                access_key: random_string(20, ACCESS_KEY_CHARS).map_err(io)?,
                secret_key: random_string(40, SECRET_KEY_CHARS).map_err(io)?,
            };
            std::fs::create_dir_all(dir).map_err(io)?;
            let text = toml::to_string(&u).expect("a user serializes");
            write_private(&path, text.as_bytes()).map_err(io)?;
            Ok(u)
        }
        Err(source) => Err(CredsError::Io {
            path: show(),
            source,
        }),
    }
}

/// Writes `data` to `path` atomically: a temporary file beside it (mode 0600), fsynced, renamed
/// over `path`, and the directory fsynced so the rename survives a crash.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The tables of a users file: `[[user]]` with `name`, `access_key`, `secret_key`, and
/// optionally `retired`, `policy` (an identity policy) and `[[user.key]]` tables ([`Entry`]).
pub(crate) fn read_entries(path: &Path) -> Result<Vec<Entry>, CredsError> {
    let show = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CredsError::Io {
        path: show(),
        source,
    })?;
    let f: UsersFile = toml::from_str(&text).map_err(|e| CredsError::Invalid {
        path: show(),
        message: e.to_string(),
    })?;
    Ok(f.users)
}
