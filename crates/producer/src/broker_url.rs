//! The broker URL, validated once and never displayed with its password.

use std::fmt;
use std::str::FromStr;

use lapin::uri::AMQPUri;

/// The largest frame asked of the broker unless the URL sets `frame_max`.
/// lapin keeps 32 frames of buffer each way per connection, zero-filled, so
/// RabbitMQ's default of 128 KiB costs 8 MiB of memory per connection; 16 KiB
/// costs 1 MiB. Events are a few KiB; a larger message just takes more frames.
pub(crate) const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// What replaces the password wherever a URL is shown.
const MASK: &str = "***";

/// An `amqp://` or `amqps://` URL. `Display` and `Debug` mask the password, so
/// the URL can go into error messages and logs as is.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    uri: AMQPUri,
    redacted: String,
}

/// A URL lapin cannot use. The message masks the password too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid broker URL {url}: {reason}")]
pub struct InvalidBrokerUrl {
    url: String,
    reason: String,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<Self, InvalidBrokerUrl> {
        let redacted = redact(url);
        let mut uri = AMQPUri::from_str(url).map_err(|reason| InvalidBrokerUrl {
            // Some parser messages quote the whole input, password included.
            reason: reason.replace(url, &redacted),
            url: redacted.clone(),
        })?;
        uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
        Ok(BrokerUrl { uri, redacted })
    }

    /// The URL as lapin connects to it (`Connection::connect_uri`).
    pub fn uri(&self) -> &AMQPUri {
        &self.uri
    }
}

impl FromStr for BrokerUrl {
    type Err = InvalidBrokerUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        BrokerUrl::parse(url)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BrokerUrl").field(&self.redacted).finish()
    }
}

/// Masks the password of `scheme://user:password@host/...`, keeping the rest
/// as written. Works on text that does not parse, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{MASK}@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_masked_and_everything_else_kept() {
        assert_eq!(
            redact("amqp://guest:s3cret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("amqps://u:p@ss:w@rd@host/vh?heartbeat=10"),
            "amqps://u:***@host/vh?heartbeat=10"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
        assert_eq!(redact("amqp://user@host"), "amqp://user@host");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn a_parsed_url_never_shows_its_password() {
        let url = BrokerUrl::parse("amqp://guest:s3cret@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(url.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.uri().authority.userinfo.password, "s3cret");
        assert_eq!(url.uri().vhost, "/");
    }

    #[test]
    fn frames_are_small_unless_the_url_says_otherwise() {
        let url = BrokerUrl::parse("amqp://127.0.0.1:5672/%2f").unwrap();
        assert_eq!(url.uri().query.frame_max, Some(DEFAULT_FRAME_MAX));
        let url = BrokerUrl::parse("amqp://127.0.0.1:5672/%2f?frame_max=131072").unwrap();
        assert_eq!(url.uri().query.frame_max, Some(131_072));
    }

    #[test]
    fn an_invalid_url_is_an_error_that_hides_the_password() {
        let err = BrokerUrl::parse("http://guest:s3cret@host/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("http://guest:***@host/"), "{err}");
        let err = BrokerUrl::parse("amqp://guest:s3cret@host:notaport/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
