//! Locating SIP servers (RFC 3263 §4): the transport and the ordered
//! list of addresses to try for a `sip:`/`sips:` URI's host, by NAPTR, SRV
//! and A/AAAA, with hickory-resolver.
//!
//! - An IP address is the one target (port from the URI or the default).
//! - A host name with a port: its A/AAAA addresses, in the order given.
//! - Without a port: the URI's `transport` picks the SRV name
//!   (`_sip._udp`, `_sip._tcp`, `_sips._tcp`); without one, NAPTR picks it
//!   (the lowest order, then preference, of the services Tandem speaks:
//!   `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`; only the last for `sips:`), and
//!   without NAPTR the SRV names are tried in that order. SRV targets go by
//!   priority, and by weight at random within a priority (RFC 2782); each
//!   target's addresses follow. No SRV: A/AAAA on the default port.
//!
//! The caller tries the targets in order: a `<Dial>` branch moves to the
//! next on a timeout, a transport failure or a 503 before any provisional
//! response (RFC 3263 §4.3); trunk registrations and keep-alives use the
//! first.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use tandem_transport::{Peer, Transport};

/// Most targets one name yields (a zone cannot make a branch try forever).
pub(crate) const MAX_TARGETS: usize = 8;

/// What to look up: a URI's host, and what the URI says of port and transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Name {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// The URI's port, if it has one.
    pub port: Option<u16>,
    /// The URI's `transport` parameter, if it has one.
    pub transport: Option<Transport>,
    /// A `sips:` URI (TLS only).
    pub secure: bool,
}

impl Name {
    /// What a `sip:`/`sips:` URI asks to look up (`None`: no host).
    pub(crate) fn from_uri(uri: &str) -> Option<Name> {
        let (host, port) = tandem_sip::header::uri_host_port(uri)?;
        let secure = uri
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("sips:"));
        let transport = match tandem_sip::header::uri_param(uri, "transport").flatten() {
            Some(t) if t.eq_ignore_ascii_case("tls") => Some(Transport::Tls),
            Some(t) if t.eq_ignore_ascii_case("tcp") && !secure => Some(Transport::Tcp),
            Some(t) if t.eq_ignore_ascii_case("udp") && !secure => Some(Transport::Udp),
            _ => None,
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Some(Name {
            host,
            port,
            transport,
            secure,
        })
    }

    /// The transport when neither NAPTR nor SRV says otherwise.
    pub(crate) fn default_transport(&self) -> Transport {
        match (self.transport, self.secure) {
            (Some(t), _) => t,
            (None, true) => Transport::Tls,
            (None, false) => Transport::Udp,
        }
    }

    /// The default port of a transport (RFC 3261 §19.1.2).
    pub(crate) fn default_port(t: Transport) -> u16 {
        if t == Transport::Tls { 5061 } else { 5060 }
    }

    /// The one target of an IP literal, without any lookup.
    pub(crate) fn literal(&self) -> Option<Peer> {
        let ip: IpAddr = self.host.parse().ok()?;
        let transport = self.default_transport();
        Some(Peer {
            transport,
            addr: SocketAddr::new(ip, self.port.unwrap_or(Self::default_port(transport))),
        })
    }
}

/// The SRV names of the transports Tandem speaks, in its preference order.
fn srv_name(t: Transport, host: &str) -> String {
    match t {
        Transport::Udp => format!("_sip._udp.{host}."),
        Transport::Tcp => format!("_sip._tcp.{host}."),
        Transport::Tls => format!("_sips._tcp.{host}."),
    }
}

/// The resolver Tandem looks SIP servers up with.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers),
    /// or the system's (`/etc/resolv.conf`) when none are given.
    pub(crate) fn new(servers: &[SocketAddr]) -> Self {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let provider = TokioConnectionProvider::default();
        let inner = if servers.is_empty() {
            match TokioResolver::builder(provider.clone()) {
                Ok(b) => b.with_options(opts).build(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the system's DNS configuration: using the defaults");
                    TokioResolver::builder_with_config(ResolverConfig::default(), provider)
                        .with_options(opts)
                        .build()
                }
            }
        } else {
            let mut config = ResolverConfig::new();
            for &addr in servers {
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, provider)
                .with_options(opts)
                .build()
        };
        Self { inner }
    }

    /// The targets for `name`, in the order to try them (empty: none found).
    pub(crate) async fn resolve(&self, name: &Name) -> Vec<Peer> {
        if let Some(p) = name.literal() {
            return vec![p];
        }
        let transport = name.default_transport();
        if let Some(port) = name.port {
            return self.addresses(&name.host, port, transport).await;
        }
        // Which SRV name(s): the URI's transport, else NAPTR's choice, else
        // each transport Tandem speaks.
        let srv_names: Vec<(String, Transport)> = match name.transport {
            Some(t) => vec![(srv_name(t, &name.host), t)],
            None => match self.naptr(&name.host, name.secure).await {
                Some(choice) => vec![choice],
                None if name.secure => vec![(srv_name(Transport::Tls, &name.host), Transport::Tls)],
                None => [Transport::Udp, Transport::Tcp, Transport::Tls]
                    .into_iter()
                    .map(|t| (srv_name(t, &name.host), t))
                    .collect(),
            },
        };
        for (srv, t) in srv_names {
            let targets = self.srv(&srv, t).await;
            if !targets.is_empty() {
                return targets;
            }
        }
        self.addresses(&name.host, Name::default_port(transport), transport)
            .await
    }

    /// NAPTR's SRV name and transport for `host` (RFC 3263 §4.1).
    async fn naptr(&self, host: &str, secure: bool) -> Option<(String, Transport)> {
        let lookup = self
            .inner
            .lookup(format!("{host}."), RecordType::NAPTR)
            .await
            .ok()?;
        let mut usable: Vec<(u16, u16, String, Transport)> = lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) => {
                    if !n.flags().eq_ignore_ascii_case(b"s") {
                        return None;
                    }
                    let service = std::str::from_utf8(n.services()).ok()?.to_ascii_uppercase();
                    let t = match service.as_str() {
                        "SIP+D2U" if !secure => Transport::Udp,
                        "SIP+D2T" if !secure => Transport::Tcp,
                        "SIPS+D2T" => Transport::Tls,
                        _ => return None,
                    };
                    Some((n.order(), n.preference(), n.replacement().to_string(), t))
                }
                _ => None,
            })
            .collect();
        usable.sort_by_key(|(order, pref, _, _)| (*order, *pref));
        usable.into_iter().next().map(|(_, _, srv, t)| (srv, t))
    }

    /// SRV targets of `srv`, ordered by priority and weight, each with its
    /// addresses.
    async fn srv(&self, srv: &str, t: Transport) -> Vec<Peer> {
        let Ok(lookup) = self.inner.srv_lookup(srv).await else {
            return Vec::new();
        };
        let records: Vec<(u16, u16, u16, String)> = lookup
            .iter()
            .filter(|r| r.target().to_string() != ".")
            .map(|r| (r.priority(), r.weight(), r.port(), r.target().to_string()))
            .collect();
        let mut out = Vec::new();
        let ordered = order_srv(records, &mut rand::thread_rng());
        for (_, port, target) in ordered {
            out.extend(self.addresses(&target, port, t).await);
            if out.len() >= MAX_TARGETS {
                break;
            }
        }
        out.truncate(MAX_TARGETS);
        out
    }

    async fn addresses(&self, host: &str, port: u16, t: Transport) -> Vec<Peer> {
        let name = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        match self.inner.lookup_ip(name).await {
            Ok(ips) => ips
                .iter()
                .take(MAX_TARGETS)
                .map(|ip| Peer {
                    transport: t,
                    addr: SocketAddr::new(ip, port),
                })
                .collect(),
            Err(e) => {
                tracing::debug!(host, error = %e, "no address");
                Vec::new()
            }
        }
    }
}

/// SRV records `(priority, weight, port, target)` in the order to try
/// them: by priority, and within one priority by RFC 2782's weighted
/// random selection. Returns `(priority, port, target)`.
fn order_srv(
    mut records: Vec<(u16, u16, u16, String)>,
    rng: &mut impl rand::Rng,
) -> Vec<(u16, u16, String)> {
    records.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let prio = records[0].0;
        let same = records.iter().take_while(|r| r.0 == prio).count();
        let mut group: Vec<_> = records.drain(..same).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut n = rng.gen_range(0..=total);
                group
                    .iter()
                    .position(|r| {
                        let w = u32::from(r.1);
                        if n <= w && w > 0 {
                            true
                        } else {
                            n = n.saturating_sub(w);
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            let (p, _, port, target) = group.remove(pick);
            out.push((p, port, target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn srv_records_go_by_priority_then_weight() {
        let recs = vec![
            (20, 0, 5062, "c.".to_owned()),
            (10, 0, 5060, "a.".to_owned()),
            (10, 100, 5061, "b.".to_owned()),
        ];
        // Within priority 10, b (weight 100) comes first nearly always;
        // c (priority 20) is always last.
        let mut first_b = 0;
        for seed in 0..200 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let order = order_srv(recs.clone(), &mut rng);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2].2, "c.");
            if order[0].2 == "b." {
                first_b += 1;
            }
        }
        assert!(first_b >= 195, "{first_b}");
        // All weights zero: every record still comes out once.
        let zero = vec![(1, 0, 1, "x.".to_owned()), (1, 0, 2, "y.".to_owned())];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(order_srv(zero, &mut rng).len(), 2);
    }

    #[test]
    fn literals_and_defaults() {
        let n = |host: &str, port, transport, secure| Name {
            host: host.into(),
            port,
            transport,
            secure,
        };
        assert_eq!(
            n("192.0.2.1", None, None, true).literal(),
            Some(Peer {
                transport: Transport::Tls,
                addr: "192.0.2.1:5061".parse().unwrap()
            })
        );
        assert_eq!(
            n("2001:db8::1", Some(5070), Some(Transport::Tcp), false).literal(),
            Some(Peer {
                transport: Transport::Tcp,
                addr: "[2001:db8::1]:5070".parse().unwrap()
            })
        );
        assert_eq!(n("carrier.example", None, None, false).literal(), None);
    }
}
