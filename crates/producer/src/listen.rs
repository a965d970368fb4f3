//! `crm-events listen`: a receiver under development gets the daemon's live
//! events, signed and shaped as a worker delivers them, without a webhook.
//!
//! The socket is read by one task and the events forwarded by another, in
//! order, one at a time: a slow local receiver delays the lines, not the
//! reading (until the queue between them is full; then the daemon cuts the
//! connection off as too slow and the session starts again).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rustls::ClientConfig;
use tokio::sync::mpsc;
use webhookd_events::EventPattern;

use crate::listen_forward::{ClientError, Forwarder, LiveEvent, Outcome};
use crate::listen_tls::Trust;
use crate::listen_ws::{Session, SessionError};

/// Events received and not yet forwarded.
const QUEUE: usize = 1024;
const MIN_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);

#[derive(Args)]
pub(crate) struct ListenArgs {
    /// The daemon's base URL, e.g. http://127.0.0.1:8080 or
    /// https://webhooks.example.com
    #[arg(long, value_name = "URL")]
    api: String,
    /// An API token (whk_...); you get the events its user may see
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WEBHOOKD_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// Where to POST each event. Any URL is accepted, private addresses
    /// included: the events go wherever you point this
    #[arg(long, value_name = "URL")]
    forward_to: String,
    /// Only these events: a name, `entity.*` or `*`; repeat it or separate
    /// with commas (default: every event)
    #[arg(long = "events", value_name = "PATTERN", value_delimiter = ',')]
    events: Vec<String>,
    /// Signing secret (default: a new whsec_... secret, printed at start)
    #[arg(long, value_name = "SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// PEM file of certificate authorities to trust besides the built-in
    /// ones, for an https:// --api or --forward-to signed by a private CA
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    /// Bad arguments; nothing was connected.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Runs until Ctrl-C (`Ok`) or an error that trying again cannot fix.
pub(crate) async fn run(args: ListenArgs) -> Result<(), ListenError> {
    let ws_url = ws_url(&args.api)?;
    check_forward_url(&args.forward_to)?;
    let types = patterns(&args.events)?;
    let secret = match args.secret {
        Some(secret) if secret.is_empty() => {
            return Err(ListenError::Usage("--secret must not be empty".into()))
        }
        Some(secret) => secret,
        None => webhookd_signing::generate_secret(),
    };
    let trust = match &args.ca_file {
        Some(path) => Trust::from_pem_file(path).map_err(ListenError::Usage)?,
        None => Trust::default(),
    };
    let tls = trust.client_config().map_err(ListenError::Usage)?;
    let forwarder = Forwarder::new(&args.forward_to, &secret, &trust)?;
    println!("Ready! Your webhook signing secret is {secret}");
    println!(
        "Forwarding {} to {} (Ctrl-C to stop)",
        if types.is_empty() {
            "every event".to_owned()
        } else {
            types.join(", ")
        },
        args.forward_to
    );
    let (queue, received) = mpsc::channel(QUEUE);
    let forwarding = tokio::spawn(forward_all(received, forwarder));
    let outcome = tokio::select! {
        outcome = listen(&ws_url, &args.token, &types, &tls, queue) => outcome,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    forwarding.abort();
    outcome.map_err(ListenError::from)
}

/// Subscribes, and subscribes again whenever the connection goes away.
async fn listen(
    ws_url: &str,
    token: &str,
    types: &[String],
    tls: &Arc<ClientConfig>,
    queue: mpsc::Sender<LiveEvent>,
) -> Result<(), SessionError> {
    let mut pause = MIN_PAUSE;
    let mut ever_connected = false;
    loop {
        let lost = match Session::open(ws_url, token, types, tls).await {
            Ok(mut session) => {
                let opened = Instant::now();
                if ever_connected {
                    eprintln!("Reconnected to {ws_url}");
                } else {
                    eprintln!("Connected to {ws_url}");
                }
                ever_connected = true;
                let ended = pump(&mut session, &queue).await;
                // A session that ends at once (the daemon's broker is away)
                // keeps the backoff growing; one that lasted starts it over.
                if opened.elapsed() >= MAX_PAUSE {
                    pause = MIN_PAUSE;
                }
                if ended.is_none() {
                    // The forwarding side is gone: nothing left to do.
                    session.close().await;
                    return Ok(());
                }
                ended
            }
            Err(error) => Some(error),
        };
        if let Some(error) = lost {
            if error.is_fatal() {
                return Err(error);
            }
            eprintln!(
                "Connection lost ({error}); reconnecting in {:.1}s",
                pause.as_secs_f64()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Moves events from the session to the queue; `None` when the queue is closed.
async fn pump(session: &mut Session, queue: &mpsc::Sender<LiveEvent>) -> Option<SessionError> {
    loop {
        match session.next_event().await {
            Ok(event) => queue.send(event).await.ok()?,
            Err(error) => return Some(error),
        }
    }
}

async fn forward_all(mut received: mpsc::Receiver<LiveEvent>, forwarder: Forwarder) {
    while let Some(event) = received.recv().await {
        let outcome = forwarder.forward(&event).await;
        println!("{}", line(&event, &outcome, chrono::Utc::now()));
    }
}

/// `2026-02-20 13:20:00  task.created  <event id>  -> 200  (12 ms)`.
fn line(event: &LiveEvent, outcome: &Outcome, at: chrono::DateTime<chrono::Utc>) -> String {
    let answer = match &outcome.answer {
        Ok(status) => status.to_string(),
        Err(error) => format!("error: {error}"),
    };
    format!(
        "{}  {}  {}  -> {answer}  ({} ms)",
        at.format("%Y-%m-%d %H:%M:%S"),
        event.event,
        event.id,
        outcome.latency.as_millis()
    )
}

/// `http://host:port[/prefix]` to `ws://host:port[/prefix]/graphql`, and
/// `https://` to `wss://`.
fn ws_url(api: &str) -> Result<String, ListenError> {
    let api = api.trim().trim_end_matches('/');
    let (scheme, rest) = if let Some(rest) = api
        .strip_prefix("http://")
        .or_else(|| api.strip_prefix("ws://"))
    {
        ("ws", rest)
    } else if let Some(rest) = api
        .strip_prefix("https://")
        .or_else(|| api.strip_prefix("wss://"))
    {
        ("wss", rest)
    } else {
        return Err(ListenError::Usage(format!(
            "--api must be the daemon's http:// or https:// base URL, e.g. http://127.0.0.1:8080, not {api:?}"
        )));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ListenError::Usage(format!("--api {api} has no host")));
    }
    Ok(format!("{scheme}://{rest}/graphql"))
}

fn check_forward_url(url: &str) -> Result<(), ListenError> {
    let has_scheme = url.starts_with("http://") || url.starts_with("https://");
    if !has_scheme || reqwest::Url::parse(url).is_err() {
        return Err(ListenError::Usage(format!(
            "--forward-to must be an http:// or https:// URL, e.g. http://localhost:3000/webhooks, not {url:?}"
        )));
    }
    Ok(())
}

/// Checked here so a typo fails at once rather than at every reconnect.
fn patterns(events: &[String]) -> Result<Vec<String>, ListenError> {
    events
        .iter()
        .map(|text| {
            EventPattern::parse(text)
                .map(|p| p.as_str().to_owned())
                .map_err(|e| ListenError::Usage(format!("--events {text:?}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_becomes_the_graphql_websocket() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/graphql"
        );
        assert_eq!(
            ws_url("http://h:1/webhookd").unwrap(),
            "ws://h:1/webhookd/graphql"
        );
        assert_eq!(
            ws_url("https://webhooks.example.com/").unwrap(),
            "wss://webhooks.example.com/graphql"
        );
        assert!(ws_url("https://").is_err());
        assert!(ws_url("127.0.0.1:8080")
            .unwrap_err()
            .to_string()
            .contains("--api"));
        assert!(ws_url("http://").is_err());
    }

    #[test]
    fn patterns_are_checked_before_connecting() {
        let ok = patterns(&["task.*".into(), "deal.won".into()]).unwrap();
        assert_eq!(ok, ["task.*", "deal.won"]);
        let error = patterns(&["task.creatd".into()]).unwrap_err().to_string();
        assert!(error.contains("--events \"task.creatd\""), "{error}");
    }

    #[test]
    fn forward_urls_need_an_http_scheme() {
        assert!(check_forward_url("http://localhost:3000/hooks").is_ok());
        assert!(check_forward_url("localhost:3000").is_err());
        assert!(check_forward_url("ftp://x").is_err());
    }

    #[test]
    fn a_line_shows_the_status_or_the_error_and_the_latency() {
        let event: LiveEvent = serde_json::from_str(
            r#"{"id":"0193a1f2-0000-7000-8000-000000000001","event":"deal.won","timestamp":1,"data":{}}"#,
        )
        .unwrap();
        let at = chrono::DateTime::from_timestamp(1_708_435_200, 0).unwrap();
        let ok = Outcome {
            answer: Ok(500),
            latency: Duration::from_millis(12),
        };
        assert_eq!(
            line(&event, &ok, at),
            "2024-02-20 13:20:00  deal.won  0193a1f2-0000-7000-8000-000000000001  -> 500  (12 ms)"
        );
        let failed = Outcome {
            answer: Err("Connection refused (os error 111)".into()),
            latency: Duration::from_millis(1),
        };
        assert!(line(&event, &failed, at)
            .ends_with("-> error: Connection refused (os error 111)  (1 ms)"));
    }
}
