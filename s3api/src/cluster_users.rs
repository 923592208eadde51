//! The users of a clustered node's replicated map (the control plane's), served beside the
//! node's own files (`live_users`): a key created through any node signs on every node.
//!
//! The binary follows the map and hands its users here ([`ClusterUsers::set`]), then reloads
//! the live users; [`ClusterUsers::add_to`] adds them after root and the users files. On a
//! clash the node's own files win: a map user whose name or access key is already taken by
//! root or by a users file is skipped and logged. Root and the files are this machine's
//! bootstrap (they work before any voter answers, and with none), so a map entry can neither
//! lock root out nor take over a key the operator configured on the node.

use std::sync::{Arc, PoisonError, RwLock};

use crate::creds::{Entry, Users};

/// One user of the replicated map: its first key (its id; `retired`: it no longer signs),
/// its more keys (access key, secret key), an optional identity policy (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapUser {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
    pub retired: bool,
    pub more: Vec<(String, String)>,
    pub policy_json: Option<String>,
}

/// The map's users as last followed (module docs).
#[derive(Debug, Default)]
pub struct ClusterUsers {
    users: RwLock<Arc<Vec<MapUser>>>,
}

impl ClusterUsers {
    /// Replaces the map's users; the caller then reloads the live users.
    pub fn set(&self, users: Vec<MapUser>) {
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
    }

    /// How many users the map holds now.
    pub fn len(&self) -> usize {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the map's users to `users` (root and the files' users), skipping those that
    /// clash with them or do not load (each logged).
    pub(crate) fn add_to(&self, users: &mut Users) {
        let map = Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner));
        for u in map.iter() {
            let mut keys = std::iter::once(&u.access_key).chain(u.more.iter().map(|(k, _)| k));
            if users.has_name(&u.name) || keys.any(|k| users.id_of(k).is_some()) {
                tracing::warn!(
                    user = %u.name,
                    "a user of the replicated map clashes with root or a users file of this \
                     node (same name or access key): the node's own user is served"
                );
                continue;
            }
            if let Some(text) = &u.policy_json {
                if let Err(e) = crate::identity::validate(text) {
                    tracing::error!(user = %u.name, "a user of the replicated map is skipped: its identity policy: {e}");
                    continue;
                }
            }
            let entry = Entry {
                name: u.name.clone(),
                access_key: u.access_key.clone(),
                secret_key: u.secret_key.clone(),
                retired: u.retired,
                policy: u.policy_json.clone(),
                keys: u
                    .more
                    .iter()
                    .map(|(access_key, secret_key)| crate::creds::KeyEntry {
                        access_key: access_key.clone(),
                        secret_key: secret_key.clone(),
                    })
                    .collect(),
            };
            // The checks above leave only the keys' own form to fail (the map checks it too).
            if let Err(e) = users.add_entry(&entry) {
                tracing::error!(user = %u.name, "a user of the replicated map is skipped: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::User;

    fn user(name: &str, key: &str) -> MapUser {
        MapUser {
            name: name.into(),
            access_key: key.into(),
            secret_key: format!("{name}-secret-key-0000000000000000000000"),
            retired: false,
            more: Vec::new(),
            policy_json: None,
        }
    }

    #[test]
    fn the_nodes_own_users_win_a_clash() {
        let mut users = Users::default();
        users
            .add(User {
                name: "root".into(),
                access_key: "ROOTACCESSKEY0000001".into(),
                secret_key: "root-secret-key-00000000000000000000001".into(),
            })
            .unwrap();
        let cluster = ClusterUsers::default();
        cluster.set(vec![
            user("alice", "ALICEACCESSKEY000001"),
            user("root", "MAPROOTACCESSKEY0001"),
            user("mallory", "ROOTACCESSKEY0000001"),
            MapUser {
                policy_json: Some("{not json".into()),
                ..user("bob", "BOBACCESSKEY00000001")
            },
        ]);
        cluster.add_to(&mut users);
        assert_eq!(
            users.by_access_key("ALICEACCESSKEY000001").unwrap().name,
            "alice"
        );
        // More keys sign as the user; a retired first key does not, and stays the id.
        let carl = ClusterUsers::default();
        carl.set(vec![MapUser {
            retired: true,
            more: vec![(
                "CARLMOREKEY000000001".into(),
                "carl-more-secret-0000000000000".into(),
            )],
            ..user("carl", "CARLACCESSKEY0000001")
        }]);
        let mut more = Users::default();
        carl.add_to(&mut more);
        assert!(more.by_access_key("CARLACCESSKEY0000001").is_none());
        assert_eq!(
            more.id_of("CARLMOREKEY000000001"),
            Some("CARLACCESSKEY0000001")
        );
        assert!(users.by_access_key("MAPROOTACCESSKEY0001").is_none());
        assert_eq!(
            users.by_access_key("ROOTACCESSKEY0000001").unwrap().name,
            "root"
        );
        assert!(!users.has_name("mallory") && !users.has_name("bob"));
        assert_eq!(users.len(), 2);
    }
}
