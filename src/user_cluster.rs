//! `percore user …` on a clustered node's data directory: the users live in the replicated
//! map, so each command proposes (or reads) through the control plane, authenticated with the
//! cluster secret (`control::follow::propose_any`: any voter, forwarded to the leader). Every
//! node serves the change once it follows the committed map (within a second or two).
//!
//! Keys rotate as in a users file: `key create` gives a user one more key (two sign at most),
//! `key delete` stops one signing (a user's first key stays its id, retired).

use anyhow::{bail, Context};
use control::{Applied, Command, ProposeError, Refusal, User};

use crate::control_plane::Settings;
use crate::user_cmd::{print_created, KeyCommand, PolicyCommand, UserCommand};

/// Why a command did nothing: the map's refusal, or the control plane's failure.
fn answer(outcome: Result<Result<Applied, Refusal>, ProposeError>) -> anyhow::Result<Applied> {
    match outcome {
        Ok(Ok(applied)) => Ok(applied),
        Ok(Err(refusal)) => bail!("refused by the cluster: {refusal}"),
        Err(e) => Err(e).context("the control plane did not commit the change"),
    }
}

pub fn run(cmd: &UserCommand, control: &Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client's runtime")?;
    let voters = control.voters_from(None);
    let propose =
        |command: Command| runtime.block_on(control::follow::propose_any(&voters, command));
    let read = || -> anyhow::Result<control::ClusterMap> {
        runtime
            .block_on(control::follow::read_any(&voters))
            .context("reading the replicated map")
    };
    match cmd {
        UserCommand::Create { name, .. } => {
            if name == s3api::creds::ROOT_USER {
                bail!("root is kept in credentials.toml (or the environment) on each node, not in the replicated map");
            }
            let keys = s3api::user_admin::new_key(name)?;
            let user = User {
                name: keys.name.clone(),
                access_key: keys.access_key.clone(),
                secret_key: keys.secret_key.clone(),
                policy_json: None,
            };
            match propose(Command::CreateUser(user)) {
                // A retry after an unreachable leader may meet its own first attempt.
                Ok(Err(Refusal::UserExists { .. }))
                    if read()?
                        .users
                        .get(name)
                        .is_some_and(|u| u.access_key == keys.access_key) => {}
                outcome => {
                    answer(outcome)?;
                }
            }
            print_created(&keys);
        }
        UserCommand::List { .. } => {
            let map = read()?;
            for u in map.users.values() {
                let policy = if u.policy_json.is_some() {
                    "identity-policy"
                } else {
                    "-"
                };
                let keys: Vec<String> = map
                    .signing_keys(&u.name)
                    .into_iter()
                    .map(|k| k.access_key)
                    .collect();
                let keys = if keys.is_empty() {
                    "-".to_owned()
                } else {
                    keys.join(",")
                };
                println!("{}\t{keys}\t{policy}", u.name);
            }
        }
        UserCommand::Delete { name, .. } => {
            answer(propose(Command::DeleteUser { name: name.clone() }))?;
            println!("deleted user {name}");
        }
        UserCommand::Policy(PolicyCommand::Set { name, file, .. }) => {
            let text = s3api::user_admin::read_policy_file(file)?;
            s3api::identity::validate(&text).map_err(anyhow::Error::msg)?;
            answer(propose(Command::SetUserPolicy {
                name: name.clone(),
                policy_json: Some(text),
            }))?;
            println!("set the identity policy of {name}");
        }
        UserCommand::Policy(PolicyCommand::Get { name, .. }) => {
            let map = read()?;
            let user = map
                .users
                .get(name)
                .with_context(|| format!("no user {name:?} in the replicated map"))?;
            let text = user
                .policy_json
                .as_deref()
                .with_context(|| format!("user {name:?} has no identity policy"))?;
            println!("{text}");
        }
        UserCommand::Policy(PolicyCommand::Delete { name, .. }) => {
            answer(propose(Command::SetUserPolicy {
                name: name.clone(),
                policy_json: None,
            }))?;
            println!("removed the identity policy of {name}");
        }
        UserCommand::Key(KeyCommand::Create { name, .. }) => {
            let keys = s3api::user_admin::new_key(name)?;
            let key = control::Key {
                access_key: keys.access_key.clone(),
                secret_key: keys.secret_key.clone(),
            };
            match propose(Command::AddUserKey {
                name: name.clone(),
                key,
            }) {
                // A retry after an unreachable leader may meet its own first attempt.
                Ok(Err(Refusal::AccessKeyInUse { .. }))
                    if read()?.owner_of_key(&keys.access_key) == Some(name.as_str()) => {}
                outcome => {
                    answer(outcome)?;
                }
            }
            print_created(&keys);
        }
        UserCommand::Key(KeyCommand::Delete { access_key, .. }) => {
            let name = match answer(propose(Command::DeleteUserKey {
                access_key: access_key.clone(),
            }))? {
                Applied::UserKeyDeleted { name } => name,
                other => bail!("unexpected answer of the cluster: {other:?}"),
            };
            println!("deleted a key of {name}");
        }
    }
    Ok(())
}
