//! The users a running gateway accepts, re-read when their files change: a user created,
//! deleted or given a new identity policy with `percore user …` applies within a second,
//! without a restart.
//!
//! - The sources ([`Sources`]): root (read once at start: its keys never change under a running server)
//!   and the files of users: the data directory's `users.toml` and the `--users` file.
//! - [`LiveUsers`] holds the current [`Users`] behind a lock taken for a pointer copy; every
//!   request reads the set current when it arrives ([`LiveUsers::current`]).
//! - [`watch`] checks the files every [`WATCH_INTERVAL`] (their inode, size and modification
//!   time: the CLI replaces the file by a rename, so each change gives a new inode) and
//!   reloads on a change; the binary also reloads on SIGHUP ([`LiveUsers::reload`]).
//! - A reload that fails (a hand-edited file that does not parse, two users with one key)
//!   keeps the current users and logs an ERROR naming the file; the next change is tried
//!   again. Nothing is half-applied: the new set replaces the old one whole.
//! - A clustered node also serves the users of the replicated map (`cluster_users`): the
//!   binary reloads when the map changes; the files' users win a clash.
//! - [`Auth`] is what s3s checks signatures against: a key deleted from the file answers
//!   InvalidAccessKeyId (403) from the first request after the reload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::creds::{read_entries, CredsError, User, Users};

/// How often [`watch`] looks at the users files.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Where a gateway's users come from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub root: User,
    /// The data directory's `users.toml` (absent: no users there).
    pub data_users: PathBuf,
    /// The `--users` file (must exist).
    pub extra_users: Option<PathBuf>,
    /// A clustered node's users of the replicated map (`cluster_users`), added after the
    /// files' (which win a clash).
    pub cluster: Option<Arc<crate::cluster_users::ClusterUsers>>,
}

/// What identifies a version of a file: inode, size, modification time; `None`: absent.
type Stamp = Option<(u64, u64, SystemTime)>;

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl Sources {
    /// Every user of the sources, checked as a whole (names and keys unique, policies valid).
    pub fn load(&self) -> Result<Users, CredsError> {
        let mut users = Users::default();
        users
            .add(self.root.clone())
            .map_err(|message| CredsError::Invalid {
                path: "root credentials".into(),
                message,
            })?;
        let data = match read_entries(&self.data_users) {
            Err(CredsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Vec::new()
            }
            other => other?,
        };
        let files = [(&self.data_users, data)]
            .into_iter()
            .chain(
                self.extra_users
                    .iter()
                    .map(|p| read_entries(p).map(|e| (p, e)))
                    .collect::<Result<Vec<_>, _>>()?,
            )
            .collect::<Vec<_>>();
        for (path, entries) in files {
            for entry in &entries {
                users
                    .add_entry(entry)
                    .map_err(|message| CredsError::Invalid {
                        path: path.display().to_string(),
                        message,
                    })?;
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.add_to(&mut users);
        }
        Ok(users)
    }

    fn stamps(&self) -> Vec<Stamp> {
        std::iter::once(&self.data_users)
            .chain(&self.extra_users)
            .map(|p| stamp(p))
            .collect()
    }
}

/// The current users of a running gateway (module docs).
#[derive(Debug)]
pub struct LiveUsers {
    sources: Option<Sources>,
    current: RwLock<Arc<Users>>,
    /// The files' stamps when last read.
    seen: Mutex<Vec<Stamp>>,
}

impl LiveUsers {
    /// Loads the sources now; an error names the file at fault.
    pub fn start(sources: Sources) -> Result<Arc<LiveUsers>, CredsError> {
        let seen = sources.stamps();
        let users = sources.load()?;
        Ok(Arc::new(LiveUsers {
            sources: Some(sources),
            current: RwLock::new(Arc::new(users)),
            seen: Mutex::new(seen),
        }))
    }

    /// A fixed set of users, never reloaded.
    pub fn fixed(users: Users) -> Arc<LiveUsers> {
        Arc::new(LiveUsers {
            sources: None,
            current: RwLock::new(Arc::new(users)),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// The users now.
    pub fn current(&self) -> Arc<Users> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the files; on an error the current users stay. Returns how many users there
    /// are now (root included).
    pub fn reload(&self) -> Result<usize, CredsError> {
        let Some(sources) = &self.sources else {
            return Ok(self.current().len());
        };
        // Held to the end: a SIGHUP and the watch reloading at once must not let the slower
        // one install an older read after the newer one's.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamped before the read: a change made during it is seen as a change next time.
        *seen = sources.stamps();
        let users = sources.load()?;
        let count = users.len();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
        drop(seen);
        Ok(count)
    }

    /// Reloads if a file changed since it was last read; `None`: nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<usize, CredsError>> {
        let sources = self.sources.as_ref()?;
        let changed = *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != sources.stamps();
        changed.then(|| self.reload())
    }
}

/// Logs the outcome of a reload (`why`: what started it).
pub fn log_reload(why: &str, outcome: &Result<usize, CredsError>) {
    match outcome {
        Ok(users) => tracing::info!(users, "{why}: reloaded the users"),
        Err(e) => {
            tracing::error!("{why}: users not reloaded, still serving the previous ones: {e}");
        }
    }
}

/// Reloads `users` whenever their files change, checking every [`WATCH_INTERVAL`] on
/// `runtime` until it shuts down.
pub fn watch(users: &Arc<LiveUsers>, runtime: &tokio::runtime::Handle) {
    if users.sources.is_none() {
        return;
    }
    let users = Arc::clone(users);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A few stat calls, and a read of small files on a change.
            let users = Arc::clone(&users);
            let outcome = tokio::task::spawn_blocking(move || users.reload_if_changed()).await;
            if let Ok(Some(outcome)) = outcome {
                log_reload("users file changed", &outcome);
            }
        }
    });
}

/// s3s's secret lookup over the live users (module docs).
#[derive(Debug, Clone)]
pub struct Auth(pub Arc<LiveUsers>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.current().by_access_key(access_key) {
            Some(u) => Ok(SecretKey::from(u.secret_key.clone())),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> User {
        User {
            name: "root".into(),
            access_key: "ROOTACCESSKEY0000001".into(),
            secret_key: "root-secret-key-00000000000000000000001".into(),
        }
    }

    #[test]
    fn reloads_on_change_and_keeps_the_old_users_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveUsers::start(Sources {
            root: root(),
            data_users: dir.path().join("users.toml"),
            extra_users: None,
            cluster: None,
        })
        .unwrap();
        assert_eq!(live.current().len(), 1);
        assert!(live.reload_if_changed().is_none());

        let alice = crate::user_admin::create(dir.path(), "alice").unwrap();
        assert_eq!(live.reload_if_changed().unwrap().unwrap(), 2);
        assert!(live.current().by_access_key(&alice.access_key).is_some());
        assert!(live.reload_if_changed().is_none());

        // A hand edit that does not parse: the users stay, the error names the file.
        std::fs::write(dir.path().join("users.toml"), "[[user]\n").unwrap();
        let e = live.reload_if_changed().unwrap().unwrap_err().to_string();
        assert!(e.contains("users.toml"), "{e}");
        assert!(live.current().by_access_key(&alice.access_key).is_some());

        std::fs::remove_file(dir.path().join("users.toml")).unwrap();
        assert_eq!(live.reload_if_changed().unwrap().unwrap(), 1);
        assert!(live.current().by_access_key(&alice.access_key).is_none());
        assert!(live.current().root().is_some());
    }
}
