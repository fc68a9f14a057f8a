//! The client's IP address behind reverse proxies.
//!
//! The TCP peer is the client, unless it is one of the configured trusted proxies. Then the
//! forwarding headers are read — `Forwarded` (RFC 7239, its `for=` parameters) when the request
//! has one, else `X-Forwarded-For` — and walked from the right (the hop the peer itself added)
//! to the left, past every trusted hop: the first untrusted address is the client. A hop that
//! is not an address (`unknown`, an obfuscated `_name`, garbage) ends the walk at the last
//! trusted address seen, which is then taken as the client: nothing left of it can be
//! believed. Everything a client writes into these headers sits left of the first untrusted
//! hop, so it is never taken; from an untrusted peer the headers are not read at all.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, from dual-stack listeners) are taken as the
//! IPv4 address they carry, so one client has one address.

use std::net::{IpAddr, Ipv6Addr};

use gateway_types::net::IpNet;

/// Most hops examined; a longer chain ends the walk where it stands.
const MAX_HOPS: usize = 32;

/// The trusted proxies (CIDR ranges).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses ranges (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`).
    ///
    /// # Errors
    /// The index and problem of the first range that does not parse.
    pub fn parse<S: AsRef<str>>(ranges: &[S]) -> Result<Self, (usize, String)> {
        let nets = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| IpNet::parse(r.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether no proxy is trusted (the peer is always the client).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client's address: `peer` unless it is trusted, else the walk described in the
    /// module docs over the `Forwarded` header lines (`forwarded`, in order) or, when there
    /// are none, the `X-Forwarded-For` lines (`x_forwarded_for`, in order).
    #[must_use]
    pub fn client_ip<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for line in forwarded {
            hops.extend(forwarded_for(line));
        }
        if hops.is_empty() {
            for line in x_forwarded_for {
                hops.extend(line.split(',').map(|h| parse_node(h.trim())));
            }
        }
        let mut client = peer;
        for hop in hops.into_iter().rev().take(MAX_HOPS) {
            let Some(ip) = hop else { return Some(client) };
            client = ip;
            if !self.contains(ip) {
                return Some(ip);
            }
        }
        Some(client)
    }
}

/// The `for=` node of each element of one `Forwarded` line (`None` for an element without one
/// or with a node that is not an address).
fn forwarded_for(line: &str) -> Vec<Option<IpAddr>> {
    split_outside_quotes(line, ',')
        .into_iter()
        .filter(|element| !element.trim().is_empty())
        .map(|element| {
            split_outside_quotes(element, ';').into_iter().find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| unquote(value.trim()))
            })
        })
        .map(|node| node.and_then(|n| parse_node(&n)))
        .collect()
}

/// Splits at `sep` except inside double quotes (with `\` escapes).
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, ch) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
        } else if ch == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + ch.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for ch in inner.chars() {
                if escaped || ch != '\\' {
                    out.push(ch);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:5678`. Anything else is `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok
            .then(|| {
                addr.parse::<Ipv6Addr>()
                    .ok()
                    .map(|a| IpAddr::V6(a).to_canonical())
            })
            .flatten();
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (addr, port) = node.rsplit_once(':')?;
    if !valid_port(port) {
        return None;
    }
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(ranges).unwrap()
    }

    fn resolve(t: &TrustedProxies, peer: &str, fwd: &[&str], xff: &[&str]) -> IpAddr {
        t.client_ip(Some(ip(peer)), fwd.iter().copied(), xff.iter().copied())
            .unwrap()
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(&none, "203.0.113.7", &[], &["1.1.1.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(&none, "203.0.113.7", &["for=1.1.1.1"], &[]),
            ip("203.0.113.7")
        );
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(&lb, "198.51.100.2", &[], &["10.1.1.1, 1.1.1.1"]),
            ip("198.51.100.2"),
            "a client posing as a proxy is still the client"
        );
        assert_eq!(lb.client_ip(None, [], []), None);
    }

    #[test]
    fn trusted_hops_are_walked_right_to_left() {
        let t = proxies(&["10.0.0.0/8", "192.168.0.1"]);
        assert_eq!(resolve(&t, "10.0.0.5", &[], &["203.0.113.9"]), ip("203.0.113.9"));
        // The client forged the leftmost entries; the first untrusted from the right wins.
        assert_eq!(
            resolve(
                &t,
                "10.0.0.5",
                &[],
                &["6.6.6.6, 10.9.9.9, 203.0.113.9, 192.168.0.1"]
            ),
            ip("203.0.113.9")
        );
        // Several header lines form one list, in order.
        assert_eq!(
            resolve(&t, "10.0.0.5", &[], &["6.6.6.6, 203.0.113.9", "10.2.2.2"]),
            ip("203.0.113.9")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            resolve(&t, "10.0.0.5", &[], &["10.3.3.3, 10.4.4.4"]),
            ip("10.3.3.3")
        );
        // No header: the proxy itself.
        assert_eq!(resolve(&t, "10.0.0.5", &[], &[]), ip("10.0.0.5"));
        // Garbage stops the walk at the last trusted address.
        assert_eq!(
            resolve(&t, "10.0.0.5", &[], &["6.6.6.6, nonsense, 10.7.7.7"]),
            ip("10.7.7.7")
        );
        assert_eq!(resolve(&t, "10.0.0.5", &[], &["6.6.6.6, "]), ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_header_wins_and_is_parsed_per_rfc_7239() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(
                &t,
                "10.0.0.5",
                &[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.1.1.1;by=10.0.0.5"#],
                &["198.51.100.1"]
            ),
            ip("2001:db8:cafe::17"),
            "Forwarded is read, X-Forwarded-For ignored"
        );
        assert_eq!(
            resolve(&t, "10.0.0.5", &["for=unknown", "for=10.1.1.1"], &[]),
            ip("10.1.1.1"),
            "an unknown hop ends the walk at the last trusted one"
        );
        assert_eq!(
            resolve(&t, "10.0.0.5", &[r#"for="_hidden", for=198.51.100.3:80"#], &[]),
            ip("198.51.100.3")
        );
        assert_eq!(
            resolve(&t, "10.0.0.5", &[r#"for="1.1.1.1, 2.2.2.2";by=x"#], &[]),
            ip("10.0.0.5"),
            "a comma inside quotes is not a separator, and the node is not an address"
        );
        assert_eq!(
            resolve(&t, "10.0.0.5", &["proto=https;by=10.0.0.5"], &[]),
            ip("10.0.0.5"),
            "an element without for= names nobody"
        );
    }

    #[test]
    fn ipv4_mapped_and_ports() {
        let t = proxies(&["127.0.0.1"]);
        assert_eq!(
            resolve(&t, "::ffff:127.0.0.1", &[], &["203.0.113.9:5050"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(&TrustedProxies::default(), "::ffff:203.0.113.9", &[], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(&t, "127.0.0.1", &[], &["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
        assert_eq!(resolve(&t, "127.0.0.1", &[], &["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(
            resolve(&t, "127.0.0.1", &[], &["1.2.3.4:99999x"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn long_chains_are_cut() {
        let t = proxies(&["10.0.0.0/8"]);
        let chain = vec!["10.0.0.1"; 100].join(", ");
        let line = format!("6.6.6.6, {chain}");
        assert_eq!(resolve(&t, "10.0.0.5", &[], &[&line]), ip("10.0.0.1"));
    }
}
