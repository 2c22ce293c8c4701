//! `shortener`: the all-in-one server and its admin subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::config::{ServiceKind, Settings};

#[derive(Parser)]
#[command(
    name = "shortener",
    about = "URL shortener: all-in-one server and admin commands"
)]
struct Cli {
    /// TOML settings file (else $SHORTENER_CONFIG); SHORTENER__SECTION__KEY overrides.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run create, lookup and stats in one process (the default).
    Serve,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a tenant; the key is printed once, as the last line.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (ids, tenants, state; never the keys themselves).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id.
    Revoke { id: i64 },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(ServiceKind::AllInOne, cli.config.as_deref())?;
    common::telemetry::init(&settings.telemetry);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let server = shortener::AllInOne::build(settings.clone()).await?;
            let base = settings.http.public_base_url.trim_end_matches('/');
            println!(
                "shortener listening on http://{}:{}",
                settings.http.bind,
                server.port()
            );
            println!("try:");
            println!(
                "  curl -s -X POST {base}/api/v1/links -H 'Content-Type: application/json' -d '{{\"url\":\"https://example.com/\"}}'"
            );
            println!("  curl -si {base}/<code>");
            server.run_until_stopped().await
        }
        Command::Keys { command } => match command {
            KeysCommand::Create { tenant, label } => {
                let key = shortener::create_key(settings, &tenant, &label).await?;
                println!("API key for tenant `{tenant}` (shown once, store it now):");
                println!("{key}");
                Ok(())
            }
            KeysCommand::List { tenant } => {
                for line in shortener::list_keys(settings, tenant.as_deref()).await? {
                    println!("{line}");
                }
                Ok(())
            }
            KeysCommand::Revoke { id } => {
                if shortener::revoke_key(settings, id).await? {
                    println!("revoked {id}");
                    Ok(())
                } else {
                    anyhow::bail!("no active key with id {id}")
                }
            }
        },
    }
}
