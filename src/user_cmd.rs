//! `percore user …`: users and their identity policies in a data directory's `users.toml`
//! (`gateway::user_admin`). A running server picks a change up within a second (it watches the
//! file; SIGHUP reloads at once).

use std::path::PathBuf;

use clap::Subcommand;
use gateway::user_admin;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a new access key and secret key (the secret is shown only now).
    Create {
        /// The user's name (1-64 printable ASCII characters).
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// List the users: name, access key, whether they have an identity policy (no secrets).
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
    data: PathBuf,
}

/// Prints a new user's keys, the only time its secret is shown.
pub fn print_created(user: &gateway::creds::User) {
    println!("user: {}", user.name);
    println!("access_key: {}", user.access_key);
    println!("secret_key: {}", user.secret_key);
}

pub fn run(cmd: &UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { name, data } => {
            print_created(&user_admin::create(&data.data, name)?);
        }
        UserCommand::List { data } => {
            for u in user_admin::list(&data.data)? {
                let policy = if u.has_policy { "identity-policy" } else { "-" };
                println!("{}\t{}\t{policy}", u.name, u.access_key);
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
