//! `crm-events`: publish CRM events to webhookd from a shell or a script.
//!
//! Exit codes: 0 published; 1 the broker failed (unreachable, refused the
//! events, file unreadable); 2 the input is wrong (unknown event, bad JSON,
//! bad arguments), in which case nothing was published. `listen` runs until
//! Ctrl-C (0), or exits 1 when the daemon refuses the token or the
//! subscription, 2 on bad arguments.

mod listen;
mod listen_forward;
mod listen_tls;
mod listen_ws;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use uuid::Uuid;
use webhookd_events::{find_event, EventMessage, CATALOGUE};
use webhookd_producer::event::now;
use webhookd_producer::ndjson::{check_ndjson, ndjson_events};
use webhookd_producer::topology::{DEFAULT_EXCHANGE, DEFAULT_QUEUE};
use webhookd_producer::{Publisher, PublisherOptions, QueueType, Topology};

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Checked in this order when `--amqp-url` is absent; each may list several
/// nodes of a cluster, comma-separated.
const URL_VARIABLES: [&str; 3] = [
    "AMQP_URL",
    "WEBHOOKD__BROKER__URLS",
    "WEBHOOKD__BROKER__URL",
];

#[derive(Parser)]
#[command(
    name = "crm-events",
    version,
    about = "Publish CRM events to webhookd through RabbitMQ, with publisher confirms"
)]
struct Cli {
    /// The broker options given ahead of the command (`crm-events
    /// --amqp-url URL publish ...`), as they were before they moved to
    /// `publish`: still accepted there, not shown in any help.
    #[command(flatten)]
    early: EarlyBrokerArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where `publish` publishes. After the command, so `publish --help` lists
/// them and `listen --help`, which needs no broker, does not.
#[derive(Args)]
struct BrokerArgs {
    /// Broker URL; repeat it, or separate URLs with commas, for the nodes of a
    /// cluster: the first that answers is used and, when it goes away, the
    /// next, with unconfirmed events republished (default: $AMQP_URL, else
    /// $WEBHOOKD__BROKER__URLS, else $WEBHOOKD__BROKER__URL, else
    /// amqp://guest:guest@127.0.0.1:5672/%2f)
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    amqp_url: Vec<String>,
    /// Type of the queues declared: classic (default) or quorum (must match
    /// the workers' broker.queue_type)
    #[arg(long, env = "WEBHOOKD__BROKER__QUEUE_TYPE", value_parser = parse_queue_type)]
    queue_type: Option<QueueType>,
    /// Exchange to publish to, declared if missing (default: crm.events)
    #[arg(long, env = "WEBHOOKD__BROKER__EXCHANGE")]
    exchange: Option<String>,
    /// Queue the webhookd workers consume, declared if missing (default:
    /// webhookd.events)
    #[arg(long, env = "WEBHOOKD__BROKER__QUEUE")]
    queue: Option<String>,
}

/// [`BrokerArgs`] ahead of the command: hidden, and without the
/// environment (which the ones after the command read), so that given here
/// they win over it as they did.
#[derive(Args)]
struct EarlyBrokerArgs {
    #[arg(long = "amqp-url", value_delimiter = ',', hide = true)]
    amqp_url: Vec<String>,
    #[arg(long = "queue-type", value_parser = parse_queue_type, hide = true)]
    queue_type: Option<QueueType>,
    #[arg(long = "exchange", hide = true)]
    exchange: Option<String>,
    #[arg(long = "queue", hide = true)]
    queue: Option<String>,
}

/// The broker options in effect: ahead of the command, else after it (or
/// the environment), else the defaults.
struct Broker {
    urls: Vec<String>,
    topology: Topology,
}

impl Broker {
    fn resolve(early: EarlyBrokerArgs, late: BrokerArgs) -> Broker {
        let urls = if early.amqp_url.is_empty() {
            late.amqp_url
        } else {
            early.amqp_url
        };
        let topology = Topology::new(
            early
                .exchange
                .or(late.exchange)
                .unwrap_or_else(|| DEFAULT_EXCHANGE.to_owned()),
            early
                .queue
                .or(late.queue)
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
        )
        .with_queue_type(
            early
                .queue_type
                .or(late.queue_type)
                .unwrap_or(QueueType::Classic),
        );
        Broker {
            urls: broker_urls(urls),
            topology,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Publish one event, or every event of a newline-delimited JSON file
    Publish(PublishArgs),
    /// List the events of the catalogue
    Events,
    /// Forward the daemon's live events, signed as webhookd signs them, to a
    /// URL you give (e.g. a receiver under development on localhost)
    Listen(listen::ListenArgs),
}

#[derive(Args)]
struct PublishArgs {
    /// Event name, e.g. task.created (see `crm-events events`)
    #[arg(required_unless_present = "file", requires = "data")]
    event: Option<String>,
    /// The event's data, a JSON object
    #[arg(long, value_name = "JSON", requires = "event")]
    data: Option<String>,
    /// Deliver only to this CRM user's webhooks (and admins')
    #[arg(long, value_name = "N", requires = "event")]
    user_id: Option<i64>,
    /// Event id (default: a new UUIDv7)
    #[arg(long, value_name = "UUID", requires = "event")]
    id: Option<Uuid>,
    /// One event per line: {"event", "data", "user_id"?, "id"?, "timestamp"?};
    /// every line is checked before anything is published
    #[arg(long, value_name = "PATH", conflicts_with = "event")]
    file: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Why the command failed; decides the exit code.
enum Failure {
    /// The input is wrong; nothing was published.
    Usage(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let publish = match cli.command {
        Command::Events => {
            for spec in CATALOGUE {
                println!("{:<16} {}", spec.name, spec.description);
            }
            return Ok(());
        }
        Command::Publish(publish) => publish,
        Command::Listen(args) => {
            return listen::run(args).await.map_err(|error| match error {
                listen::ListenError::Usage(message) => Failure::Usage(message),
                error => Failure::Runtime(error.into()),
            })
        }
    };
    // Validate before connecting: bad input is reported without a broker.
    let input = match (&publish.file, &publish.event) {
        (Some(path), _) => read_file(path)?,
        (None, Some(event)) => Input::One(build_message(event, &publish)?),
        (None, None) => return Err(Failure::Usage("give an EVENT or --file".into())),
    };
    let Broker { urls, topology } = Broker::resolve(cli.early, publish.broker);
    let options = PublisherOptions {
        connection_name: format!("crm-events ({})", std::process::id()),
        ..PublisherOptions::default()
    };
    let publisher = Publisher::connect_cluster(&urls, topology, options)
        .await
        .map_err(anyhow::Error::from)?;
    let published = match &input {
        Input::One(message) => publish_one(&publisher, message).await,
        Input::File { text, events } => publish_file(&publisher, text, *events).await,
    };
    publisher.close().await;
    published.map_err(Failure::Runtime)
}

fn build_message(event: &str, args: &PublishArgs) -> Result<EventMessage, Failure> {
    if find_event(event).is_none() {
        return Err(Failure::Usage(format!(
            "unknown event {event:?}; see crm-events events"
        )));
    }
    let data = args.data.as_deref().unwrap_or("{}");
    let data: Value = serde_json::from_str(data)
        .map_err(|e| Failure::Usage(format!("invalid JSON in --data: {e}")))?;
    if !data.is_object() {
        return Err(Failure::Usage(format!(
            "--data must be a JSON object, not {}",
            json_kind(&data)
        )));
    }
    let mut message =
        EventMessage::new(event, data, now()).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(id) = args.id {
        message = message.with_id(id);
    }
    if let Some(user_id) = args.user_id {
        message = message.with_user_id(user_id);
    }
    Ok(message)
}

/// What to publish: one event from the command line, or a checked file.
enum Input {
    One(EventMessage),
    /// Every line is valid.
    File {
        text: String,
        events: usize,
    },
}

/// Events are parsed again, this many at a time, as they are published: the
/// file's text stays in memory, its parsed events do not.
const PUBLISH_CHUNK: usize = 4096;

fn read_file(path: &Path) -> Result<Input, Failure> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match check_ndjson(&text) {
        Ok(events) => Ok(Input::File { text, events }),
        Err(errors) => {
            let mut report: Vec<String> = errors.iter().map(ToString::to_string).collect();
            report.push(format!(
                "{} invalid line(s) in {}; nothing was published",
                errors.len(),
                path.display()
            ));
            Err(Failure::Usage(report.join("\n")))
        }
    }
}

async fn publish_one(publisher: &Publisher, message: &EventMessage) -> anyhow::Result<()> {
    publisher.publish(message).await?;
    println!("published {} {}", message.event, message.id);
    Ok(())
}

/// Lines without a timestamp are stamped with the time publishing starts.
async fn publish_file(publisher: &Publisher, text: &str, events: usize) -> anyhow::Result<()> {
    let progress = progress_bar(events);
    let started = Instant::now();
    let mut lines = ndjson_events(text, now());
    let mut chunk = Vec::with_capacity(PUBLISH_CHUNK.min(events));
    let sent: anyhow::Result<usize> = async {
        let mut published = 0;
        loop {
            chunk.clear();
            for parsed in lines.by_ref().take(PUBLISH_CHUNK) {
                // Checked before publishing began; the text has not changed.
                chunk.push(parsed?);
            }
            if chunk.is_empty() {
                return Ok(published);
            }
            publisher
                .publish_many(&chunk, |confirmed| {
                    progress.set_position((published + confirmed) as u64)
                })
                .await?;
            published += chunk.len();
        }
    }
    .await;
    progress.finish_and_clear();
    let published = sent?;
    let elapsed = started.elapsed();
    println!(
        "published {published} events in {:.2}s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        rate(published, elapsed)
    );
    Ok(())
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} events ({elapsed}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn broker_urls(flags: Vec<String>) -> Vec<String> {
    let flags = non_empty(flags);
    if !flags.is_empty() {
        return flags;
    }
    URL_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| non_empty(value.split(',').map(str::to_owned).collect()))
        .find(|urls| !urls.is_empty())
        .unwrap_or_else(|| vec![DEFAULT_URL.to_owned()])
}

/// The URLs with surrounding blanks trimmed and empty entries dropped.
fn non_empty(urls: Vec<String>) -> Vec<String> {
    urls.into_iter()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .collect()
}

fn parse_queue_type(value: &str) -> Result<QueueType, String> {
    value
        .parse()
        .map_err(|e: webhookd_producer::UnknownQueueType| e.to_string())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `a: b: c`, skipping a cause its parent already quotes (lapin's errors
/// include their source in their own message).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // Quiet by default: the user sees reconnect warnings, not lapin's
    // internals (which log returned messages with their payload).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("webhookd_producer=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_error_chain_skips_causes_already_quoted() {
        let io = std::io::Error::other("Connection refused");
        let error = anyhow::Error::new(io)
            .context("IO error: Connection refused")
            .context("cannot connect to the broker at amqp://guest:***@h:1/%2f");
        assert_eq!(
            error_chain(&error),
            "cannot connect to the broker at amqp://guest:***@h:1/%2f: IO error: Connection refused"
        );
    }

    fn broker(args: &[&str]) -> Broker {
        let cli = Cli::try_parse_from(args).unwrap();
        let Command::Publish(publish) = cli.command else {
            panic!("not publish: {args:?}");
        };
        Broker::resolve(cli.early, publish.broker)
    }

    #[test]
    fn repeated_and_comma_separated_urls_all_count() {
        let urls = broker_urls(vec!["amqp://a".into(), " amqp://b".into(), "".into()]);
        assert_eq!(urls, ["amqp://a", "amqp://b"]);
        let given = broker(&[
            "crm-events",
            "publish",
            "--amqp-url",
            "amqp://a,amqp://b",
            "--amqp-url",
            "amqp://c",
            "--queue-type",
            "quorum",
            "task.created",
            "--data",
            "{}",
        ]);
        assert_eq!(given.urls, ["amqp://a", "amqp://b", "amqp://c"]);
        assert_eq!(given.topology.queue_type, QueueType::Quorum);
        assert!(Cli::try_parse_from([
            "crm-events",
            "publish",
            "--queue-type",
            "stream",
            "task.created"
        ])
        .is_err());
    }

    #[test]
    fn broker_options_go_after_publish_or_ahead_of_it_as_before() {
        let ahead = broker(&[
            "crm-events",
            "--amqp-url",
            "amqp://a",
            "--exchange",
            "x",
            "--queue",
            "q",
            "--queue-type",
            "quorum",
            "publish",
            "--file",
            "events.ndjson",
        ]);
        let after = broker(&[
            "crm-events",
            "publish",
            "--file",
            "events.ndjson",
            "--amqp-url",
            "amqp://a",
            "--exchange",
            "x",
            "--queue",
            "q",
            "--queue-type",
            "quorum",
        ]);
        for resolved in [ahead, after] {
            assert_eq!(resolved.urls, ["amqp://a"]);
            assert_eq!(resolved.topology.exchange, "x");
            assert_eq!(resolved.topology.queue, "q");
            assert_eq!(resolved.topology.queue_type, QueueType::Quorum);
        }
    }

    #[test]
    fn only_publish_shows_the_broker_options() {
        let mut command = Cli::command();
        let help = |command: &mut clap::Command, name: &str| {
            command
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string()
        };
        let publish = help(&mut command, "publish");
        for option in ["--amqp-url", "--queue-type", "--exchange", "--queue "] {
            assert!(publish.contains(option), "{option} in publish --help");
        }
        for name in ["listen", "events"] {
            let text = help(&mut command, name);
            assert!(!text.contains("--amqp-url"), "{name} --help:\n{text}");
            assert!(!text.contains("--queue-type"), "{name} --help:\n{text}");
        }
        let top = command.render_long_help().to_string();
        assert!(!top.contains("--amqp-url"), "{top}");
    }

    #[test]
    fn the_rate_of_an_instant_run_is_zero_not_infinite() {
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_millis(500)), 20.0);
    }

    #[test]
    fn data_kinds_are_named_for_error_messages() {
        assert_eq!(json_kind(&serde_json::json!([1])), "an array");
        assert_eq!(json_kind(&serde_json::json!("x")), "a string");
        assert_eq!(json_kind(&Value::Null), "null");
    }
}
