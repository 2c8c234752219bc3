//! `atlas-api`: reads settings, wires adapters and runs a command. See `atlas-api --help`.

use atlas_accounts::MintKeyRequest;
use atlas_api::cli::{Cli, Command, KeysCommand, OrgsCommand};
use atlas_api::config::Settings;
use atlas_kernel::{OrgId, PageRequest, SystemClock};
use atlas_scopes::{Actor, KeyId, Principal, Scope, ScopeSet};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;

/// mimalloc instead of glibc's malloc: allocation-heavy request paths (JSON, SQL statements)
/// spend far less time in the allocator (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atlas-api: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = atlas_api::telemetry::init(settings.log_format);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atlas-api: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), String> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let store = atlas_store_sql::SqlStore::connect(&settings.database_url).await.map_err(|e| format!("{e:?}"))?;
            store.migrate().await.map_err(|e| format!("{e:?}"))?;
            println!("migrations applied to {}", store.backend_name());
            Ok(())
        }
        Command::Orgs(OrgsCommand::Create { name, platform_admin }) => {
            let wiring = atlas_api::wire(&settings, Arc::new(SystemClock)).await.map_err(|e| e.to_string())?;
            let extra: ScopeSet = if platform_admin { [Scope::PlatformAdmin].into_iter().collect() } else { ScopeSet::empty() };
            let (org, key) = atlas_api::create_organization(&wiring.state, &name, extra).await.map_err(|e| e.to_string())?;
            println!("organization: {org}");
            println!("admin api key: {key}");
            Ok(())
        }
        Command::Keys(keys) => keys_command(keys, settings).await,
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let server = atlas_api::start(&settings).await.map_err(|e| e.to_string())?;
    if let Some(key) = &server.first_admin_key {
        println!("admin api key: {key}");
    }
    tracing::info!(addr = %server.addr, database = server.wiring.store.backend_name(), "atlas listening on http://{}/v1/atlas", server.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn keys_command(command: KeysCommand, settings: Settings) -> Result<(), String> {
    let wiring = atlas_api::wire(&settings, Arc::new(SystemClock)).await.map_err(|e| e.to_string())?;
    let accounts = &wiring.state.accounts;
    let org_of = |text: &str| text.parse::<OrgId>().map_err(|e| format!("--org {text}: {e}"));
    match command {
        KeysCommand::Create { org, name, scopes, expires_at } => {
            let org = org_of(&org)?;
            let scopes = ScopeSet::parse(scopes.iter().map(String::as_str)).map_err(|e| e.to_string())?;
            let expires_at = expires_at
                .map(|t| time::OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| format!("--expires-at {t}: not RFC 3339")))
                .transpose()?;
            let operator = Principal { org_id: org, actor: Actor::System, scopes: Scope::ALL.iter().copied().collect() };
            let request = MintKeyRequest { name, scopes, expires_at, allowed_ips: Vec::new() };
            let entropy: [u8; 30] = atlas_api::random_bytes();
            let journal = |m: &atlas_accounts::MintedKey| atlas_api::operator_journal(org, "keys.create", m.record.id.to_string());
            let minted = accounts.mint_key(&operator, request, &entropy, &journal).await.map_err(|e| e.to_string())?;
            println!("key id: {}", minted.record.id);
            println!("api key: {}", minted.token.expose());
            Ok(())
        }
        KeysCommand::List { org } => {
            let org = org_of(&org)?;
            let mut page = PageRequest { limit: 200, after: None };
            loop {
                let keys = accounts.list_keys(org, &page).await.map_err(|e| e.to_string())?;
                for k in &keys.items {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                    println!("{}\t{}\t{}\t{}\t{}", k.id, k.prefix, state, k.name, k.scopes.names().join(","));
                }
                match keys.next_cursor {
                    Some(c) => page = PageRequest::parse(Some(200), Some(&c)).map_err(|e| e.to_string())?,
                    None => return Ok(()),
                }
            }
        }
        KeysCommand::Revoke { org, id } => {
            let org = org_of(&org)?;
            let id: KeyId = id.parse().map_err(|e| format!("{id}: {e}"))?;
            let operator = Principal { org_id: org, actor: Actor::System, scopes: ScopeSet::empty() };
            let journal = atlas_api::operator_journal(org, "keys.revoke", id.to_string());
            accounts.revoke_key(&operator, id, &journal).await.map_err(|e| e.to_string())?;
            println!("revoked {id}");
            Ok(())
        }
    }
}
