//! `percore user …`: users and their identity policies in a data directory's `users.toml`
//! (`s3api::user_admin`). A running server picks a change up within a second (it watches the
//! file; SIGHUP reloads at once). The data directory of a clustered node (one that wrote
//! `control.toml`) has its users in the replicated map instead: the commands propose through
//! the control plane (`user_cluster`).

use std::path::PathBuf;

use clap::Subcommand;
use s3api::user_admin;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a new access key and secret key (the secret is shown only now).
    Create {
        /// The user's name (1-64 printable ASCII characters).
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// List the users: name, access keys, whether they have an identity policy (no secrets).
    List {
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete a user: its key stops working; its buckets stay.
    Delete {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// A user's identity policy (the AWS policy language, without Principal).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// A user's keys (at most two at once: rotate by creating the new one, then deleting the
    /// old one).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Give a user one more key (the secret is shown only now); it acts as the user's others.
    Create {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Stop a key signing (the user's buckets stay its own).
    Delete {
        access_key: String,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Set (replace) a user's identity policy from a JSON file (`-`: standard input).
    Set {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
    /// Print a user's identity policy.
    Get {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Remove a user's identity policy.
    Delete {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(clap::Args)]
pub struct DataArg {
    /// The data directory of `percore serve` (or of `percore gateway`).
    #[arg(long, default_value = "./percore-data")]
    pub data: PathBuf,
}

/// Prints a new user's keys, the only time its secret is shown.
pub fn print_created(user: &s3api::creds::User) {
    println!("user: {}", user.name);
    println!("access_key: {}", user.access_key);
    println!("secret_key: {}", user.secret_key);
}

/// The data directory a command names.
fn data_of(cmd: &UserCommand) -> &std::path::Path {
    let data = match cmd {
        UserCommand::Create { data, .. }
        | UserCommand::List { data }
        | UserCommand::Delete { data, .. }
        | UserCommand::Policy(
            PolicyCommand::Set { data, .. }
            | PolicyCommand::Get { data, .. }
            | PolicyCommand::Delete { data, .. },
        )
        | UserCommand::Key(KeyCommand::Create { data, .. } | KeyCommand::Delete { data, .. }) => {
            data
        }
    };
    &data.data
}

pub fn run(cmd: &UserCommand) -> anyhow::Result<()> {
    if let Some(control) = crate::control_plane::client_of(data_of(cmd))? {
        return crate::user_cluster::run(cmd, &control);
    }
    match cmd {
        UserCommand::Create { name, data } => {
            print_created(&user_admin::create(&data.data, name)?);
        }
        UserCommand::List { data } => {
            for u in user_admin::list(&data.data)? {
                let policy = if u.has_policy { "identity-policy" } else { "-" };
                let keys = if u.access_keys.is_empty() {
                    "-".to_owned()
                } else {
                    u.access_keys.join(",")
                };
                println!("{}\t{keys}\t{policy}", u.name);
            }
        }
        UserCommand::Delete { name, data } => {
            user_admin::delete(&data.data, name)?;
            println!("deleted user {name}");
        }
        UserCommand::Policy(PolicyCommand::Set { name, file, data }) => {
            let text = user_admin::read_policy_file(file)?;
            user_admin::policy_set(&data.data, name, &text)?;
            println!("set the identity policy of {name}");
        }
        UserCommand::Key(KeyCommand::Create { name, data }) => {
            print_created(&user_admin::key_create(&data.data, name)?);
        }
        UserCommand::Key(KeyCommand::Delete { access_key, data }) => {
            let name = user_admin::key_delete(&data.data, access_key)?;
            println!("deleted a key of {name}");
        }
        UserCommand::Policy(PolicyCommand::Get { name, data }) => {
            println!("{}", user_admin::policy_get(&data.data, name)?);
        }
        UserCommand::Policy(PolicyCommand::Delete { name, data }) => {
            user_admin::policy_delete(&data.data, name)?;
            println!("removed the identity policy of {name}");
        }
    }
    Ok(())
}
