//! `shortener`: the all-in-one server and its admin subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::blocklist::Announcement;
use common::config::{ServiceKind, Settings};
use shortener::transfer::Format;
use shortener::transfer::export::{ExportOptions, export_links};
use shortener::transfer::import::{DEFAULT_BATCH, ImportOptions, import_links};

/// Exit status of an import that finished with some rows refused: the good rows are
/// in, the bad ones were reported on stderr. (1 means the command failed.)
const EXIT_BAD_ROWS: u8 = 3;

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
    /// Import and export a tenant's links (CSV or JSON Lines).
    Links {
        #[command(subcommand)]
        command: LinksCommand,
    },
    /// Block hosts that links may not lead to (phishing, malware), at run time.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Webhook messages that ran out of retries: list them, send them again.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// A tenant's dead letters, newest first: message, endpoint, type, link, when it
    /// was given up on, attempts (tab-separated).
    DeadLetters {
        #[arg(long)]
        tenant: String,
        /// Only this endpoint's (`ep_…`).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Put an endpoint's dead letters back in line, due at once with a fresh retry
    /// budget (a running server delivers them at its next poll).
    Replay {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        endpoint: String,
        /// Only this message (`msg_…`).
        #[arg(long)]
        message: Option<String>,
    },
}

#[derive(Subcommand)]
enum HostsCommand {
    /// Block a host and all its subdomains: redirects to it answer 410 and new links
    /// to it are refused. Running instances are told through Redis when one is
    /// configured, and reload the list every `links.blocklist_reload` anyway.
    Block {
        /// The host, e.g. `evil.example` (no scheme, no path; Unicode is fine).
        host: String,
        /// Why, for whoever reads `hosts list` later.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a block made with `hosts block` (the host exactly as it was blocked).
    Unblock { host: String },
    /// List the runtime blocks: host, when, reason (not `links.blocked_hosts`).
    List,
}

#[derive(Subcommand)]
enum LinksCommand {
    /// Import links from a file with the columns url, alias, created_at, expires_at,
    /// tags, clicks. Every row is checked as the API checks a create; a bad row is
    /// reported as `line N: reason` on stderr and skipped, the others are imported.
    /// Rows are written in batches that each commit whole, and remembered: running the
    /// same import again (after an interruption, or on a file with rows added) skips
    /// the rows already imported. Exit status 3: done, but some rows were bad.
    Import {
        /// The file (`.csv`, `.jsonl`).
        file: PathBuf,
        /// File format (default: from the file's extension).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Tenant that will own the links.
        #[arg(long)]
        tenant: String,
        /// Rows per transaction.
        #[arg(long, default_value_t = DEFAULT_BATCH as u32,
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
        /// Check every row against the database, then roll everything back.
        #[arg(long)]
        dry_run: bool,
        /// Snowflake worker id to lease for the generated codes (default: the lowest
        /// free one; the configured id belongs to the server).
        #[arg(long, value_parser = clap::value_parser!(u16).range(0..1024))]
        worker_id: Option<u16>,
    },
    /// Export a tenant's links (live and expired; not deleted or disabled ones) in the
    /// columns an import reads.
    Export {
        /// File format (default: from the output file's extension, else CSV).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Tenant whose links to export.
        #[arg(long)]
        tenant: String,
        /// Output file, written whole or not at all; `-` is standard output.
        #[arg(long, default_value = "-")]
        output: PathBuf,
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
        /// The key's role: owner (the default), admin, editor or viewer.
        #[arg(long, conflicts_with = "scopes")]
        role: Option<String>,
        /// A service key's scopes instead of a role, comma-separated
        /// (links:read, links:write, stats:read, domains:manage, keys:manage, audit:read).
        #[arg(long)]
        scopes: Option<String>,
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
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let settings = Settings::load(ServiceKind::AllInOne, cli.config.as_deref())?;
    common::telemetry::init(&settings.telemetry);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let server = shortener::start(settings.clone()).await?;
            let base = settings.http.base_url();
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
            server.until_signal().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => match command {
            KeysCommand::Create {
                tenant,
                label,
                role,
                scopes,
            } => {
                let grant = shortener::parse_grant(role.as_deref(), scopes.as_deref())?;
                let key = shortener::create_key(settings, &tenant, &label, grant).await?;
                println!("API key for tenant `{tenant}` (shown once, store it now):");
                println!("{key}");
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::List { tenant } => {
                for line in shortener::list_keys(settings, tenant.as_deref()).await? {
                    println!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Revoke { id } => {
                if shortener::revoke_key(settings, id).await? {
                    println!("revoked {id}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    anyhow::bail!("no active key with id {id}")
                }
            }
        },
        Command::Links { command } => links(settings, command).await,
        Command::Hosts { command } => hosts(settings, command).await,
        Command::Webhooks { command } => match command {
            WebhooksCommand::DeadLetters { tenant, endpoint } => {
                for line in shortener::dead_letters(settings, &tenant, endpoint.as_deref()).await? {
                    println!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
            WebhooksCommand::Replay {
                tenant,
                endpoint,
                message,
            } => {
                let replayed = shortener::replay_dead_letters(
                    settings,
                    &tenant,
                    &endpoint,
                    message.as_deref(),
                )
                .await?;
                println!("{replayed} dead letter(s) of {endpoint} back in line");
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

/// Results on stdout; whether running instances were told, on stderr.
async fn hosts(settings: Settings, command: HostsCommand) -> anyhow::Result<ExitCode> {
    let reload = common::config::duration::format(settings.links.blocklist_reload);
    let outcome = match command {
        HostsCommand::Block { host, reason } => {
            let outcome = shortener::block_host(settings, &host, &reason).await?;
            if outcome.changed {
                println!("blocked {}", outcome.host);
            } else {
                println!("{} was already blocked", outcome.host);
            }
            outcome
        }
        HostsCommand::Unblock { host } => {
            let outcome = shortener::unblock_host(settings, &host).await?;
            if !outcome.changed {
                anyhow::bail!("{} is not blocked", outcome.host);
            }
            println!("unblocked {}", outcome.host);
            outcome
        }
        HostsCommand::List => {
            for line in shortener::list_blocked_hosts(settings).await? {
                println!("{line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    match outcome.announced {
        Announcement::Published => eprintln!("running instances were told"),
        Announcement::NoBus => eprintln!(
            "no Redis configured: a server running on this database applies this within \
             {reload} (links.blocklist_reload)"
        ),
        Announcement::Failed(why) => eprintln!(
            "warning: running instances could not be told ({why}); each applies this at \
             its next periodic reload (links.blocklist_reload)"
        ),
        Announcement::Unchanged => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Summaries and bad rows go to stderr: stdout may be carrying an export.
async fn links(settings: Settings, command: LinksCommand) -> anyhow::Result<ExitCode> {
    match command {
        LinksCommand::Import {
            file,
            format,
            tenant,
            batch,
            dry_run,
            worker_id,
        } => {
            let options = ImportOptions {
                format,
                batch: batch as usize,
                dry_run,
                worker_id,
                progress: true,
                ..ImportOptions::new(file, &tenant)
            };
            let summary = import_links(settings, &options, |bad| eprintln!("{bad}")).await?;
            eprintln!("{summary}");
            Ok(if summary.bad > 0 {
                ExitCode::from(EXIT_BAD_ROWS)
            } else {
                ExitCode::SUCCESS
            })
        }
        LinksCommand::Export {
            format,
            tenant,
            output,
        } => {
            let options = ExportOptions {
                tenant,
                format,
                output: Some(output),
                progress: true,
            };
            let summary = export_links(settings, &options).await?;
            eprintln!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
