//! `bodycamd user add|passwd|disable|enable|list`: the people who log in to
//! the console. Passwords are read from the terminal (not echoed) or, with
//! `--password-stdin`, from the first line of standard input.

use std::io::{BufRead, IsTerminal, Write};

use super::{load_config, ConfigArg};
use crate::clock::to_ms;
use crate::console::password;
use crate::index::{users, write_once, Location};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add a person who logs in to the console.
    Add {
        /// Their login name (1-64 characters: letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// admin, auditor or approver (case systems use API tokens).
        #[arg(long)]
        role: String,
        /// Grant access to restricted records.
        #[arg(long)]
        restricted: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set a new password (every session of theirs ends).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Disable a person (every session of theirs ends at once).
    Disable {
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Enable a disabled person again.
    Enable {
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List the people and their roles.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Whether a login name is acceptable.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '@'))
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let fd = std::io::stdin();
        let old = rustix::termios::tcgetattr(&fd)?;
        let mut quiet = old.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet)?;
        let mut line = String::new();
        let r = fd.lock().read_line(&mut line);
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &old)?;
        eprintln!();
        r?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = ask("password: ")?;
    if ask("again: ")? != first {
        anyhow::bail!("the two passwords differ");
    }
    Ok(first)
}

fn new_hash(from_stdin: bool) -> anyhow::Result<Result<String, i32>> {
    let pw = read_password(from_stdin)?;
    if let Err(why) = password::check_new(&pw) {
        eprintln!("error: {why}");
        return Ok(Err(2));
    }
    Ok(Ok(password::hash(&pw)?))
}

fn by() -> String {
    format!("cli:{}", std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into()))
}

pub fn main(c: Command) -> anyhow::Result<i32> {
    let now = to_ms(chrono::Utc::now());
    let cfg_of = |config: &ConfigArg| load_config(&config.config);
    match c {
        Command::Add { name, role, restricted, password_stdin, config } => {
            let cfg = match cfg_of(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if !valid_name(&name) {
                eprintln!("error: {name:?} is not a login name: 1-64 letters, digits, '.', '_', '-' or '@'");
                return Ok(2);
            }
            let Some(role) = users::person_role(&role) else {
                eprintln!(
                    "error: role {role:?}: admin, auditor or approver (case systems use API tokens, not the console)"
                );
                return Ok(2);
            };
            let hash = match new_hash(password_stdin)? {
                Ok(h) => h,
                Err(code) => return Ok(code),
            };
            let by = by();
            if write(&cfg, |c| users::add(c, &name, role, restricted, &hash, &by, now))? {
                println!("added {name} ({}); they can log in to the console now", role.as_str());
                Ok(0)
            } else {
                eprintln!("error: there is already a user {name:?} (use `bodycamd user passwd` to set a new password)");
                Ok(1)
            }
        }
        Command::Passwd { name, password_stdin, config } => {
            let cfg = match cfg_of(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let hash = match new_hash(password_stdin)? {
                Ok(h) => h,
                Err(code) => return Ok(code),
            };
            let by = by();
            done(write(&cfg, |c| users::set_password(c, &name, &hash, &by, now))?, &name, "password set")
        }
        Command::Disable { name, config } => {
            let cfg = match cfg_of(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let by = by();
            done(write(&cfg, |c| users::set_disabled(c, &name, true, &by, now))?, &name, "disabled")
        }
        Command::Enable { name, config } => {
            let cfg = match cfg_of(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let by = by();
            done(write(&cfg, |c| users::set_disabled(c, &name, false, &by, now))?, &name, "enabled")
        }
        Command::List { config } => {
            let cfg = match cfg_of(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let reader = crate::index::open_reader(&cfg.index)?;
            let rows = users::list(&reader.db())?;
            for u in rows {
                println!(
                    "{}\t{}{}\t{}",
                    u.name,
                    u.role.as_str(),
                    if u.restricted { "+restricted" } else { "" },
                    if u.disabled_at.is_some() { "disabled" } else { "active" }
                );
            }
            Ok(0)
        }
    }
}

/// One write, creating (and migrating) the index first when it does not
/// exist yet: the first person is added before the daemon ever ran.
fn write<T>(
    cfg: &crate::config::Config,
    f: impl FnMut(&crate::index::db::Db) -> crate::index::db::Result<T>,
) -> anyhow::Result<T> {
    match &cfg.index {
        Location::Sqlite(p) if !p.exists() => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::index::Index::open(p)?.close();
        }
        Location::Sqlite(_) => {}
        // Creates the schema in an empty database (under the migration
        // lock); a no-op on a current one.
        Location::Postgres(_) => crate::index::Index::connect(&cfg.index)?.close(),
    }
    Ok(write_once(&cfg.index, f)?)
}

fn done(found: bool, name: &str, what: &str) -> anyhow::Result<i32> {
    if found {
        println!("{name}: {what}");
        Ok(0)
    } else {
        eprintln!("error: no user {name:?}");
        Ok(1)
    }
}
