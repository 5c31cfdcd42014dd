//! A tiny CIDR block (`192.0.2.0/24`, `2001:db8::/32`) for trunk `sources`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix length.
///
/// A bare address parses as a single-host block (`/32` or `/128`). Host bits
/// set in the text (`192.0.2.7/24`) are cleared, so that block is `192.0.2.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not an IP address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not an IP address or CIDR")]
pub struct CidrParseError;

impl Cidr {
    /// The block of `addr` with `prefix` leading bits; `None` if the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let network = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_u32(prefix)))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_u128(prefix)))
            }
            _ => return None,
        };
        Some(Self { network, prefix })
    }

    /// The single-host block of `addr`.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            network: addr,
            prefix,
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies in this block. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`) is compared as the IPv4 address it carries.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask_u32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask_u128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None => s.parse().map(Self::host).map_err(|_| CidrParseError),
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| CidrParseError)?;
                // Digits only: u8::from_str would also take "+8".
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(CidrParseError);
                }
                let prefix: u8 = prefix.parse().map_err(|_| CidrParseError)?;
                Self::new(addr, prefix).ok_or(CidrParseError)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn bare_address_is_a_single_host() {
        let c: Cidr = "127.0.0.1".parse().expect("parses");
        assert_eq!(c.to_string(), "127.0.0.1/32");
        assert!(c.contains(ip("127.0.0.1")));
        assert!(!c.contains(ip("127.0.0.2")));
        let c: Cidr = "::1".parse().expect("parses");
        assert_eq!(c.prefix(), 128);
        assert!(c.contains(ip("::1")));
    }

    #[test]
    fn ipv4_block_contains_its_range_only() {
        let c: Cidr = "192.0.2.0/24".parse().expect("parses");
        assert!(c.contains(ip("192.0.2.0")));
        assert!(c.contains(ip("192.0.2.255")));
        assert!(!c.contains(ip("192.0.3.0")));
        assert!(!c.contains(ip("2001:db8::1")));
        assert!(c.contains(ip("::ffff:192.0.2.9")));
    }

    #[test]
    fn ipv6_block_contains_its_range_only() {
        let c: Cidr = "2001:db8::/32".parse().expect("parses");
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("192.0.2.1")));
    }

    #[test]
    fn zero_prefix_matches_the_whole_family() {
        let c: Cidr = "0.0.0.0/0".parse().expect("parses");
        assert!(c.contains(ip("203.0.113.5")));
        assert!(!c.contains(ip("::2")));
        let c: Cidr = "::/0".parse().expect("parses");
        assert!(c.contains(ip("2001:db8::5")));
    }

    #[test]
    fn host_bits_are_cleared() {
        let c: Cidr = "192.0.2.77/24".parse().expect("parses");
        assert_eq!(c.network(), ip("192.0.2.0"));
        assert_eq!(c.to_string(), "192.0.2.0/24");
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        for bad in [
            "",
            "300.1.1.1",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "host.example",
            "10.0.0.0/ 8",
            "/8",
        ] {
            assert_eq!(bad.parse::<Cidr>(), Err(CidrParseError), "{bad:?}");
        }
    }
}
