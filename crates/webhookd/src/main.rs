use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use webhookd::{telemetry, App, Role, Settings};
use webhookd_producer::topology::{declare, TopologyError};

mod cli;

// glibc's malloc was a fifth of the daemon's instructions per delivery
// (docs/PERFORMANCE.md): every attempt allocates and frees many small,
// short-lived buffers across threads, which mimalloc's per-thread free lists
// serve far more cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Webhook delivery daemon for CRM events.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables
    /// WEBHOOKD__SECTION__KEY override both).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing, apply migrations, declare the broker topology.
    Migrate,
    /// Run the daemon until SIGTERM or Ctrl-C.
    Run {
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Manage users and their API tokens.
    #[command(subcommand)]
    Users(cli::users::UsersCommand),
    /// Manage the secrets stored encrypted (SPEC §15).
    #[command(subcommand)]
    Secrets(cli::secrets::SecretsCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            // Logging is configured by these settings, so it is not up yet.
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(&settings.log);
    match execute(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Through tracing, so a JSON log pipeline gets one JSON line.
            error!(error = format!("{e:#}"), "webhookd failed");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => migrate(&settings).await,
        Command::Run { role } => run(settings, role).await,
        Command::Users(cmd) => {
            let pool = webhookd_store::connect(&settings.database.url, 2)
                .await
                .context("connecting to the database (run `webhookd migrate` first?)")?;
            cli::users::run(cmd, &pool).await
        }
        Command::Secrets(cmd) => {
            let keys = settings.secrets.keys()?;
            let pool = webhookd_store::connect(&settings.database.url, 2)
                .await
                .context("connecting to the database (run `webhookd migrate` first?)")?;
            cli::secrets::run(cmd, &pool, &keys).await
        }
    }
}

/// On `database.direct_url`: sqlx's migrator holds a session advisory lock
/// across its statements, which a transaction pooler would lend to other
/// clients' server connections, and creating the database connects to the
/// `postgres` database, which a pooler does not usually serve.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let direct = settings.database.direct_url();
    if webhookd_store::create_database_if_missing(direct)
        .await
        .context("checking the database")?
    {
        info!("created the database");
    }
    let pool = webhookd_store::connect(direct, 2)
        .await
        .context("connecting to the database")?;
    webhookd_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    info!("migrations applied");
    let (conn, _node) =
        webhookd_worker::broker::connect_any(&settings.broker.urls(), 0, "webhookd-migrate")
            .await
            .context("connecting to the broker")?;
    let channel = conn
        .create_channel()
        .await
        .context("opening a broker channel")?;
    let topology = settings.broker.topology();
    let declared = declare(&channel, &topology).await;
    let _ = conn.close(200, "done".into()).await;
    declared.context("declaring the broker topology")?;
    info!(exchange = %topology.exchange, queue = %topology.queue, queue_type = %topology.queue_type, "broker topology declared");
    Ok(())
}

/// Refuses to start a worker whose queues exist on the broker with other
/// arguments (the other `broker.queue_type`): it could never consume. A
/// broker that does not answer yet is no reason to refuse; the consumers
/// wait for it as they do for any outage.
async fn check_topology(settings: &Settings) -> anyhow::Result<()> {
    let check = async {
        let (conn, _node) =
            webhookd_worker::broker::connect_any(&settings.broker.urls(), 0, "webhookd-start")
                .await
                .map_err(|e| e.to_string())?;
        let declared = match conn.create_channel().await {
            Ok(channel) => declare(&channel, &settings.broker.topology()).await,
            Err(e) => return Err(e.to_string()),
        };
        let _ = conn.close(200, "checked".into()).await;
        Ok(declared)
    };
    match tokio::time::timeout(SCHEMA_CHECK_LIMIT, check).await {
        Ok(Ok(Err(e @ TopologyError::QueueMismatch { .. }))) => {
            Err(anyhow::Error::new(e).context("checking the broker's queues at start"))
        }
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => {
            warn!(error = %e, "could not declare the broker topology at start; going on");
            Ok(())
        }
        Ok(Err(e)) => {
            warn!(error = %e, "could not reach the broker at start; going on");
            Ok(())
        }
        Err(_) => {
            warn!("the broker did not answer the topology check at start; going on");
            Ok(())
        }
    }
}

async fn run(settings: Settings, role: Role) -> anyhow::Result<()> {
    check_schema(&settings).await?;
    if role != Role::Api {
        check_topology(&settings).await?;
    }
    let app = App::build(settings, role).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(stop_on_signal(cancel.clone()));
    app.run_until_stopped(cancel).await?;
    Ok(())
}

/// Refuses to start on a schema older than this binary: every fan-out would
/// fail (and be retried forever) on a function or column that is not there.
/// A database that does not answer yet is no reason to refuse; the daemon
/// waits for it as it does for any outage.
async fn check_schema(settings: &Settings) -> anyhow::Result<()> {
    let check = webhookd_store::missing_migrations(&settings.database.url);
    match tokio::time::timeout(SCHEMA_CHECK_LIMIT, check).await {
        Ok(Ok(missing)) if missing.is_empty() => Ok(()),
        Ok(Ok(missing)) => anyhow::bail!(
            "the database lacks migrations {missing:?} that this webhookd needs: run `webhookd migrate` first"
        ),
        Ok(Err(e)) => {
            warn!(error = %e, "could not check the database schema at start; going on");
            Ok(())
        }
        Err(_) => {
            warn!("the database did not answer the schema check at start; going on");
            Ok(())
        }
    }
}

/// How long start-up waits for the schema check.
const SCHEMA_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn stop_on_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutdown requested");
    cancel.cancel();
}
