//! The command line: `serve` (the default), `migrate`, `keys create|list|revoke` and
//! `orgs create`. Operator commands act directly on the database named by the settings.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Atlas: messaging and operations API platform.
#[derive(Debug, Parser)]
#[command(name = "atlas-api", version)]
pub struct Cli {
    /// A TOML settings file (environment variables win over it).
    #[arg(long, global = true, env = "ATLAS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage organizations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
}

/// `keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; prints it once.
    Create {
        /// The organization (org_…).
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// Comma-separated scopes (atlas.messages.send,atlas.runs.read).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List an organization's keys.
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        org: String,
        /// The key id (key_…).
        id: String,
    },
}

/// `orgs …`
#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Create an organization; prints its admin key once.
    Create {
        name: String,
        /// Also grant the operator scope atlas.platform.admin to its admin key.
        #[arg(long)]
        platform_admin: bool,
    },
}
