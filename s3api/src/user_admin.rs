//! `percore user …`: the users of a data directory (`DIR/users.toml`) and their identity
//! policies, edited by the administrator's CLI while a server may be running.
//!
//! - Every change is a read-modify-write of the whole file under an exclusive lock on
//!   `DIR/users.toml.lock` (two CLI runs at once cannot lose each other's change), checked as
//!   the server would load it (names, keys, policies: a file the CLI writes always loads), then
//!   written atomically (`creds::write_private`: a temporary file, fsync, rename, mode 0600),
//!   so a running server reading it (`live_users`) sees the old file or the new one, never a
//!   torn one.
//! - Secrets are shown once, by [`create`]; [`list`] never returns them.
//! - Root is not in this file (`credentials.toml`, or the environment) and is refused here: it
//!   cannot be created, deleted or given an identity policy (root is never restricted).
//! - Users of a `--users FILE` are the administrator's own file and are not edited here.
//! - Keys: a user signs with at most `limits::USER_KEYS_MAX` keys at once ([`key_create`],
//!   [`key_delete`]: rotation). Its first key is its id, what its buckets record as their
//!   owner (`creds::Entry`), so deleting it only stops it signing (`retired`); the access
//!   gate has every key act as the id (`authz::OwnerKey`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::creds::{
    random_string, read_entries, write_private, CredsError, Entry, User, Users, UsersFile,
    ACCESS_KEY_CHARS, ROOT_USER, SECRET_KEY_CHARS,
};

/// The file of a data directory's users.
pub const USERS_FILE: &str = "users.toml";
const LOCK_FILE: &str = "users.toml.lock";

/// Why a `percore user` command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Creds(#[from] CredsError),
    #[error("{path}: no user named {name:?}")]
    NoSuchUser { path: PathBuf, name: String },
    #[error("{path}: a user named {name:?} already exists")]
    Exists { path: PathBuf, name: String },
    #[error(
        "root is kept in credentials.toml (or the environment), not in users.toml, and is \
         never restricted by an identity policy"
    )]
    Root,
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("user {name:?} has no identity policy")]
    NoPolicy { name: String },
    #[error("{path}: no user signs with the access key {access_key:?}")]
    NoSuchKey { path: PathBuf, access_key: String },
    #[error("user {name:?} already has {max} keys: delete one first", max = crate::limits::USER_KEYS_MAX)]
    TooManyKeys { name: String },
    /// The identity policy is refused; the message starts with the S3 code (MalformedPolicy,
    /// NotImplemented) and says what is wrong.
    #[error("{0}")]
    Policy(String),
}

/// A user as `list` shows it: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// The keys it signs with (its first key first, unless deleted).
    pub access_keys: Vec<String>,
    pub has_policy: bool,
}

fn users_path(dir: &Path) -> PathBuf {
    dir.join(USERS_FILE)
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AdminError + '_ {
    move |source| {
        AdminError::Creds(CredsError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Runs `change` on the directory's users under the lock; writes the file back when it
/// returns `true` (module docs).
fn edit<T>(
    dir: &Path,
    change: impl FnOnce(&mut Vec<Entry>) -> Result<(T, bool), AdminError>,
) -> Result<T, AdminError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = users_path(dir);
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    lock.lock().map_err(io_error(&lock_path))?;
    let mut entries = entries_of(&path)?;
    let (out, changed) = change(&mut entries)?;
    if changed {
        let mut check = Users::default();
        for e in &entries {
            check.add_entry(e).map_err(|message| AdminError::Invalid {
                path: path.clone(),
                message,
            })?;
        }
        let text = toml::to_string(&UsersFile { users: entries }).expect("a users file serializes");
        write_private(&path, text.as_bytes()).map_err(io_error(&path))?;
    }
    // The lock goes with the file handle.
    drop(lock);
    Ok(out)
}

fn entries_of(path: &Path) -> Result<Vec<Entry>, AdminError> {
    match read_entries(path) {
        Ok(entries) => Ok(entries),
        Err(CredsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

fn find<'a>(entries: &'a mut [Entry], dir: &Path, name: &str) -> Result<&'a mut Entry, AdminError> {
    if name == ROOT_USER {
        return Err(AdminError::Root);
    }
    entries
        .iter_mut()
        .find(|e| e.name == name)
        .ok_or_else(|| AdminError::NoSuchUser {
            path: users_path(dir),
            name: name.to_owned(),
        })
}

/// Creates the user `name` with new keys and no identity policy; the only time its secret
/// key is shown.
pub fn create(dir: &Path, name: &str) -> Result<User, AdminError> {
    if name == ROOT_USER {
        return Err(AdminError::Root);
    }
    let user = new_key(name)?;
    edit(dir, |entries| {
        if entries.iter().any(|e| e.name == name) {
            return Err(AdminError::Exists {
                path: users_path(dir),
                name: name.to_owned(),
            });
        }
        entries.push(Entry {
            name: user.name.clone(),
            access_key: user.access_key.clone(),
            secret_key: user.secret_key.clone(),
            retired: false,
            policy: None,
            keys: Vec::new(),
        });
        Ok(((), true))
    })?;
    Ok(user)
}

/// The directory's users, without their secrets.
pub fn list(dir: &Path) -> Result<Vec<Listed>, AdminError> {
    Ok(entries_of(&users_path(dir))?
        .into_iter()
        .map(|e| Listed {
            access_keys: (!e.retired)
                .then(|| e.access_key.clone())
                .into_iter()
                .chain(e.keys.iter().map(|k| k.access_key.clone()))
                .collect(),
            name: e.name,
            has_policy: e.policy.is_some(),
        })
        .collect())
}

/// Deletes the user `name`: its key stops working on a running server within a second. Its
/// buckets stay, owned by its (now unusable) key.
pub fn delete(dir: &Path, name: &str) -> Result<(), AdminError> {
    edit(dir, |entries| {
        find(entries, dir, name)?;
        entries.retain(|e| e.name != name);
        Ok(((), true))
    })
}

/// New keys for `name` (random access key and secret key), not stored anywhere.
pub fn new_key(name: &str) -> Result<User, AdminError> {
    let urandom = Path::new("/dev/urandom");
    Ok(User {
        name: name.to_owned(),
        access_key: random_string(20, ACCESS_KEY_CHARS).map_err(io_error(urandom))?,
        secret_key: random_string(40, SECRET_KEY_CHARS).map_err(io_error(urandom))?,
    })
}

/// Gives `name` one more key (at most `limits::USER_KEYS_MAX` sign at once); the only time
/// its secret is shown. It acts as the user's other keys: same buckets, same policies.
pub fn key_create(dir: &Path, name: &str) -> Result<User, AdminError> {
    let key = new_key(name)?;
    edit(dir, |entries| {
        let entry = find(entries, dir, name)?;
        if usize::from(!entry.retired) + entry.keys.len() >= crate::limits::USER_KEYS_MAX {
            return Err(AdminError::TooManyKeys {
                name: name.to_owned(),
            });
        }
        entry.keys.push(crate::creds::KeyEntry {
            access_key: key.access_key.clone(),
            secret_key: key.secret_key.clone(),
        });
        Ok(((), true))
    })?;
    Ok(key)
}

/// Stops `access_key` signing (a running server refuses it within a second). A user's first
/// key stays its id (module docs). Returns the user's name.
pub fn key_delete(dir: &Path, access_key: &str) -> Result<String, AdminError> {
    edit(dir, |entries| {
        for entry in entries.iter_mut() {
            if entry.access_key == access_key && !entry.retired {
                entry.retired = true;
                return Ok((entry.name.clone(), true));
            }
            if let Some(i) = entry.keys.iter().position(|k| k.access_key == access_key) {
                entry.keys.remove(i);
                return Ok((entry.name.clone(), true));
            }
        }
        Err(AdminError::NoSuchKey {
            path: users_path(dir),
            access_key: access_key.to_owned(),
        })
    })
}

/// Sets (replaces) the identity policy of `name` to the document `text`, refused unless the
/// gateway would accept it (`identity::validate`).
pub fn policy_set(dir: &Path, name: &str, text: &str) -> Result<(), AdminError> {
    crate::identity::validate(text).map_err(AdminError::Policy)?;
    edit(dir, |entries| {
        find(entries, dir, name)?.policy = Some(text.to_owned());
        Ok(((), true))
    })
}

/// The identity policy of `name`, as it was set.
pub fn policy_get(dir: &Path, name: &str) -> Result<String, AdminError> {
    let mut entries = entries_of(&users_path(dir))?;
    let entry = find(&mut entries, dir, name)?;
    entry.policy.take().ok_or_else(|| AdminError::NoPolicy {
        name: name.to_owned(),
    })
}

/// Removes the identity policy of `name`: its requests are judged as without one again.
pub fn policy_delete(dir: &Path, name: &str) -> Result<(), AdminError> {
    edit(dir, |entries| {
        let entry = find(entries, dir, name)?;
        if entry.policy.take().is_none() {
            return Err(AdminError::NoPolicy {
                name: name.to_owned(),
            });
        }
        Ok(((), true))
    })
}

/// Reads a policy document from `path` (`-`: standard input), at most one byte more than the
/// largest identity policy (the policy crate then says it is too large).
pub fn read_policy_file(path: &Path) -> Result<String, AdminError> {
    let limit = policy::limits::IDENTITY_POLICY_BYTES_MAX as u64 + 1;
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(io_error(path))?;
    String::from_utf8(bytes).map_err(|_| {
        AdminError::Policy(format!(
            "MalformedPolicy: {}: the document is not UTF-8",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"s3:*","Resource":"*"}]}"#;

    #[test]
    fn create_list_policy_delete() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let alice = create(d, "alice").unwrap();
        let bob = create(d, "bob").unwrap();
        assert!(matches!(create(d, "alice"), Err(AdminError::Exists { .. })));
        assert!(matches!(create(d, "root"), Err(AdminError::Root)));
        let listed = list(d).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|l| (l.name.as_str(), l.access_keys.clone(), l.has_policy))
                .collect::<Vec<_>>(),
            [
                ("alice", vec![alice.access_key.clone()], false),
                ("bob", vec![bob.access_key.clone()], false)
            ]
        );
        let mode = std::fs::metadata(d.join(USERS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        policy_set(d, "alice", ALLOW).unwrap();
        assert_eq!(policy_get(d, "alice").unwrap(), ALLOW);
        assert!(matches!(
            policy_get(d, "bob"),
            Err(AdminError::NoPolicy { .. })
        ));
        assert!(list(d).unwrap()[0].has_policy);
        let principal = ALLOW.replace("\"Action\"", "\"Principal\":\"*\",\"Action\"");
        let e = policy_set(d, "bob", &principal).unwrap_err().to_string();
        assert!(
            e.starts_with("MalformedPolicy") && e.contains("Principal"),
            "{e}"
        );
        assert!(matches!(
            policy_set(d, "carol", ALLOW),
            Err(AdminError::NoSuchUser { .. })
        ));
        assert!(matches!(
            policy_set(d, "root", ALLOW),
            Err(AdminError::Root)
        ));

        // What the CLI wrote is what the server loads.
        let mut users = Users::default();
        for e in read_entries(&d.join(USERS_FILE)).unwrap() {
            users.add_entry(&e).unwrap();
        }
        assert!(users.identity_policy("alice").is_some());
        assert!(users.identity_policy("bob").is_none());
        assert_eq!(
            users.by_access_key(&bob.access_key).unwrap().secret_key,
            bob.secret_key
        );

        policy_delete(d, "alice").unwrap();
        assert!(matches!(
            policy_delete(d, "alice"),
            Err(AdminError::NoPolicy { .. })
        ));
        delete(d, "alice").unwrap();
        assert!(matches!(
            delete(d, "alice"),
            Err(AdminError::NoSuchUser { .. })
        ));
        assert_eq!(list(d).unwrap().len(), 1);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn keys_rotate_and_the_first_stays_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = create(d, "alice").unwrap();
        let second = key_create(d, "alice").unwrap();
        assert!(matches!(
            key_create(d, "alice"),
            Err(AdminError::TooManyKeys { .. })
        ));
        let load = || {
            let mut users = Users::default();
            for e in read_entries(&d.join(USERS_FILE)).unwrap() {
                users.add_entry(&e).unwrap();
            }
            users
        };
        let users = load();
        assert_eq!(
            users.id_of(&second.access_key),
            Some(first.access_key.as_str())
        );
        assert_eq!(
            users.id_of(&first.access_key),
            Some(first.access_key.as_str())
        );
        assert_eq!(
            users.by_access_key(&second.access_key).unwrap().name,
            "alice"
        );

        assert_eq!(key_delete(d, &first.access_key).unwrap(), "alice");
        let users = load();
        assert!(users.by_access_key(&first.access_key).is_none());
        assert_eq!(
            users.id_of(&second.access_key),
            Some(first.access_key.as_str())
        );
        assert!(users.has_name("alice"));
        assert_eq!(
            list(d).unwrap()[0].access_keys,
            vec![second.access_key.clone()]
        );
        assert!(matches!(
            key_delete(d, &first.access_key),
            Err(AdminError::NoSuchKey { .. })
        ));
        // Room for one more now; a third would be too many.
        let third = key_create(d, "alice").unwrap();
        assert_eq!(
            load().id_of(&third.access_key),
            Some(first.access_key.as_str())
        );
        assert!(matches!(
            key_create(d, "alice"),
            Err(AdminError::TooManyKeys { .. })
        ));
        key_delete(d, &second.access_key).unwrap();
        assert!(load().by_access_key(&second.access_key).is_none());
    }

    #[test]
    fn a_file_that_does_not_load_is_not_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(USERS_FILE);
        std::fs::write(&path, "[[user]]\nname = \"x\"\nsurprise = 1\n").unwrap();
        assert!(create(dir.path(), "alice").is_err());
        assert!(std::fs::read_to_string(&path).unwrap().contains("surprise"));
    }
}
