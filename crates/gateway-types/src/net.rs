//! IP ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a single address): policy
//! conditions on the client IP, trusted proxies and rate-limit rules all parse them here.
//!
//! IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry, on both sides: a
//! client seen as `::ffff:10.1.2.3` (a dual-stack listener) is inside `10.0.0.0/8`, and a range
//! written as `::ffff:10.0.0.0/104` is the same as `10.0.0.0/8`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP network: an address with its host bits cleared, and a prefix length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr/prefix` or a bare address (a `/32` or `/128`). Host bits must be zero, so
    /// `10.0.0.1/8` is rejected with a hint rather than silently widened.
    ///
    /// # Errors
    /// A client-readable description of the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IPv4 or IPv6 address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("prefix length {p:?} is not a number"));
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| format!("prefix length {p:?} is not a number"))?;
                if n > max {
                    return Err(format!("prefix length {n} is longer than {max}"));
                }
                n
            }
        };
        let net = Self { addr, prefix }.canonical();
        let cleared = net.network();
        if cleared != net.addr {
            return Err(format!(
                "host bits are set; did you mean {}?",
                Self {
                    addr: cleared,
                    prefix: net.prefix
                }
            ));
        }
        Ok(net)
    }

    /// The prefix length (`/8` → 8); longer is more specific.
    #[must_use]
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    /// A range inside `::ffff:0:0/96` becomes the IPv4 range it denotes.
    fn canonical(self) -> Self {
        match self.addr {
            IpAddr::V6(v6) if self.prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Self {
                    addr: IpAddr::V4(v4),
                    prefix: self.prefix - 96,
                },
                None => self,
            },
            _ => self,
        }
    }

    /// The address with its host bits cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(self.prefix))),
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        IpNet::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ranges() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("10.0.0.0")));
        assert!(n.contains(ip("10.255.255.255")));
        assert!(!n.contains(ip("11.0.0.0")));
        assert!(!n.contains(ip("9.255.255.255")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("192.168.1.7").contains(ip("192.168.1.7")));
        assert!(!net("192.168.1.7").contains(ip("192.168.1.8")));
        assert!(net("192.168.1.6/31").contains(ip("192.168.1.7")));
        assert!(!net("192.168.1.6/31").contains(ip("192.168.1.8")));
        assert_eq!(net("172.16.0.0/12").to_string(), "172.16.0.0/12");
    }

    #[test]
    fn ipv6_ranges_and_families() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8::1")));
        assert!(n.contains(ip("2001:db8:ffff::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")), "families never mix");
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("fe80::/10").contains(ip("febf::1")));
        assert!(!net("fe80::/10").contains(ip("fec0::1")));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        let mapped = net("::ffff:10.0.0.0/104");
        assert_eq!(mapped, net("10.0.0.0/8"));
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn bad_ranges_are_rejected_with_a_hint() {
        assert_eq!(
            IpNet::parse("10.0.0.1/8").unwrap_err(),
            "host bits are set; did you mean 10.0.0.0/8?"
        );
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0/8",
            "10.0.0.0/8/8",
            "fe80::1%eth0",
            "localhost",
            " 10.0.0.0/8",
            "10.0.0.0/0008",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
