//! Which addresses webhooks may be delivered to (SSRF protection).
//!
//! The check runs on the addresses a host name actually resolves to, inside
//! the HTTP client's resolver, so the address checked is the address connected
//! to: no window for DNS rebinding between a check and the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address may not be a webhook target, or `None` when it may.
pub(crate) fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified (0.0.0.0)",
        (0, _, _) => "in 0.0.0.0/8 (this network)",
        (127, _, _) => "loopback",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local or cloud metadata (169.254.0.0/16)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    // An IPv4 address in IPv6 clothing is judged as the IPv4 address it reaches.
    if let Some(v4) = embedded_v4(ip) {
        return v4_reason(v4);
    }
    let s = ip.segments();
    Some(match s {
        // Teredo tunnels to an IPv4 host given (obfuscated) in the address.
        [0x2001, 0, ..] => "Teredo (2001::/32)",
        [0x64, 0xff9b, 1, ..] => "NAT64 local use (64:ff9b:1::/48)",
        // SIIT's IPv4-translated form, reached through a local translator.
        [0, 0, 0, 0, 0xffff, 0, _, _] => "IPv4-translated (::ffff:0:0:0/96)",
        _ => return v6_prefix_reason(s[0]),
    })
}

fn v6_prefix_reason(first: u16) -> Option<&'static str> {
    Some(match first {
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast",
        _ => return None,
    })
}

/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The refusal of a target, with a message fit for `webhook_logs.error_message`.
/// It never names the address a name resolved to, nor its range: the test
/// button would otherwise resolve internal names for anyone who can create
/// a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused target {host}: resolves to a private address; set delivery.allow_private_targets to allow it")]
pub struct TargetRefused {
    pub(crate) host: String,
}

/// Checks a URL whose host is an IP literal (the resolver never sees those).
/// `url` normalises decimal, octal and hex IPv4 forms to a plain address.
pub fn check_literal_host(url: &reqwest::Url, allow_private: bool) -> Result<(), TargetRefused> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match forbidden_reason(ip) {
        Some(_) => Err(TargetRefused {
            host: ip.to_string(),
        }),
        None => Ok(()),
    }
}

/// Which ports webhooks may be delivered to (`delivery.allowed_ports`): by
/// default 80, 443 and every port from 1024 (not SMTP, SSH, databases'
/// well-known ports...); a configured list replaces that rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortPolicy {
    /// Leaked once at start-up, so the policy is `Copy` like the rest of
    /// the API's settings.
    listed: Option<&'static [u16]>,
    /// No list, and private targets allowed (local development and tests,
    /// whose receivers listen on any port): every port.
    any: bool,
}

/// A target port the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused target port {port}: {}", if *.listed { "not in delivery.allowed_ports" } else { "only 80, 443 and ports from 1024 are allowed (delivery.allowed_ports)" })]
pub struct PortRefused {
    port: u16,
    listed: bool,
}

impl PortPolicy {
    /// The configured list; empty keeps the default rule, or allows every
    /// port when `allow_private` (`delivery.allow_private_targets`) is set.
    pub fn new(ports: &[u16], allow_private: bool) -> Self {
        PortPolicy {
            listed: (!ports.is_empty()).then(|| &*Box::leak(ports.to_vec().into_boxed_slice())),
            any: ports.is_empty() && allow_private,
        }
    }

    pub fn allows(self, port: u16) -> bool {
        match self.listed {
            Some(list) => list.contains(&port),
            None => self.any || port == 80 || port == 443 || port >= 1024,
        }
    }

    /// Checks `url`'s port (its scheme's default when none is written).
    pub fn check(self, url: &reqwest::Url) -> Result<(), PortRefused> {
        let Some(port) = url.port_or_known_default() else {
            return Ok(());
        };
        if self.allows(port) {
            Ok(())
        } else {
            Err(PortRefused {
                port,
                listed: self.listed.is_some(),
            })
        }
    }
}

/// Keeps only the addresses a webhook may reach; an error when none is left.
pub(crate) fn filter_addresses(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, TargetRefused> {
    let mut allowed = Vec::new();
    let mut refused = None;
    for addr in addrs {
        match forbidden_reason(addr.ip()) {
            None => allowed.push(addr),
            Some(_) => {
                refused.get_or_insert(TargetRefused {
                    host: host.to_owned(),
                });
            }
        }
    }
    match (allowed.is_empty(), refused) {
        (true, Some(refusal)) => Err(refusal),
        _ => Ok(allowed),
    }
}

/// The HTTP client's resolver: system DNS, then [`filter_addresses`].
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = filter_addresses(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_forbidden() {
        for addr in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2002:7f00:1::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::808:808",
            "::ffff:0:808:808",
            "::ffff:0:7f00:1",
        ] {
            assert!(
                forbidden_reason(ip(addr)).is_some(),
                "{addr} must be forbidden"
            );
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "93.184.215.14",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "11.0.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
            "64:ff9b::808:808",
            // Next to the new prefixes, outside them.
            "2001:1::1",
            "2001:db9::1",
            "64:ff9b:2::808:808",
            "::ffff:1:808:808",
        ] {
            assert_eq!(forbidden_reason(ip(addr)), None, "{addr} must be allowed");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_in_every_spelling() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1:8443/hook",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            let err = check_literal_host(&parsed, false).expect_err(url);
            assert!(err.to_string().contains("allow_private_targets"), "{err}");
            assert!(check_literal_host(&parsed, true).is_ok());
        }
        let public = reqwest::Url::parse("https://93.184.215.14/").unwrap();
        assert!(check_literal_host(&public, false).is_ok());
        let named = reqwest::Url::parse("https://hooks.example.com/").unwrap();
        assert!(
            check_literal_host(&named, false).is_ok(),
            "names are checked when resolved"
        );
    }

    #[test]
    fn a_name_resolving_only_to_private_addresses_is_refused() {
        let addrs = [
            SocketAddr::new(ip("10.1.1.1"), 0),
            SocketAddr::new(ip("::1"), 0),
        ];
        let err = filter_addresses("rebind.example", addrs).unwrap_err();
        assert_eq!(err.host, "rebind.example");
        assert_eq!(
            err.to_string(),
            "refused target rebind.example: resolves to a private address; set delivery.allow_private_targets to allow it"
        );
        // Neither the address nor its range: the message must not answer
        // "what does this internal name resolve to".
        for leak in ["10.1.1.1", "10.0.0.0", "::1", "loopback"] {
            assert!(!err.to_string().contains(leak), "{err}");
        }
    }

    #[test]
    fn a_name_resolving_to_mixed_addresses_keeps_only_public_ones() {
        let addrs = [
            SocketAddr::new(ip("127.0.0.1"), 443),
            SocketAddr::new(ip("93.184.215.14"), 443),
            SocketAddr::new(ip("169.254.169.254"), 443),
        ];
        let kept = filter_addresses("mixed.example", addrs).unwrap();
        assert_eq!(kept, vec![SocketAddr::new(ip("93.184.215.14"), 443)]);
        assert!(filter_addresses("empty.example", []).unwrap().is_empty());
    }

    #[test]
    fn ports_80_443_and_from_1024_are_allowed_by_default() {
        let policy = PortPolicy::default();
        for port in [80, 443, 1024, 8080, 65535] {
            assert!(policy.allows(port), "{port}");
        }
        for port in [1, 22, 25, 81, 442, 444, 1023] {
            assert!(!policy.allows(port), "{port}");
        }
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(policy.check(&url("https://hooks.example.com/x")).is_ok());
        assert!(policy.check(&url("http://hooks.example.com/x")).is_ok());
        let refused = policy
            .check(&url("http://hooks.example.com:25/x"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "refused target port 25: only 80, 443 and ports from 1024 are allowed (delivery.allowed_ports)"
        );
    }

    #[test]
    fn a_listed_set_of_ports_replaces_the_default_rule() {
        let policy = PortPolicy::new(&[443, 8443], true);
        assert!(policy.allows(443) && policy.allows(8443));
        assert!(!policy.allows(80) && !policy.allows(8080));
        let url = reqwest::Url::parse("http://hooks.example.com/x").unwrap();
        assert_eq!(
            policy.check(&url).unwrap_err().to_string(),
            "refused target port 80: not in delivery.allowed_ports"
        );
        assert_eq!(PortPolicy::new(&[], false), PortPolicy::default());
        // Development and tests: no list and private targets allowed.
        assert!(PortPolicy::new(&[], true).allows(9));
    }
}
