//! Users and their keys: the root user (generated on first start and kept in the data
//! directory, or given by `PERCORE_ROOT_ACCESS_KEY` / `PERCORE_ROOT_SECRET_KEY`) and the users
//! of a `--users` TOML file. Implements s3s's `S3Auth` so SigV4 (headers, presigned, streaming)
//! is checked by s3s against these secrets.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use serde::{Deserialize, Serialize};

pub const ROOT_USER: &str = "root";
const CREDENTIALS_FILE: &str = "credentials.toml";
const ACCESS_KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default, rename = "user")]
    users: Vec<User>,
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

/// Every user the gateway accepts, by access key.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_access_key: BTreeMap<String, User>,
}

impl Users {
    pub fn add(&mut self, user: User) -> Result<(), String> {
        validate(&user)?;
        if self.by_access_key.values().any(|u| u.name == user.name) {
            return Err(format!("user {} is defined twice", user.name));
        }
        if self.by_access_key.contains_key(&user.access_key) {
            return Err(format!(
                "access key of user {} is already in use",
                user.name
            ));
        }
        self.by_access_key.insert(user.access_key.clone(), user);
        Ok(())
    }

    pub fn by_access_key(&self, access_key: &str) -> Option<&User> {
        self.by_access_key.get(access_key)
    }

    /// Whether a user is named `name` (bucket policies name users).
    pub fn has_name(&self, name: &str) -> bool {
        self.by_access_key.values().any(|u| u.name == name)
    }

    pub fn root(&self) -> Option<&User> {
        self.by_access_key.values().find(|u| u.name == ROOT_USER)
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

fn random_string(len: usize, alphabet: &[u8]) -> Result<String, std::io::Error> {
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

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Users from a TOML file: `[[user]]` tables with `name`, `access_key`, `secret_key`.
pub fn users_file(path: &Path) -> Result<Vec<User>, CredsError> {
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

/// Adds a user to the users file of a data directory (`percore key create`), returning it.
pub fn create_user(dir: &Path, name: &str) -> Result<User, CredsError> {
    let path = dir.join("users.toml");
    let show = || path.display().to_string();
    let mut file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<UsersFile>(&text).map_err(|e| CredsError::Invalid {
            path: show(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => UsersFile::default(),
        Err(source) => {
            return Err(CredsError::Io {
                path: show(),
                source,
            })
        }
    };
    let io = |source| CredsError::Io {
        path: show(),
        source,
    };
    let user = User {
        name: name.to_string(),
        access_key: random_string(20, ACCESS_KEY_CHARS).map_err(io)?,
        secret_key: random_string(40, SECRET_KEY_CHARS).map_err(io)?,
    };
    let mut check = Users::default();
    for u in file.users.iter().cloned().chain([user.clone()]) {
        check.add(u).map_err(|message| CredsError::Invalid {
            path: show(),
            message,
        })?;
    }
    file.users.push(user.clone());
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = toml::to_string(&file).expect("users serialize");
    write_private(&path, text.as_bytes()).map_err(io)?;
    Ok(user)
}

/// The users file kept in a data directory by `percore key create`, if any.
pub fn data_dir_users(dir: &Path) -> Result<Vec<User>, CredsError> {
    let path = dir.join("users.toml");
    if path.exists() {
        users_file(&path)
    } else {
        Ok(Vec::new())
    }
}

#[async_trait::async_trait]
impl S3Auth for Users {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.by_access_key(access_key) {
            Some(u) => Ok(SecretKey::from(u.secret_key.clone())),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}
