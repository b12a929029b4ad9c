//! `archy admin password`: sets the web dashboard's admin password (argon2id, in
//! `<data_dir>/admin.password`, 0600). Asked twice on a terminal; read as one line from
//! stdin otherwise (for scripts: `printf '%s\n' "$PW" | archy admin password`). Never on the
//! command line, where other users could read it in the process list.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use archy_dashboard::password;
use clap::Subcommand;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Set or replace the web dashboard's admin password; every open dashboard session ends.
    Password {
        /// The node's TOML config, whose data_dir holds the password.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The node's data dir (default: from --config, else `$ARCHY_DATA_DIR` or the XDG
        /// data dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::Password { config, data_dir } = command;
    let data_dir = match (data_dir, config) {
        (Some(dir), _) => dir,
        (None, Some(path)) => archy_node::NodeConfig::load(&path)?.data_dir,
        (None, None) => archy_node::config::default_data_dir(),
    };
    let new = read_new_password()?;
    if let Err(why) = password::check_strength(&new) {
        bail!("{why}");
    }
    archy_node::auth::private_data_dir(&data_dir)?;
    let started = std::time::Instant::now();
    password::write(&data_dir, &new, password::Mode::Replace)?;
    tracing::debug!(elapsed = ?started.elapsed(), "argon2id");
    outln!(
        "The dashboard's admin password is set ({}). Open sessions have ended.",
        password::password_path(&data_dir).display()
    );
    Ok(())
}

fn read_new_password() -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("New admin password: ").context("reading the password")?,
        );
        let second = Zeroizing::new(
            rpassword::prompt_password("The same password again: ")
                .context("reading the password")?,
        );
        if first != second {
            bail!("the two passwords differ; nothing was changed");
        }
        Ok(first)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            bail!("no password on stdin");
        }
        Ok(Zeroizing::new(trimmed.to_owned()))
    }
}
