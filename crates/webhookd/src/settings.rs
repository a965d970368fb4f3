//! Layered configuration: built-in defaults (`config/default.toml`), an
//! optional file, then `WEBHOOKD__SECTION__KEY` environment variables.
//! Values are validated once at start-up; an error names the key.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use webhookd_admin::api::{ApiConfig, IngestConfig, SecureCookies};
use webhookd_admin::graphql::{EventSource, GraphqlConfig};
use webhookd_admin::serve::ServerLimits;
use webhookd_events::{BreakerPolicy, Jitter, RetryPolicy};
use webhookd_producer::topology::{QueueType, Topology};
use webhookd_producer::BrokerUrl;
pub use webhookd_worker::retention::RetentionSettings;
use webhookd_worker::target_policy::PortPolicy;
use webhookd_worker::tls_clients::{load_extra_ca, DeliveryTls, ExtraCaError};

mod secrets;
pub use secrets::SecretsSettings;
mod limits;

use limits::LimitsSettings;

/// How long `POST /api/v1/events` waits for the broker (connecting and the
/// confirm) before answering 503: long enough for a confirm under load, short
/// enough for a client's own timeout.
const INGEST_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The defaults, compiled in so the binary runs from any directory.
pub(crate) const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// Each consumer holds a broker connection, two database connections and a
/// thread.
const MAX_CONSUMERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    // Shown in the message, not as `source()`, so reporters don't print it twice.
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub broker: BrokerSettings,
    pub(crate) http: HttpSettings,
    pub delivery: DeliverySettings,
    pub(crate) scheduler: SchedulerSettings,
    pub(crate) retention: RetentionSettings,
    pub(crate) shutdown: ShutdownSettings,
    pub(crate) graphql: GraphqlSettings,
    pub log: LogSettings,
    pub secrets: SecretsSettings,
    pub(crate) limits: LimitsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May hold a password: a secret, never printed. May point at a
    /// transaction-mode PgBouncer (docs/OPERATIONS.md, "Behind PgBouncer").
    pub url: SecretString,
    /// Postgres itself, bypassing any pooler: for what needs a real session
    /// (LISTEN, migrations' advisory lock, the retention job). Empty means
    /// `url`. A secret like `url`.
    direct_url: SecretString,
    pub(crate) max_connections: u32,
}

impl DatabaseSettings {
    /// `database.direct_url`, or `database.url` when it is empty.
    pub fn direct_url(&self) -> &SecretString {
        if self.has_direct_url() {
            &self.direct_url
        } else {
            &self.url
        }
    }

    /// Whether `database.direct_url` names a connection of its own (so the
    /// session work needs a pool of its own).
    pub(crate) fn has_direct_url(&self) -> bool {
        !self.direct_url.expose_secret().is_empty()
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !self.has_direct_url() {
            return Ok(());
        }
        // The parser's message is left out: the URL holds a password, and
        // what is wrong with it is clear enough from the key.
        let url = self.direct_url.expose_secret();
        let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !scheme_ok || PgConnectOptions::from_str(url).is_err() {
            return Err(SettingsError::Invalid {
                key: "database.direct_url",
                problem: "must be empty (use database.url) or a postgres:// URL of the \
                          database itself, not of a pooler"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerSettings {
    /// The broker, when `urls` is empty.
    pub url: SecretString,
    /// The nodes of a RabbitMQ cluster, tried in this order; empty: `url`.
    #[serde(default)]
    pub urls: Vec<SecretString>,
    /// `classic` or `quorum` (checked by `validate`).
    #[serde(default = "classic")]
    pub(crate) queue_type: String,
    pub exchange: String,
    pub queue: String,
    pub(crate) prefetch: u16,
    /// Consumers per worker process, each on its own thread (`shards.rs`);
    /// 0 means one consumer on the main runtime.
    pub(crate) consumers: usize,
    pub(crate) max_message_bytes: usize,
}

fn classic() -> String {
    QueueType::Classic.as_str().to_owned()
}

impl BrokerSettings {
    /// The nodes to connect to, in order: `broker.urls` without its empty
    /// entries, else `broker.url`.
    pub fn urls(&self) -> Vec<SecretString> {
        use secrecy::ExposeSecret as _;
        let urls: Vec<SecretString> = self
            .urls
            .iter()
            .map(|url| url.expose_secret().trim())
            .filter(|url| !url.is_empty())
            .map(|url| SecretString::from(url.to_owned()))
            .collect();
        if urls.is_empty() {
            vec![self.url.clone()]
        } else {
            urls
        }
    }

    /// `broker.queue_type`; classic when invalid, which `validate` refuses.
    pub fn queue_type(&self) -> QueueType {
        self.queue_type.parse().unwrap_or_default()
    }

    /// The exchange and queues every part of webhookd declares.
    pub fn topology(&self) -> Topology {
        Topology::new(self.exchange.clone(), self.queue.clone()).with_queue_type(self.queue_type())
    }

    /// The first problem of the broker section, as (key, problem).
    fn invalid_key(&self) -> Option<(&'static str, String)> {
        use secrecy::ExposeSecret as _;
        if let Err(e) = self.queue_type.parse::<QueueType>() {
            return Some(("broker.queue_type", e.to_string()));
        }
        if !self.urls.is_empty() {
            for url in self.urls() {
                // The error masks the URL's password.
                if let Err(e) = BrokerUrl::parse(url.expose_secret()) {
                    return Some(("broker.urls", e.to_string()));
                }
            }
        }
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HttpSettings {
    pub(crate) listen: SocketAddr,
    /// SPEC §15's server limits (`webhookd_admin::serve`).
    pub(crate) header_read_timeout_secs: u64,
    pub(crate) idle_timeout_secs: u64,
    pub(crate) max_connections: usize,
    /// 0: no per-client share.
    pub(crate) max_connections_per_client: usize,
    pub(crate) request_timeout_secs: u64,
    /// Where `/metrics` is served instead of `listen`; empty: on `listen`.
    pub(crate) metrics_listen: String,
    /// `true`, `false` or `"auto"` (`SecureCookies`).
    pub(crate) secure_cookies: SecureCookiesSetting,
    /// Signs the sign-in form's CSRF tokens; empty: random per process.
    pub(crate) login_csrf_key: SecretString,
}

/// A boolean from TOML or a parsed environment variable, or a word.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum SecureCookiesSetting {
    Flag(bool),
    Word(String),
}

impl HttpSettings {
    /// `http.secure_cookies`; `None` when it is none of the three values.
    pub(crate) fn secure_cookies(&self) -> Option<SecureCookies> {
        match &self.secure_cookies {
            SecureCookiesSetting::Flag(true) => Some(SecureCookies::Always),
            SecureCookiesSetting::Flag(false) => Some(SecureCookies::Never),
            SecureCookiesSetting::Word(word) => match word.trim().to_ascii_lowercase().as_str() {
                "true" => Some(SecureCookies::Always),
                "false" => Some(SecureCookies::Never),
                "auto" => Some(SecureCookies::Auto),
                _ => None,
            },
        }
    }

    /// `http.metrics_listen`, `None` when empty; validated at start-up.
    pub(crate) fn metrics_listen(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        match self.metrics_listen.trim() {
            "" => Ok(None),
            addr => addr.parse().map(Some),
        }
    }

    pub(crate) fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeliverySettings {
    pub(crate) timeout_ms: u64,
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff_ms: u64,
    pub(crate) max_backoff_ms: u64,
    pub(crate) jitter: Jitter,
    pub allow_private_targets: bool,
    pub(crate) concurrency: usize,
    pub(crate) per_endpoint_concurrency: usize,
    pub(crate) max_in_flight: usize,
    /// Deliveries of one webhook waiting in memory for a request slot; more
    /// are handed back to Postgres. 0: never wait.
    pub(crate) per_endpoint_queue: usize,
    pub max_response_bytes: usize,
    /// Switch off a webhook whose every attempt has failed for this long; 0: never.
    pub(crate) disable_after_failing_secs: u64,
    /// How long a new event's first attempts may run before its deliveries
    /// are written (`fanout.rs`); 0: written before any attempt.
    pub(crate) first_attempt_window_ms: u64,
    /// A PEM bundle of CA certificates every delivery client (and OAuth2
    /// token request) trusts besides the built-in roots; empty: none.
    pub(crate) extra_ca_file: String,
    /// Clients with a TLS client certificate (`mtls` auth) kept per worker.
    pub(crate) mtls_clients_max: usize,
    /// Consecutive failed attempts that open a webhook's circuit breaker;
    /// 0: never opens.
    pub(crate) breaker_failures: u32,
    /// Wait before an open breaker's first probe.
    pub(crate) breaker_cooldown_secs: u64,
    /// Longest wait between probes (the cooldown doubles per failed probe).
    pub(crate) breaker_max_cooldown_secs: u64,
    /// Ports deliveries may go to; empty: 80, 443 and from 1024.
    pub(crate) allowed_ports: Vec<u16>,
}

impl DeliverySettings {
    /// `delivery.disable_after_failing_secs` as a period; `None` means never.
    pub(crate) fn disable_after_failing(&self) -> Option<Duration> {
        (self.disable_after_failing_secs > 0)
            .then(|| Duration::from_secs(self.disable_after_failing_secs))
    }

    /// The delivery clients' TLS settings, reading `delivery.extra_ca_file`.
    pub fn delivery_tls(&self) -> Result<DeliveryTls, ExtraCaError> {
        let extra_roots = match self.extra_ca_file.trim() {
            "" => Vec::new(),
            path => load_extra_ca(Path::new(path))?,
        };
        Ok(DeliveryTls {
            extra_roots,
            mtls_clients_max: self.mtls_clients_max,
        })
    }

    /// The circuit breaker's policy (`delivery.breaker_*`).
    pub(crate) fn breaker(&self) -> BreakerPolicy {
        BreakerPolicy {
            failures: self.breaker_failures,
            cooldown: Duration::from_secs(self.breaker_cooldown_secs),
            max_cooldown: Duration::from_secs(self.breaker_max_cooldown_secs),
        }
    }

    /// `delivery.first_attempt_window_ms` as a period; `None` means none
    /// (every delivery is written before it is attempted).
    pub(crate) fn first_attempt_window(&self) -> Option<Duration> {
        (self.first_attempt_window_ms > 0)
            .then(|| Duration::from_millis(self.first_attempt_window_ms))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SchedulerSettings {
    pub(crate) poll_interval_ms: u64,
    pub(crate) batch_size: i64,
    pub(crate) lease_margin_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ShutdownSettings {
    pub(crate) grace_period_ms: u64,
}

/// The GraphQL API's limits and live feeds (docs/OPERATIONS.md).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GraphqlSettings {
    pub(crate) max_depth: usize,
    pub(crate) max_complexity: usize,
    pub(crate) max_subscriptions_per_user: usize,
    pub(crate) subscriber_buffer: usize,
    pub(crate) attempts_poll_interval_ms: u64,
    pub(crate) attempts_overlap_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub(crate) format: LogFormat,
    pub(crate) level: String,
}

impl From<config::ConfigError> for SettingsError {
    fn from(e: config::ConfigError) -> Self {
        SettingsError::Load(e)
    }
}

impl Settings {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, Environment::with_prefix("WEBHOOKD"))
    }

    /// As [`Settings::load`] with the environment given as pairs: lets tests
    /// configure a daemon without touching the process environment.
    pub fn load_from_pairs(
        file: Option<&Path>,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let map = pairs.into_iter().collect();
        Self::load_with_env(file, Environment::with_prefix("WEBHOOKD").source(Some(map)))
    }

    fn load_with_env(file: Option<&Path>, env: Environment) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let env = env
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            // `WEBHOOKD__DELIVERY__ALLOWED_PORTS=443,8443`; no other key is
            // split.
            .list_separator(",")
            .with_list_parse_key("delivery.allowed_ports")
            .with_list_parse_key("broker.urls");
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        fn check(ok: bool, key: &'static str, problem: &str) -> Result<(), SettingsError> {
            if ok {
                Ok(())
            } else {
                Err(SettingsError::Invalid {
                    key,
                    problem: problem.to_owned(),
                })
            }
        }
        self.database.validate()?;
        let d = &self.delivery;
        // The consumer and the recorder each hold one connection; the
        // scheduler, lease renewal, retention, metrics and the API share the
        // rest.
        check(
            self.database.max_connections >= 4,
            "database.max_connections",
            "must be at least 4",
        )?;
        check(
            !self.broker.exchange.is_empty(),
            "broker.exchange",
            "must not be empty",
        )?;
        check(
            !self.broker.queue.is_empty(),
            "broker.queue",
            "must not be empty",
        )?;
        check(
            self.broker.prefetch >= 1,
            "broker.prefetch",
            "must be at least 1",
        )?;
        check(
            self.broker.consumers <= MAX_CONSUMERS,
            "broker.consumers",
            "must be at most 64",
        )?;
        check(
            self.broker.max_message_bytes >= 1024,
            "broker.max_message_bytes",
            "must be at least 1024",
        )?;
        if let Some((key, problem)) = self.broker.invalid_key() {
            check(false, key, &problem)?;
        }
        check(
            (1..=600_000).contains(&d.timeout_ms),
            "delivery.timeout_ms",
            "must be between 1 and 600000",
        )?;
        check(
            (1..=100).contains(&d.max_attempts),
            "delivery.max_attempts",
            "must be between 1 and 100",
        )?;
        check(
            d.initial_backoff_ms >= 1,
            "delivery.initial_backoff_ms",
            "must be at least 1",
        )?;
        check(
            d.max_backoff_ms >= d.initial_backoff_ms,
            "delivery.max_backoff_ms",
            "must be at least delivery.initial_backoff_ms",
        )?;
        check(
            d.concurrency >= 1,
            "delivery.concurrency",
            "must be at least 1",
        )?;
        check(
            d.max_in_flight >= 1,
            "delivery.max_in_flight",
            "must be at least 1",
        )?;
        check(
            d.per_endpoint_concurrency >= 1,
            "delivery.per_endpoint_concurrency",
            "must be at least 1",
        )?;
        check(
            d.per_endpoint_queue <= 1_000_000,
            "delivery.per_endpoint_queue",
            "must be at most 1000000",
        )?;
        check(
            d.disable_after_failing_secs <= 31_536_000,
            "delivery.disable_after_failing_secs",
            "must be at most 31536000 (a year); 0 never disables",
        )?;
        check(
            d.first_attempt_window_ms <= 10_000,
            "delivery.first_attempt_window_ms",
            "must be at most 10000 (messages stay unacked meanwhile); 0 writes before attempting",
        )?;
        check(
            (1..=100_000).contains(&d.mtls_clients_max),
            "delivery.mtls_clients_max",
            "must be between 1 and 100000",
        )?;
        if let Err(e) = d.delivery_tls() {
            return Err(SettingsError::Invalid {
                key: "delivery.extra_ca_file",
                problem: e.to_string(),
            });
        }
        check(
            d.breaker_failures <= 1_000_000,
            "delivery.breaker_failures",
            "must be at most 1000000; 0 turns the circuit breaker off",
        )?;
        check(
            (1..=86_400).contains(&d.breaker_cooldown_secs),
            "delivery.breaker_cooldown_secs",
            "must be between 1 and 86400",
        )?;
        check(
            d.breaker_max_cooldown_secs >= d.breaker_cooldown_secs
                && d.breaker_max_cooldown_secs <= 86_400,
            "delivery.breaker_max_cooldown_secs",
            "must be between delivery.breaker_cooldown_secs and 86400",
        )?;
        check(
            !d.allowed_ports.contains(&0),
            "delivery.allowed_ports",
            "ports must be between 1 and 65535",
        )?;
        check(
            d.max_response_bytes <= 16 << 20,
            "delivery.max_response_bytes",
            "must be at most 16 MiB",
        )?;
        check(
            self.scheduler.poll_interval_ms >= 10,
            "scheduler.poll_interval_ms",
            "must be at least 10",
        )?;
        check(
            self.scheduler.batch_size >= 1,
            "scheduler.batch_size",
            "must be at least 1",
        )?;
        check(
            self.retention.logs_days >= 1,
            "retention.logs_days",
            "must be at least 1",
        )?;
        check(
            self.retention.batch_size >= 1,
            "retention.batch_size",
            "must be at least 1",
        )?;
        check(
            self.retention.interval_secs >= 1,
            "retention.interval_secs",
            "must be at least 1",
        )?;
        check(
            (2..=366).contains(&self.retention.partitions_ahead_days),
            "retention.partitions_ahead_days",
            "must be between 2 and 366",
        )?;
        let g = &self.graphql;
        check(
            (2..=64).contains(&g.max_depth),
            "graphql.max_depth",
            "must be between 2 and 64",
        )?;
        check(
            (10..=1_000_000).contains(&g.max_complexity),
            "graphql.max_complexity",
            "must be between 10 and 1000000",
        )?;
        check(
            (1..=10_000).contains(&g.max_subscriptions_per_user),
            "graphql.max_subscriptions_per_user",
            "must be between 1 and 10000",
        )?;
        check(
            (1..=100_000).contains(&g.subscriber_buffer),
            "graphql.subscriber_buffer",
            "must be between 1 and 100000",
        )?;
        check(
            (50..=60_000).contains(&g.attempts_poll_interval_ms),
            "graphql.attempts_poll_interval_ms",
            "must be between 50 and 60000",
        )?;
        check(
            g.attempts_overlap_ms <= 600_000,
            "graphql.attempts_overlap_ms",
            "must be at most 600000 (10 minutes)",
        )?;
        let h = &self.http;
        check(
            (1..=3_600).contains(&h.header_read_timeout_secs),
            "http.header_read_timeout_secs",
            "must be between 1 and 3600",
        )?;
        check(
            (1..=86_400).contains(&h.idle_timeout_secs),
            "http.idle_timeout_secs",
            "must be between 1 and 86400",
        )?;
        check(
            (1..=1_000_000).contains(&h.max_connections),
            "http.max_connections",
            "must be between 1 and 1000000",
        )?;
        check(
            h.max_connections_per_client <= h.max_connections,
            "http.max_connections_per_client",
            "must be 0 (no per-client share) or at most http.max_connections",
        )?;
        check(
            h.metrics_listen().is_ok_and(|addr| addr != Some(h.listen)),
            "http.metrics_listen",
            "must be empty or an address such as 0.0.0.0:9090, other than http.listen",
        )?;
        // A synchronous test delivery waits up to its webhook's timeout
        // (at most 60 s, or delivery.timeout_ms): it must fit.
        check(
            (1..=3_600).contains(&h.request_timeout_secs)
                && h.request_timeout_secs * 1000 > d.timeout_ms,
            "http.request_timeout_secs",
            "must be between 1 and 3600 and longer than delivery.timeout_ms",
        )?;
        check(
            h.secure_cookies().is_some(),
            "http.secure_cookies",
            "must be true, false or \"auto\"",
        )?;
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "must be a tracing filter such as `info` or `webhookd=debug`",
        )?;
        if let Err(e) = self.secrets.keys() {
            return Err(SettingsError::Invalid {
                key: "secrets.encryption_keys",
                problem: e.to_string(),
            });
        }
        if let Some((key, problem)) = self.limits.invalid_key() {
            check(false, key, problem)?;
        }
        Ok(())
    }

    /// What the admin API applies to the webhooks it validates and tests.
    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            allow_private_targets: self.delivery.allow_private_targets,
            default_timeout: Duration::from_millis(self.delivery.timeout_ms),
            retention_days: self.retention.logs_days,
            secure_cookies: self.http.secure_cookies().unwrap_or(SecureCookies::Auto),
            allowed_ports: PortPolicy::new(
                &self.delivery.allowed_ports,
                self.delivery.allow_private_targets,
            ),
            max_webhooks_per_user: self.limits.max_webhooks_per_user,
            max_concurrent_tests_per_user: self.limits.max_concurrent_tests_per_user,
        }
    }

    /// The GraphQL side's settings.
    pub fn graphql_config(&self) -> GraphqlConfig {
        let g = &self.graphql;
        GraphqlConfig {
            max_depth: g.max_depth,
            max_complexity: g.max_complexity,
            max_subscriptions_per_user: g.max_subscriptions_per_user,
            subscriber_buffer: g.subscriber_buffer,
            attempts_poll_interval: Duration::from_millis(g.attempts_poll_interval_ms),
            attempts_overlap: Duration::from_millis(g.attempts_overlap_ms),
        }
    }

    /// What `POST /api/v1/events` publishes to: the same nodes, exchange and
    /// message limit as the workers consume with.
    pub fn ingest_config(&self) -> IngestConfig {
        IngestConfig {
            urls: self.broker.urls(),
            topology: self.broker.topology(),
            max_message_bytes: self.broker.max_message_bytes,
            confirm_timeout: INGEST_CONFIRM_TIMEOUT,
        }
    }

    /// Where the GraphQL event stream taps the events.
    pub fn event_source(&self) -> EventSource {
        EventSource {
            urls: self.broker.urls(),
            topology: self.broker.topology(),
            max_message_bytes: self.broker.max_message_bytes,
        }
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.delivery.max_attempts,
            initial_backoff: Duration::from_millis(self.delivery.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.delivery.max_backoff_ms),
            jitter: self.delivery.jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from_pairs(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_defaults_are_those_of_the_spec() {
        let s = load(&[]).unwrap();
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/webhookd"
        );
        assert_eq!(
            s.broker.url.expose_secret(),
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        assert_eq!(s.broker.exchange, "crm.events");
        assert_eq!(s.broker.queue, "webhookd.events");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.http.header_read_timeout_secs, 10);
        assert_eq!(s.http.idle_timeout_secs, 60);
        assert_eq!(s.http.max_connections, 1024);
        assert_eq!(s.http.max_connections_per_client, 0);
        assert_eq!(s.http.request_timeout_secs, 90);
        assert_eq!(s.http.metrics_listen(), Ok(None));
        assert_eq!(s.http.secure_cookies(), Some(SecureCookies::Auto));
        assert!(s.http.login_csrf_key.expose_secret().is_empty());
        for (value, mode) in [
            ("true", SecureCookies::Always),
            ("false", SecureCookies::Never),
            ("auto", SecureCookies::Auto),
        ] {
            let s = load(&[("WEBHOOKD__HTTP__SECURE_COOKIES", value)]).unwrap();
            assert_eq!(s.api_config().secure_cookies, mode, "{value}");
        }
        assert_eq!(s.delivery.timeout_ms, 10_000);
        assert!(!s.delivery.allow_private_targets);
        assert_eq!(s.retention.logs_days, 30);
        assert_eq!(s.retention.partitions_ahead_days, 7);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.delivery.per_endpoint_queue, 1000);
        assert_eq!(s.delivery.mtls_clients_max, 256);
        assert!(s.delivery.extra_ca_file.is_empty());
        let graphql = s.graphql_config();
        assert_eq!(graphql.max_subscriptions_per_user, 20);
        assert_eq!(graphql.subscriber_buffer, 256);
        assert_eq!(s.delivery.disable_after_failing_secs, 432_000);
        assert_eq!(
            s.delivery.disable_after_failing(),
            Some(Duration::from_secs(5 * 24 * 3600))
        );
    }

    #[test]
    fn zero_disable_after_failing_secs_never_disables() {
        let s = load(&[("WEBHOOKD__DELIVERY__DISABLE_AFTER_FAILING_SECS", "0")]).unwrap();
        assert_eq!(s.delivery.disable_after_failing(), None);
        let s = load(&[("WEBHOOKD__DELIVERY__PER_ENDPOINT_QUEUE", "0")]).unwrap();
        assert_eq!(s.delivery.per_endpoint_queue, 0);
    }

    #[test]
    fn the_circuit_breaker_defaults_and_its_bad_values() {
        assert_eq!(
            load(&[]).unwrap().delivery.breaker(),
            BreakerPolicy::default()
        );
        let off = load(&[("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "0")]).unwrap();
        assert!(!off.delivery.breaker().enabled());
        for (key, value, named) in [
            (
                "WEBHOOKD__DELIVERY__BREAKER_FAILURES",
                "-1",
                "breaker_failures",
            ),
            (
                "WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS",
                "0",
                "delivery.breaker_cooldown_secs",
            ),
            (
                "WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS",
                "1",
                "delivery.breaker_max_cooldown_secs",
            ),
        ] {
            let error = load(&[(key, value)]).unwrap_err().to_string();
            assert!(error.contains(named), "{key}={value}: {error}");
        }
    }

    #[test]
    fn classic_queues_on_broker_url_unless_set_otherwise() {
        let s = load(&[]).unwrap();
        assert_eq!(s.broker.queue_type(), QueueType::Classic);
        assert_eq!(s.broker.topology().queue_type, QueueType::Classic);
        let urls = s.broker.urls();
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].expose_secret(), s.broker.url.expose_secret());

        let s = load(&[
            ("WEBHOOKD__BROKER__QUEUE_TYPE", "quorum"),
            (
                "WEBHOOKD__BROKER__URLS",
                "amqp://u:p1@127.0.0.1:5673/%2f, amqp://u:p2@127.0.0.1:5674/%2f",
            ),
        ])
        .unwrap();
        assert_eq!(s.broker.topology().queue_type, QueueType::Quorum);
        let urls: Vec<String> = s
            .broker
            .urls()
            .iter()
            .map(|u| u.expose_secret().to_owned())
            .collect();
        assert_eq!(
            urls,
            [
                "amqp://u:p1@127.0.0.1:5673/%2f",
                "amqp://u:p2@127.0.0.1:5674/%2f"
            ]
        );
        assert!(!format!("{s:?}").contains("p2@"));

        let s = load(&[("WEBHOOKD__BROKER__URLS", "")]).unwrap();
        assert_eq!(s.broker.urls().len(), 1, "empty: broker.url");
    }

    #[test]
    fn a_bad_queue_type_or_node_url_names_its_key() {
        let error = load(&[("WEBHOOKD__BROKER__QUEUE_TYPE", "stream")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("broker.queue_type"), "{error}");
        assert!(error.contains("classic or quorum"), "{error}");
        let error = load(&[(
            "WEBHOOKD__BROKER__URLS",
            "amqp://127.0.0.1:5673/%2f,http://u:hunter2@127.0.0.1/",
        )])
        .unwrap_err()
        .to_string();
        assert!(error.contains("broker.urls"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn one_consumer_on_its_own_thread_by_default() {
        assert_eq!(load(&[]).unwrap().broker.consumers, 1);
        let s = load(&[("WEBHOOKD__BROKER__CONSUMERS", "3")]).unwrap();
        assert_eq!(s.broker.consumers, 3);
        let s = load(&[("WEBHOOKD__BROKER__CONSUMERS", "0")]).unwrap();
        assert_eq!(
            s.broker.consumers, 0,
            "0 keeps the consumer on the main runtime"
        );
    }

    #[test]
    fn environment_variables_override_the_defaults() {
        let s = load(&[
            ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "2500"),
            ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
            ("WEBHOOKD__BROKER__QUEUE", "other.queue"),
            ("WEBHOOKD__LOG__FORMAT", "json"),
            ("WEBHOOKD__DELIVERY__JITTER", "none"),
        ])
        .unwrap();
        assert_eq!(s.delivery.timeout_ms, 2500);
        assert!(s.delivery.allow_private_targets);
        assert_eq!(s.broker.queue, "other.queue");
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.delivery.jitter, Jitter::None);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let cases = [
            ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "soon", "timeout_ms"),
            ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "0", "delivery.timeout_ms"),
            ("WEBHOOKD__HTTP__LISTEN", "nowhere", "listen"),
            ("WEBHOOKD__LOG__FORMAT", "xml", "format"),
            (
                "WEBHOOKD__DELIVERY__MAX_BACKOFF_MS",
                "1",
                "delivery.max_backoff_ms",
            ),
            (
                "WEBHOOKD__DELIVERY__MAX_ATTEMPTS",
                "0",
                "delivery.max_attempts",
            ),
            (
                "WEBHOOKD__DATABASE__MAX_CONNECTIONS",
                "3",
                "database.max_connections",
            ),
            (
                "WEBHOOKD__RETENTION__PARTITIONS_AHEAD_DAYS",
                "1",
                "retention.partitions_ahead_days",
            ),
            (
                "WEBHOOKD__DELIVERY__DISABLE_AFTER_FAILING_SECS",
                "-1",
                "disable_after_failing_secs",
            ),
            (
                "WEBHOOKD__DELIVERY__DISABLE_AFTER_FAILING_SECS",
                "99999999999",
                "delivery.disable_after_failing_secs",
            ),
            (
                "WEBHOOKD__DELIVERY__PER_ENDPOINT_QUEUE",
                "many",
                "per_endpoint_queue",
            ),
            (
                "WEBHOOKD__DELIVERY__PER_ENDPOINT_QUEUE",
                "2000000",
                "delivery.per_endpoint_queue",
            ),
            (
                "WEBHOOKD__DELIVERY__MTLS_CLIENTS_MAX",
                "0",
                "delivery.mtls_clients_max",
            ),
            (
                "WEBHOOKD__DELIVERY__EXTRA_CA_FILE",
                "/nonexistent/ca.pem",
                "delivery.extra_ca_file",
            ),
            ("WEBHOOKD__BROKER__CONSUMERS", "65", "broker.consumers"),
            ("WEBHOOKD__BROKER__CONSUMERS", "-1", "consumers"),
            (
                "WEBHOOKD__GRAPHQL__MAX_SUBSCRIPTIONS_PER_USER",
                "0",
                "graphql.max_subscriptions_per_user",
            ),
            (
                "WEBHOOKD__GRAPHQL__MAX_SUBSCRIPTIONS_PER_USER",
                "lots",
                "max_subscriptions_per_user",
            ),
            (
                "WEBHOOKD__GRAPHQL__SUBSCRIBER_BUFFER",
                "0",
                "graphql.subscriber_buffer",
            ),
            ("WEBHOOKD__GRAPHQL__MAX_DEPTH", "1", "graphql.max_depth"),
            (
                "WEBHOOKD__GRAPHQL__ATTEMPTS_POLL_INTERVAL_MS",
                "1",
                "graphql.attempts_poll_interval_ms",
            ),
            (
                "WEBHOOKD__HTTP__HEADER_READ_TIMEOUT_SECS",
                "0",
                "http.header_read_timeout_secs",
            ),
            (
                "WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS",
                "0",
                "http.idle_timeout_secs",
            ),
            (
                "WEBHOOKD__HTTP__MAX_CONNECTIONS",
                "0",
                "http.max_connections",
            ),
            (
                "WEBHOOKD__HTTP__MAX_CONNECTIONS_PER_CLIENT",
                "2000",
                "http.max_connections_per_client",
            ),
            (
                "WEBHOOKD__HTTP__METRICS_LISTEN",
                "localhost",
                "http.metrics_listen",
            ),
            (
                "WEBHOOKD__HTTP__METRICS_LISTEN",
                "127.0.0.1:8080",
                "http.metrics_listen",
            ),
            (
                "WEBHOOKD__HTTP__REQUEST_TIMEOUT_SECS",
                "5",
                "http.request_timeout_secs",
            ),
            (
                "WEBHOOKD__HTTP__SECURE_COOKIES",
                "sometimes",
                "http.secure_cookies",
            ),
        ];
        for (key, value, named) in cases {
            let err = load(&[(key, value)]).expect_err(key).to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn encryption_keys_read_from_a_comma_separated_variable_and_never_print() {
        assert!(load(&[]).unwrap().secrets.keys().unwrap().is_empty());
        let k1 = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k2 = "k2:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE=";
        let both = format!("{k2},{k1}");
        let s = load(&[("WEBHOOKD__SECRETS__ENCRYPTION_KEYS", &both)]).unwrap();
        let keys = s.secrets.keys().unwrap();
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(keys.sealing_id(), Some("k2"));
        assert!(!format!("{s:?}").contains("AAECAw"));
        for (value, problem) in [
            ("k1:not-base64!", "not valid base64"),
            ("k1:AAECAwQF", "exactly 32"),
            (&format!("{k1},{k1}") as &str, "listed twice"),
            ("nocolon", "is not `<key id>"),
        ] {
            let error = load(&[("WEBHOOKD__SECRETS__ENCRYPTION_KEYS", value)])
                .expect_err(value)
                .to_string();
            assert!(error.contains("secrets.encryption_keys"), "{error}");
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn secrets_in_urls_never_print() {
        let s = load(&[("WEBHOOKD__DATABASE__URL", "postgres://u:hunter2@db/x")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = load(&[(
            "WEBHOOKD__DATABASE__DIRECT_URL",
            "postgres://u:swordfish@db/x",
        )])
        .unwrap();
        assert!(!format!("{s:?}").contains("swordfish"));
        let error = load(&[("WEBHOOKD__DATABASE__DIRECT_URL", "mysql://u:swordfish@db/x")])
            .unwrap_err()
            .to_string();
        assert!(!error.contains("swordfish"), "{error}");
    }

    #[test]
    fn the_direct_url_defaults_to_the_url_and_is_validated() {
        let s = load(&[("WEBHOOKD__DATABASE__URL", "postgres://bouncer:6432/x")]).unwrap();
        assert!(!s.database.has_direct_url());
        assert_eq!(
            s.database.direct_url().expose_secret(),
            "postgres://bouncer:6432/x"
        );
        let s = load(&[
            ("WEBHOOKD__DATABASE__URL", "postgres://bouncer:6432/x"),
            ("WEBHOOKD__DATABASE__DIRECT_URL", "postgresql://db:5432/x"),
        ])
        .unwrap();
        assert!(s.database.has_direct_url());
        assert_eq!(
            s.database.direct_url().expose_secret(),
            "postgresql://db:5432/x"
        );
        assert_eq!(s.database.url.expose_secret(), "postgres://bouncer:6432/x");
        for bad in ["db:5432/x", "http://db/x", "postgres://db:port/x"] {
            let error = load(&[("WEBHOOKD__DATABASE__DIRECT_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains("database.direct_url"), "{bad}: {error}");
        }
    }
}
