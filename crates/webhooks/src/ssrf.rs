//! The SSRF guard, pure: [`validate_url`] decides whether a URL may be a webhook target at all
//! (syntax), and [`check_addresses`] whether the addresses its host resolved to may be
//! connected to. Resolution itself is I/O and happens behind the `Resolver` port; the guard
//! runs at creation, at every URL change, and again **before every delivery** (DNS changes),
//! and the sender then connects only to the addresses that passed (no second lookup).
//!
//! URL rules: `http` or `https`; no user info (`user:pass@`); a host (a DNS name of
//! letters, digits and hyphens, a dotted-quad IPv4 address, or a bracketed IPv6 address without
//! a zone); a port from 1 to 65535 (any port: the address check is what keeps targets public);
//! no fragment; printable ASCII only (no spaces, no backslash), at most 2048 characters. A host
//! whose last label is numeric (`2130706433`, `0x7f.1`, `127.1`) is read as IPv4 by browsers
//! and by the `url` crate that HTTP clients use, so it must then be a canonical dotted quad,
//! or it is refused as ambiguous: the guard and the client never disagree on the target.
//!
//! Address rules (every address must pass; one refused address refuses the target):
//! refused unless the operator allows private targets (`ATLAS_WEBHOOKS_ALLOW_PRIVATE`):
//! loopback (127/8, ::1), private (10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10,
//! 64:ff9b:1::/48), shared address space (100.64/10, carrier-grade NAT). Refused **always**,
//! whatever the operator allows: link-local (169.254/16, fe80::/10) and cloud metadata
//! addresses (`fd00:ec2::254`, AWS's IPv6 instance metadata; `100.100.100.200`, Alibaba
//! Cloud's), where instance credentials live; and, since none can be the peer of an HTTP
//! connection, unspecified (0.0.0.0, ::), broadcast, multicast (224/4, ff00::/8),
//! documentation (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20) and
//! reserved ranges (0/8, 192.0.0/24, 192.88.99/24, 198.18/15, 240/4, 100::/64, 2001::/23,
//! IPv4-compatible ::/96, and all IPv6 outside 2000::/3). IPv6 forms that embed an IPv4
//! address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the
//! IPv4 address inside.
//!
//! A refusal says what kind of address the host resolved to, never the address itself: the
//! message reaches the client (and the delivery log), and must not map the internal network.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

/// The longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL cannot be a webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("the URL may only hold printable ASCII characters (percent-encode the rest), and no backslash")]
    InvalidCharacter,
    #[error("the URL must start with `http://` or `https://`")]
    Scheme,
    #[error("the URL must not carry user information (`user:password@`)")]
    UserInfo,
    #[error("the URL has no host")]
    MissingHost,
    #[error("the URL's host is not a valid DNS name, IPv4 or IPv6 address")]
    InvalidHost,
    #[error("the URL's host is numeric but not a dotted-quad IPv4 address (such as `203.0.113.7`)")]
    AmbiguousIpv4,
    #[error("an IPv6 zone (`%eth0`) is not allowed in a webhook URL")]
    ZoneId,
    #[error("the URL's port must be a number from 1 to 65535")]
    InvalidPort,
    #[error("the URL must not have a fragment (`#…`): it is never sent")]
    Fragment,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port used when the URL names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A target's host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal address: checked without resolution.
    Ip(IpAddr),
    /// A DNS name, lower case, without a trailing dot: resolved through the `Resolver` port.
    Domain(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Domain(name) => f.write_str(name),
        }
    }
}

/// A URL that passed [`validate_url`], normalised: lower-case scheme and host, no default
/// port, a path that starts with `/`. Displays (and serializes) as the normalised URL, which
/// is what is stored and what the sender must request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetUrl {
    scheme: Scheme,
    host: Host,
    port: u16,
    path_and_query: String,
}

impl TargetUrl {
    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host to resolve (or the literal address).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port to connect to (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, starting with `/`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path_and_query)
    }
}

impl std::str::FromStr for TargetUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate_url(s)
    }
}

impl Serialize for TargetUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TargetUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        validate_url(&s).map_err(serde::de::Error::custom)
    }
}

/// Checks and normalises a webhook target URL (see the module documentation for the rules).
///
/// # Errors
/// The first rule the URL breaks, as a [`UrlError`].
pub fn validate_url(input: &str) -> Result<TargetUrl, UrlError> {
    let input = input.trim();
    if input.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    if !input.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(UrlError::InvalidCharacter);
    }
    let (scheme, rest) = input.split_once("://").ok_or(UrlError::Scheme)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(UrlError::Scheme),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.contains('#') {
        return Err(UrlError::Fragment);
    }
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => scheme.default_port(),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(UrlError::InvalidPort),
            Ok(port) => port,
        },
        Some(_) => return Err(UrlError::InvalidPort),
    };
    let path_and_query = if tail.starts_with('/') { tail.to_owned() } else { format!("/{tail}") };
    Ok(TargetUrl { scheme, host, port, path_and_query })
}

fn split_host_port(authority: &str) -> Result<(Host, Option<&str>), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or(UrlError::InvalidHost)?;
        if inside.contains('%') {
            return Err(UrlError::ZoneId);
        }
        let ip: Ipv6Addr = inside.parse().map_err(|_| UrlError::InvalidHost)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err(UrlError::InvalidHost);
    }
    Ok((parse_host(host)?, port))
}

fn parse_host(host: &str) -> Result<Host, UrlError> {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if host.len() > 253 {
        return Err(UrlError::InvalidHost);
    }
    let labels: Vec<&str> = host.split('.').collect();
    let last = labels.last().copied().unwrap_or_default();
    // WHATWG's "ends in a number": such a host is an IPv4 address to URL parsers.
    let numeric = !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"));
    if numeric {
        return canonical_ipv4(&labels).map(|ip| Host::Ip(IpAddr::V4(ip))).ok_or(UrlError::AmbiguousIpv4);
    }
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !labels.iter().all(valid_label) {
        return Err(UrlError::InvalidHost);
    }
    Ok(Host::Domain(host.to_owned()))
}

fn canonical_ipv4(labels: &[&str]) -> Option<Ipv4Addr> {
    if labels.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, label) in octets.iter_mut().zip(labels) {
        let canonical = !label.is_empty()
            && label.len() <= 3
            && label.bytes().all(|b| b.is_ascii_digit())
            && (label.len() == 1 || !label.starts_with('0'));
        if !canonical {
            return None;
        }
        *octet = label.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

/// Why an address may not be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    Loopback,
    Private,
    LinkLocal,
    /// A cloud provider's instance metadata service outside link-local space.
    Metadata,
    /// 100.64/10, carrier-grade NAT.
    SharedAddressSpace,
    Unspecified,
    Broadcast,
    Multicast,
    Documentation,
    Reserved,
}

impl RefusalReason {
    /// Whether the operator's `allow_private` lifts this refusal (addresses of a private
    /// network: loopback, private, shared). Link-local and metadata addresses are never
    /// lifted (instance credentials live there); the others are never HTTP peers.
    pub const fn is_private_network(self) -> bool {
        matches!(self, RefusalReason::Loopback | RefusalReason::Private | RefusalReason::SharedAddressSpace)
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Loopback => "loopback",
            RefusalReason::Private => "private",
            RefusalReason::LinkLocal => "link_local",
            RefusalReason::Metadata => "metadata",
            RefusalReason::SharedAddressSpace => "shared_address_space",
            RefusalReason::Unspecified => "unspecified",
            RefusalReason::Broadcast => "broadcast",
            RefusalReason::Multicast => "multicast",
            RefusalReason::Documentation => "documentation",
            RefusalReason::Reserved => "reserved",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a target's addresses were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The host resolved to no address at all.
    #[error("the target's host resolved to no address")]
    NoAddresses,
    /// One of the addresses is not a public unicast address. The message names the kind of
    /// address only: `address` is for the operator's logs, never for the client.
    #[error("the target's host resolves to a {reason} address; webhooks are only delivered to public addresses")]
    Address { address: IpAddr, reason: RefusalReason },
}

/// What kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<RefusalReason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<RefusalReason> {
    use RefusalReason::*;
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_broadcast() => Broadcast,
        (0, _, _) => Reserved,
        (127, _, _) => Loopback,
        (10, _, _) => Private,
        (172, 16..=31, _) => Private,
        (192, 168, _) => Private,
        (169, 254, _) => LinkLocal,
        (100, 100, 100) if ip.octets()[3] == 200 => Metadata,
        (100, 64..=127, _) => SharedAddressSpace,
        (192, 0, 0) | (192, 88, 99) => Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Reserved,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    };
    Some(reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<RefusalReason> {
    use RefusalReason::*;
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let reason = match s {
        // AWS's IPv6 instance metadata service (inside fc00::/7, but never a private target).
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => Metadata,
        // IPv4-compatible (deprecated): ::a.b.c.d
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        // NAT64 well-known prefix: judged by the IPv4 address it reaches.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Private,
        // 6to4: judged by the IPv4 address inside.
        [0x2002, hi, lo, ..] => return classify_v4(embedded(hi, lo)),
        [0x100, 0, 0, 0, ..] => Reserved,
        [0x2001, 0x0db8, ..] => Documentation,
        [0x3fff, second, ..] if second < 0x1000 => Documentation,
        [0x2001, second, ..] if second < 0x200 => Reserved,
        [first, ..] if first & 0xfe00 == 0xfc00 => Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Private,
        [first, ..] if first & 0xff00 == 0xff00 => Multicast,
        [first, ..] if first & 0xe000 != 0x2000 => Reserved,
        _ => return None,
    };
    Some(reason)
}

/// Whether a target whose host resolved to `addresses` may be connected to: every address
/// must be public, except that `allow_private` lets private-network addresses through (see
/// [`RefusalReason::is_private_network`]).
///
/// # Errors
/// `NoAddresses` for an empty list; otherwise the first refused address and why.
pub fn check_addresses(addresses: &[IpAddr], allow_private: bool) -> Result<(), Refusal> {
    if addresses.is_empty() {
        return Err(Refusal::NoAddresses);
    }
    for &address in addresses {
        if let Some(reason) = classify(address) {
            if !(allow_private && reason.is_private_network()) {
                return Err(Refusal::Address { address, reason });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn http_and_https_urls_are_normalised() {
        for (input, normalised) in [
            ("https://hooks.example.com/atlas", "https://hooks.example.com/atlas"),
            ("HTTPS://Hooks.Example.COM./a?b=1", "https://hooks.example.com/a?b=1"),
            ("http://example.com", "http://example.com/"),
            ("http://example.com?x=1", "http://example.com/?x=1"),
            ("https://example.com:443/x", "https://example.com/x"),
            ("https://example.com:8443/x", "https://example.com:8443/x"),
            ("http://203.0.113.7:8080/hook", "http://203.0.113.7:8080/hook"),
            ("http://[2606:4700::1111]/hook", "http://[2606:4700::1111]/hook"),
            ("https://a-b.example.com/%7Euser", "https://a-b.example.com/%7Euser"),
        ] {
            let url = validate_url(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.to_string(), normalised, "{input}");
            assert_eq!(validate_url(&url.to_string()).unwrap(), url, "normalising is idempotent");
        }
        let url = validate_url("https://example.com:8443/x?y").unwrap();
        assert_eq!((url.scheme(), url.port(), url.path_and_query()), (Scheme::Https, 8443, "/x?y"));
        assert_eq!(url.host(), &Host::Domain("example.com".into()));
    }

    #[test]
    fn urls_that_cannot_be_targets_are_refused_with_the_rule_they_break() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for (input, error) in [
            ("ftp://example.com/", UrlError::Scheme),
            ("example.com/hook", UrlError::Scheme),
            ("javascript://alert(1)", UrlError::Scheme),
            ("https://user:pw@example.com/", UrlError::UserInfo),
            ("https://@example.com/", UrlError::UserInfo),
            ("https:///path", UrlError::MissingHost),
            ("https://:443/", UrlError::MissingHost),
            ("https://exa mple.com/", UrlError::InvalidCharacter),
            ("https://example.com\\@evil.com/", UrlError::InvalidCharacter),
            ("https://exämple.com/", UrlError::InvalidCharacter),
            ("https://ex_ample.com/", UrlError::InvalidHost),
            ("https://-example.com/", UrlError::InvalidHost),
            ("https://example..com/", UrlError::InvalidHost),
            ("https://exa%6Dple.com/", UrlError::InvalidHost),
            ("https://[::1/", UrlError::InvalidHost),
            ("https://[fe80::1%25eth0]/", UrlError::ZoneId),
            ("https://example.com:0/", UrlError::InvalidPort),
            ("https://example.com:65536/", UrlError::InvalidPort),
            ("https://example.com:/", UrlError::InvalidPort),
            ("https://example.com:80a/", UrlError::InvalidPort),
            ("https://example.com/#top", UrlError::Fragment),
            (long.as_str(), UrlError::TooLong),
        ] {
            assert_eq!(validate_url(input), Err(error), "{input}");
        }
    }

    #[test]
    fn numeric_hosts_must_be_canonical_dotted_quads() {
        for ambiguous in [
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://1.2.3.4.5/",
            "http://256.1.1.1/",
            "http://example.0x10/",
        ] {
            assert_eq!(validate_url(ambiguous), Err(UrlError::AmbiguousIpv4), "{ambiguous}");
        }
        assert_eq!(validate_url("http://127.0.0.1/").unwrap().host(), &Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(validate_url("http://api.v2.example.com/").unwrap().host(), &Host::Domain("api.v2.example.com".into()));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), None, "{ip}");
            assert_eq!(check_addresses(&[ip], false), Ok(()));
        }
    }

    #[test]
    fn non_public_addresses_are_classified() {
        use RefusalReason::*;
        for (ip, reason) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fec0::1", Private),
            ("169.254.169.254", LinkLocal),
            ("fd00:ec2::254", Metadata),
            ("100.100.100.200", Metadata),
            ("::ffff:100.100.100.200", Metadata),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Broadcast),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("0.1.2.3", Reserved),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("240.0.0.1", Reserved),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("::7f00:1", Reserved),
            ("4000::1", Reserved),
            // IPv6 forms embedding a refused IPv4 address are judged by it.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:100.64.0.1", SharedAddressSpace),
            ("::ffff:0.0.0.0", Unspecified),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::1", Private),
            ("2002:7f00:0001::1", Loopback),
            ("2002:c0a8:0101::1", Private),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), Some(reason), "{ip}");
            assert_eq!(check_addresses(&[ip], false), Err(Refusal::Address { address: ip, reason }), "{ip}");
        }
    }

    #[test]
    fn allowing_private_targets_lifts_only_private_network_refusals() {
        for ip in ["127.0.0.1", "::1", "10.0.0.1", "192.168.0.10", "fd00::1", "fd00:ec2::253", "100.64.0.1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(check_addresses(&[ip], true), Ok(()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "224.0.0.1",
            "ff02::1",
            "192.0.2.1",
            "240.0.0.1",
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fe80::a9fe:a9fe",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_addresses(&[ip], true).is_err(), "{ip}");
        }
    }

    #[test]
    fn one_refused_address_refuses_the_target_and_no_address_refuses_it_too() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(check_addresses(&[public, private], false), Err(Refusal::Address { address: private, reason: RefusalReason::Private }));
        assert_eq!(check_addresses(&[], false), Err(Refusal::NoAddresses));
        assert_eq!(check_addresses(&[], true), Err(Refusal::NoAddresses));
    }

    #[test]
    fn a_refusal_never_names_the_address() {
        for ip in ["10.0.0.5", "169.254.169.254", "fd00:ec2::254", "127.0.0.1", "::1", "fe80::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let refusal = check_addresses(&[ip], false).unwrap_err();
            let message = refusal.to_string();
            assert!(!message.contains(&ip.to_string()), "{message}");
            let reason = classify(ip).unwrap();
            assert!(message.contains(reason.as_str()), "the message names the kind of address: {message}");
        }
    }

    proptest! {
        /// Validation never panics, and whatever passes normalises to itself.
        #[test]
        fn validation_never_panics_and_normalises_idempotently(s in "(https?://)?[a-zA-Z0-9:@\\[\\]%./?#_-]{0,60}") {
            if let Ok(url) = validate_url(&s) {
                prop_assert_eq!(validate_url(&url.to_string()).unwrap(), url);
            }
        }

        /// An IPv4-mapped IPv6 address is judged exactly as the IPv4 address it maps.
        #[test]
        fn mapped_addresses_are_judged_as_their_ipv4(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), classify(IpAddr::V4(v4)));
        }
    }
}
