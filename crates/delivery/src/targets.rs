//! Which delivery targets may be reached: the guard against server-side
//! request forgery.
//!
//! Targets are URLs that API clients register (Embassy subscription
//! endpoints, Docplanner PUSH URLs, later Solo webhooks). Without a guard a
//! client could make this server POST to `http://169.254.169.254/` (cloud
//! metadata), to another service on `127.0.0.1`, or to the private network,
//! and learn from the answer (a handshake's 201 or 422) whether it answered.
//!
//! The rule: a target's host is resolved, and every address must be public.
//! Refused are loopback, private (RFC 1918), shared (carrier-grade NAT),
//! link-local, unique-local, site-local, unspecified, multicast, broadcast
//! and reserved addresses, also when wrapped in an IPv6 address that carries
//! an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`). A host name is refused when any of
//! its addresses is.
//!
//! The check runs when a target is registered ([`TargetPolicy::check_url`])
//! and again at every send: [`GuardedResolver`] is reqwest's DNS resolver, so
//! the addresses a connection goes to are exactly the ones just checked (a
//! second DNS answer cannot switch the target), and IP literals, which
//! reqwest does not resolve, are checked before the request
//! ([`TargetPolicy::check_literal`]).
//!
//! The operator opts out with `--delivery-allow-private` (on by default only
//! under `--test-clock`, where integrators run receivers on their own
//! machine), or exempts named hosts with `--delivery-allow-hosts`.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a registration waits for DNS before accepting the target
/// unresolved (it is checked again at every send).
const REGISTRATION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which targets may be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow_private: bool,
    /// Host names (lowercase, without a trailing dot) and IP literals exempt
    /// from the address check.
    allow_hosts: Vec<String>,
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The host as the target names it.
    pub host: String,
    /// The address that is not public.
    pub address: IpAddr,
    /// What kind of address it is (`loopback`, `private`, ...).
    pub kind: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.parse::<IpAddr>().is_ok_and(|ip| ip == self.address) {
            write!(f, "{} is a {} address", self.address, self.kind)?;
        } else {
            write!(f, "`{}` resolves to {}, a {} address", self.host, self.address, self.kind)?;
        }
        f.write_str("; delivery targets must be public (the operator can allow it with --delivery-allow-private or --delivery-allow-hosts)")
    }
}

impl std::error::Error for Refused {}

/// Normalizes a host for comparison: lowercase, no brackets, no trailing dot.
fn normal_host(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

impl TargetPolicy {
    /// A policy: `allow_private` turns the address check off; `allow_hosts`
    /// are host names or IP literals exempt from it.
    pub fn new<S: AsRef<str>>(allow_private: bool, allow_hosts: impl IntoIterator<Item = S>) -> Self {
        let allow_hosts = allow_hosts.into_iter().map(|h| normal_host(h.as_ref())).filter(|h| !h.is_empty()).collect();
        TargetPolicy { allow_private, allow_hosts }
    }

    /// Every target allowed (local sandboxes, tests).
    pub fn allow_all() -> Self {
        TargetPolicy { allow_private: true, allow_hosts: Vec::new() }
    }

    /// Whether internal addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Whether `host` is exempt from the address check.
    pub fn host_is_allowed(&self, host: &str) -> bool {
        if self.allow_private {
            return true;
        }
        let host = normal_host(host);
        self.allow_hosts.contains(&host)
    }

    /// Checks the addresses `host` resolved to: all must be public.
    pub fn check_addresses(&self, host: &str, addresses: &[IpAddr]) -> Result<(), Refused> {
        if self.host_is_allowed(host) {
            return Ok(());
        }
        for &address in addresses {
            if let Some(kind) = internal_kind(address) {
                return Err(Refused { host: host.to_owned(), address, kind });
            }
        }
        Ok(())
    }

    /// Checks a URL whose host is an IP literal (reqwest connects to those
    /// without resolving). Host names pass: the resolver checks them.
    pub fn check_literal(&self, url: &Url) -> Result<(), Refused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check_addresses(&ip.to_string(), &[ip])
    }

    /// Checks a target when it is registered: an IP literal must be public,
    /// and a host name must resolve only to public addresses. A name that
    /// does not resolve (now) is not refused here; its sends fail until it
    /// does, and are checked then.
    pub async fn check_url(&self, url: &str) -> Result<(), Refused> {
        let Ok(parsed) = Url::parse(url) else { return Ok(()) };
        self.check_literal(&parsed)?;
        let Some(url::Host::Domain(host)) = parsed.host() else { return Ok(()) };
        if self.host_is_allowed(host) {
            return Ok(());
        }
        match tokio::time::timeout(REGISTRATION_LOOKUP_TIMEOUT, lookup(host)).await {
            Ok(Ok(addresses)) => self.check_addresses(host, &addresses.iter().map(SocketAddr::ip).collect::<Vec<_>>()),
            _ => Ok(()),
        }
    }
}

/// Resolves `host` (port 0: reqwest puts the URL's port in).
async fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, 0)).await?.collect())
}

/// reqwest's DNS resolver for delivery: resolves, checks every address
/// against the policy, and hands reqwest exactly the checked addresses.
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = lookup(&host).await?;
            policy.check_addresses(&host, &addresses.iter().map(SocketAddr::ip).collect::<Vec<_>>())?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// What kind of internal address `ip` is, or `None` when it is public.
pub fn internal_kind(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => ipv4_kind(v4).map(str::to_owned),
        IpAddr::V6(v6) => ipv6_kind(v6),
    }
}

/// Whether `value` lies in `network/prefix`.
fn in_v4(value: u32, network: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    value & mask == u32::from_be_bytes(network) & mask
}

fn in_v6(value: u128, network: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    value & mask == network & mask
}

/// IPv4 ranges that are not public, most specific first where they nest.
const V4_INTERNAL: [([u8; 4], u32, &str); 11] = [
    ([0, 0, 0, 0], 8, "unspecified"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "reserved"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "reserved"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
];

fn ipv4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_broadcast() {
        return Some("broadcast");
    }
    let value = u32::from(ip);
    V4_INTERNAL.iter().find(|(net, prefix, _)| in_v4(value, *net, *prefix)).map(|(_, _, kind)| *kind)
}

fn ipv6_kind(ip: Ipv6Addr) -> Option<String> {
    let value = u128::from(ip);
    if ip.is_unspecified() {
        return Some("unspecified".into());
    }
    if ip.is_loopback() {
        return Some("loopback".into());
    }
    // IPv6 forms that carry an IPv4 address: judged by that address.
    let embedded = |v4: u32, form: &str| ipv4_kind(Ipv4Addr::from(v4)).map(|k| format!("{k} ({form})"));
    if in_v6(value, 0xffff << 32, 96) {
        return embedded(value as u32, "IPv4-mapped");
    }
    if in_v6(value, 0, 96) {
        return embedded(value as u32, "IPv4-compatible");
    }
    if in_v6(value, 0x0064_ff9b << 96, 96) {
        return embedded(value as u32, "NAT64");
    }
    if in_v6(value, 0x2002 << 112, 16) {
        return embedded((value >> 80) as u32, "6to4");
    }
    const V6_INTERNAL: [(u128, u32, &str); 6] = [
        (0x0064_ff9b_0001 << 80, 48, "private (local-use NAT64)"),
        (0x0100 << 112, 64, "reserved (discard-only)"),
        (0xfc00 << 112, 7, "unique-local"),
        (0xfe80 << 112, 10, "link-local"),
        (0xfec0 << 112, 10, "site-local"),
        (0xff00 << 112, 8, "multicast"),
    ];
    V6_INTERNAL.iter().find(|(net, prefix, _)| in_v6(value, *net, *prefix)).map(|(_, _, kind)| (*kind).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<String> {
        internal_kind(s.parse().unwrap())
    }

    #[test]
    fn internal_ipv4_addresses_are_named() {
        for (ip, k) in [
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
        ] {
            assert_eq!(kind(ip).as_deref(), Some(k), "{ip}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1", "93.184.216.34", "192.0.2.1"] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    #[test]
    fn internal_ipv6_addresses_and_wrapped_ipv4_are_named() {
        for (ip, k) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback (IPv4-mapped)"),
            ("::ffff:169.254.169.254", "link-local (IPv4-mapped)"),
            ("::ffff:10.0.0.1", "private (IPv4-mapped)"),
            ("::127.0.0.1", "loopback (IPv4-compatible)"),
            ("64:ff9b::192.168.0.1", "private (NAT64)"),
            ("2002:7f00:1::", "loopback (6to4)"),
        ] {
            assert_eq!(kind(ip).as_deref(), Some(k), "{ip}");
        }
        for public in ["2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::8.8.8.8"] {
            assert_eq!(kind(public), None, "{public}");
        }
    }

    #[test]
    fn allowed_hosts_and_allow_private_skip_the_check() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let strict = TargetPolicy::new(false, ["Receiver.Internal.", "[fd00::1]"]);
        assert!(strict.check_addresses("localhost", &[loopback]).is_err());
        assert!(strict.check_addresses("receiver.internal", &[loopback]).is_ok(), "names match case-insensitively");
        let literal = Url::parse("http://[fd00::1]:8080/hook").unwrap();
        assert!(strict.check_literal(&literal).is_ok(), "IP literals can be allowed too");
        assert!(TargetPolicy::allow_all().check_addresses("localhost", &[loopback]).is_ok());
    }

    #[test]
    fn a_name_is_refused_when_any_of_its_addresses_is_internal() {
        let strict = TargetPolicy::new(false, Vec::<String>::new());
        let addresses: Vec<IpAddr> = vec!["93.184.216.34".parse().unwrap(), "10.0.0.7".parse().unwrap()];
        let refused = strict.check_addresses("mixed.example", &addresses).unwrap_err();
        assert_eq!(refused.address, addresses[1]);
        assert!(
            refused.to_string().starts_with("`mixed.example` resolves to 10.0.0.7, a private address"),
            "{refused}"
        );
        assert!(strict.check_addresses("public.example", &addresses[..1]).is_ok());
    }

    #[test]
    fn literals_in_every_spelling_are_caught() {
        let strict = TargetPolicy::new(false, Vec::<String>::new());
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
        ] {
            let parsed = Url::parse(url).unwrap();
            assert!(strict.check_literal(&parsed).is_err(), "{url}");
        }
    }
}
