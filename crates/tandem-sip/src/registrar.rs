//! The registrar's bindings store (RFC 3261 §10.3): SIP phones REGISTER to
//! Tandem as `<Client>` identities, and `<Client>joey</Client>` rings every
//! unexpired binding of `joey`.
//!
//! Sans-IO: [`Registrar::handle_register`] takes a parsed REGISTER, the peer
//! it came from and `now`, and returns the response to send in the server
//! transaction; [`Registrar::poll_timeout`] and [`Registrar::expire`] drop
//! bindings whose time is up. No clock, no randomness of its own (tags and
//! nonces come from the injected [`IdGen`]).
//!
//! The steps of §10.3 run in order: Request-URI domain (1), `Require` (2, 420),
//! digest authentication with [`DigestServer`] (3, 401), authorization of the
//! authenticated user for the address-of-record (4, 403), address-of-record
//! (5, 404), the `*` Contact (6), and per-contact updates with the Call-ID and
//! CSeq rules (7, 423 and 500), committed atomically, then the 200 listing
//! every binding (8). RFC 5626 (outbound, `reg-id`, flows) is not
//! implemented; `+sip.instance` is only stored and used to replace a binding.
//!
//! Each binding keeps the [`Peer`] the REGISTER arrived from. Tandem sends
//! requests for that client to this source address over the same transport,
//! not to the Contact host: a phone behind NAT advertises a private address in
//! its Contact, but its REGISTER came from the NAT's public mapping, and that
//! mapping is what reaches it (the same rule RFC 5626 §5.3 formalises as
//! flows).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::auth::{
    Algorithm, Credentials, DigestRequest, DigestServer, DigestServerConfig, Outcome, Rejection,
    Secret,
};
use crate::builder::{IdGen, response_to};
use crate::header::{NameAddr, params, split_host_port, uri_host_port};
use crate::message::{Header, HeadersExt, Method, Request, Response, header_value};
use crate::transaction::Peer;

/// Settings of a [`Registrar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Digest settings; `digest.realm` is the realm of every challenge.
    pub digest: DigestServerConfig,
    /// Domains served (Request-URI host, case-insensitive); empty serves any.
    pub domains: Vec<String>,
    /// Shortest registration accepted, in seconds; shorter ones get 423.
    pub min_expires: u32,
    /// Longest registration granted, in seconds; longer requests are shortened.
    pub max_expires: u32,
    /// Expiry of a contact with neither an `expires` parameter nor an Expires header.
    pub default_expires: u32,
    /// Most bindings of one identity (phones, softphone instances).
    pub max_bindings_per_identity: usize,
    /// Most bindings over all identities.
    pub max_bindings: usize,
}

impl RegistrarConfig {
    /// Defaults: the digest defaults for `realm`, any domain, 60 s to 3600 s
    /// (3600 s when the phone does not say), 10 bindings per identity, 100,000 in all.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            digest: DigestServerConfig::new(realm),
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_identity: 10,
            max_bindings: 100_000,
        }
    }
}

/// One registered contact of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI, without angle brackets or header parameters.
    pub contact: String,
    /// Where the REGISTER came from: requests for this contact go there.
    pub source: Peer,
    /// Call-ID of the REGISTER that created or last refreshed the binding.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// The binding is valid strictly before this instant.
    pub expires: Instant,
    /// The `q` parameter in thousandths (`q=0.5` is 500), if given.
    pub q: Option<u16>,
    /// The `+sip.instance` parameter, unquoted (`<urn:uuid:...>`), if given.
    pub instance: Option<String>,
}

/// Why a REGISTER was refused; [`RegisterError::status`] is the answer sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The request is not a REGISTER (405).
    #[error("method is not REGISTER")]
    NotRegister,
    /// The Request-URI names a domain this registrar does not serve (404, §10.3 step 1).
    #[error("domain {0:?} not served")]
    DomainNotServed(String),
    /// `Require` lists extensions this registrar lacks (420, §10.3 step 2).
    #[error("unsupported extensions: {0}")]
    UnsupportedExtension(String),
    /// The credentials name an unknown user or carry a wrong digest (403).
    /// Both get the same answer so that identities cannot be probed.
    #[error("credentials rejected: {0}")]
    BadCredentials(Rejection),
    /// The authenticated user may not change this address-of-record (403, §10.3 step 4).
    #[error("{authenticated:?} may not register {identity:?}")]
    IdentityMismatch {
        /// Who authenticated.
        authenticated: String,
        /// The identity in To.
        identity: String,
    },
    /// The To URI has no user part, so it names no identity (404, §10.3 step 5).
    #[error("To names no identity")]
    NoIdentity,
    /// A header is missing or unreadable (400).
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// `Contact: *` with other contacts or an Expires other than 0 (400, §10.3 step 6).
    #[error("Contact * needs Expires: 0 and no other contact")]
    WildcardMisuse,
    /// A contact's expiry is under the minimum (423 with Min-Expires, §10.3 step 7).
    #[error("expiry {requested} s is under the minimum {min} s")]
    IntervalTooBrief {
        /// The expiry asked for, in seconds.
        requested: u64,
        /// The minimum, in seconds.
        min: u32,
    },
    /// Same Call-ID as a binding and a CSeq not above its own: a reordered or
    /// replayed REGISTER (500, §10.3 step 7).
    #[error("CSeq {cseq} is not above {stored} for this Call-ID")]
    OutOfOrder {
        /// CSeq of the request.
        cseq: u32,
        /// CSeq stored with the binding.
        stored: u32,
    },
    /// The request alone carries more contacts than an identity may hold (403).
    #[error("more than {0} contacts")]
    TooManyContacts(usize),
    /// The store holds `max_bindings` already (503 with Retry-After).
    #[error("binding store full")]
    StoreFull,
}

impl RegisterError {
    /// The status code answered for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotRegister => 405,
            Self::DomainNotServed(_) | Self::NoIdentity => 404,
            Self::UnsupportedExtension(_) => 420,
            Self::BadCredentials(_) | Self::IdentityMismatch { .. } | Self::TooManyContacts(_) => {
                403
            }
            Self::Malformed(_) | Self::WildcardMisuse => 400,
            Self::IntervalTooBrief { .. } => 423,
            Self::OutOfOrder { .. } => 500,
            Self::StoreFull => 503,
        }
    }
}

/// What [`Registrar::handle_register`] decided, with the response to send.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RegisterOutcome {
    /// 200 OK: the bindings of `identity` were updated (or queried).
    Updated {
        /// The identity (user part of the To URI).
        identity: String,
        /// The 200, listing every current binding with its remaining expiry.
        response: Response,
    },
    /// 401 with one `WWW-Authenticate` per offered algorithm.
    Challenged {
        /// Whether the challenge says `stale=true` (right password, old nonce).
        stale: bool,
        /// The 401.
        response: Response,
    },
    /// The request was refused and no binding changed.
    Rejected {
        /// Why.
        error: RegisterError,
        /// The error response.
        response: Response,
    },
}

impl RegisterOutcome {
    /// The response to send.
    pub fn response(&self) -> &Response {
        match self {
            Self::Updated { response, .. }
            | Self::Challenged { response, .. }
            | Self::Rejected { response, .. } => response,
        }
    }

    /// The response to send, by value.
    pub fn into_response(self) -> Response {
        match self {
            Self::Updated { response, .. }
            | Self::Challenged { response, .. }
            | Self::Rejected { response, .. } => response,
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    id: u64,
    binding: Binding,
}

/// A contact of the request being processed.
struct ContactSpec<'a> {
    uri: &'a str,
    expires: u64,
    q: Option<u16>,
    instance: Option<&'a str>,
}

/// Bindings per identity, with digest authentication (RFC 3261 §10.3).
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    digest: DigestServer,
    ids: IdGen,
    epoch: Instant,
    identities: HashMap<String, Vec<Stored>>,
    /// (expiry, identity, binding id) of every binding, soonest first.
    index: BTreeSet<(Instant, String, u64)>,
    next_id: u64,
}

impl Registrar {
    /// A registrar with `key` as the digest nonce secret (32 random bytes).
    ///
    /// `epoch` is time zero of the nonce timestamps. When `key` survives
    /// restarts, pick an epoch that tracks wall-clock time (the Unix epoch
    /// expressed as an `Instant`) so that old nonces are judged stale; with a
    /// fresh key per run any instant will do.
    pub fn new(config: RegistrarConfig, key: [u8; 32], epoch: Instant, ids: IdGen) -> Self {
        Self {
            digest: DigestServer::new(config.digest.clone(), key),
            config,
            ids,
            epoch,
            identities: HashMap::new(),
            index: BTreeSet::new(),
            next_id: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Number of stored bindings, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no binding is stored.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The unexpired bindings of `identity`, highest `q` first (no `q` counts
    /// as 1.0), then in registration order. Empty for an unregistered identity.
    pub fn contacts(&self, now: Instant, identity: &str) -> Vec<Binding> {
        let mut out: Vec<Binding> = self
            .identities
            .get(identity)
            .into_iter()
            .flatten()
            .filter(|s| s.binding.expires > now)
            .map(|s| s.binding.clone())
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
        out
    }

    /// When the next binding expires: call [`Registrar::expire`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.index.first().map(|(at, _, _)| *at)
    }

    /// Drops every binding whose expiry is at or before `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some((at, identity, id)) = self.index.first().cloned() {
            if at > now {
                break;
            }
            self.index.pop_first();
            if let Some(list) = self.identities.get_mut(&identity) {
                list.retain(|s| s.id != id);
                if list.is_empty() {
                    self.identities.remove(&identity);
                }
            }
            dropped += 1;
        }
        dropped
    }

    /// Processes a REGISTER received from `source` (RFC 3261 §10.3).
    ///
    /// `lookup(user, base_algorithm)` returns the secret of a configured
    /// client, or `None` for an unknown identity. The returned response goes
    /// back in the request's server transaction.
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &Request,
        source: Peer,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> RegisterOutcome {
        match self.process(now, request, source, lookup) {
            Ok(outcome) => outcome,
            Err(error) => self.reject(request, error),
        }
    }

    fn process(
        &mut self,
        now: Instant,
        request: &Request,
        source: Peer,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> Result<RegisterOutcome, RegisterError> {
        if request.method != Method::Register {
            return Err(RegisterError::NotRegister);
        }
        let h = &request.headers;
        let request_uri = request.uri.to_string();

        // Step 1: the domain.
        if !self.config.domains.is_empty() {
            let host = uri_host_port(&request_uri).map_or("", |(host, _)| host);
            if !self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host))
            {
                return Err(RegisterError::DomainNotServed(host.to_owned()));
            }
        }

        // Step 2: no extension is supported, so any Require tag fails.
        let required: Vec<&str> = h
            .iter()
            .filter(|h| matches!(h, Header::Require(_)))
            .flat_map(|h| header_value(h).split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if !required.is_empty() {
            return Err(RegisterError::UnsupportedExtension(required.join(", ")));
        }

        let to = h
            .value_of(|h| matches!(h, Header::To(_)))
            .and_then(|v| NameAddr::parse(v).ok())
            .ok_or(RegisterError::Malformed("To"))?;
        let identity = uri_user(to.uri);

        // Step 3: authentication.
        let Some(authorization) = self.pick_authorization(request) else {
            return Ok(self.challenge(now, request, false));
        };
        let credentials = match Credentials::parse(authorization) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "malformed REGISTER credentials; challenging again");
                return Ok(self.challenge(now, request, false));
            }
        };
        // The digest covers the Request-URI as the phone wrote it; rsip
        // re-renders some parts (`transport=udp` becomes `UDP`), so an
        // equivalent URI (§19.1.4) in the credentials is taken as written.
        let digest_uri = if uri_matches(&credentials.uri, &request_uri) {
            credentials.uri.as_str()
        } else {
            request_uri.as_str()
        };
        let digest_request = DigestRequest {
            method: "REGISTER",
            uri: digest_uri,
            body: &request.body,
        };
        let since_epoch = now.saturating_duration_since(self.epoch);
        let user = match self.digest.verify_credentials(
            since_epoch,
            &digest_request,
            &credentials,
            lookup,
        ) {
            Outcome::Ok(user) => user,
            // A spent nonce is answered as stale: a phone that lost a race
            // with a guesser on its nonce retries without asking its user.
            Outcome::Stale | Outcome::Invalid(Rejection::SpentNonce) => {
                return Ok(self.challenge(now, request, true));
            }
            Outcome::Invalid(r @ (Rejection::UnknownUser | Rejection::BadResponse)) => {
                return Err(RegisterError::BadCredentials(r));
            }
            Outcome::Invalid(r) => {
                tracing::debug!(reason = %r, "REGISTER credentials not usable; challenging again");
                return Ok(self.challenge(now, request, false));
            }
        };

        // Steps 4 and 5: the authenticated user registers its own identity.
        let Some(identity) = identity else {
            return Err(RegisterError::NoIdentity);
        };
        if identity != user {
            return Err(RegisterError::IdentityMismatch {
                authenticated: user,
                identity: identity.to_owned(),
            });
        }

        let call_id = h.call_id().ok_or(RegisterError::Malformed("Call-ID"))?;
        let (cseq, _) = h.cseq().ok_or(RegisterError::Malformed("CSeq"))?;
        let expires_header = h
            .value_of(|h| matches!(h, Header::Expires(_)))
            .map(|v| parse_delta(v).unwrap_or(u64::from(self.config.default_expires)));
        let contacts: Vec<&str> = h
            .iter()
            .filter(|h| matches!(h, Header::Contact(_)))
            .map(|h| header_value(h).trim())
            .collect();

        let current: Vec<Stored> = self
            .identities
            .get(identity)
            .map(|l| {
                l.iter()
                    .filter(|s| s.binding.expires > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();

        // Step 6: `Contact: *` removes every binding.
        let updated = if contacts.contains(&"*") {
            if contacts.len() != 1 || expires_header != Some(0) {
                return Err(RegisterError::WildcardMisuse);
            }
            for s in &current {
                if s.binding.call_id == call_id && cseq <= s.binding.cseq {
                    return Err(RegisterError::OutOfOrder {
                        cseq,
                        stored: s.binding.cseq,
                    });
                }
            }
            Vec::new()
        } else {
            let specs = contacts
                .iter()
                .map(|c| self.contact_spec(c, expires_header))
                .collect::<Result<Vec<_>, _>>()?;
            self.apply(now, current, &specs, source, call_id, cseq)?
        };

        let before = self.identities.get(identity).map_or(0, Vec::len);
        if updated.len() > before && self.len() - before + updated.len() > self.config.max_bindings
        {
            return Err(RegisterError::StoreFull);
        }
        self.commit(identity, updated);

        let tag = self.ids.tag();
        let mut response = response_to(request, 200, None, Some(&tag));
        for b in self.contacts(now, identity) {
            response
                .headers
                .push(Header::Contact(render_contact(&b, now).into()));
        }
        Ok(RegisterOutcome::Updated {
            identity: identity.to_owned(),
            response,
        })
    }

    /// Step 7: the new binding list of an identity, or the error aborting the request.
    fn apply(
        &mut self,
        now: Instant,
        current: Vec<Stored>,
        specs: &[ContactSpec<'_>],
        source: Peer,
        call_id: &str,
        cseq: u32,
    ) -> Result<Vec<Stored>, RegisterError> {
        let min = self.config.min_expires;
        if let Some(s) = specs
            .iter()
            .find(|s| s.expires != 0 && s.expires < u64::from(min))
        {
            return Err(RegisterError::IntervalTooBrief {
                requested: s.expires,
                min,
            });
        }
        let cap = self.config.max_bindings_per_identity;
        if specs.iter().filter(|s| s.expires != 0).count() > cap {
            return Err(RegisterError::TooManyContacts(cap));
        }
        // (binding, touched by this request)
        let mut list: Vec<(Stored, bool)> = current.into_iter().map(|s| (s, false)).collect();
        for spec in specs {
            let found = list.iter().position(|(s, _)| {
                uri_matches(&s.binding.contact, spec.uri)
                    || spec
                        .instance
                        .is_some_and(|i| s.binding.instance.as_deref() == Some(i))
            });
            if let Some(i) = found {
                let (s, touched) = &list[i];
                if !touched && s.binding.call_id == call_id && cseq <= s.binding.cseq {
                    return Err(RegisterError::OutOfOrder {
                        cseq,
                        stored: s.binding.cseq,
                    });
                }
            }
            let granted = spec.expires.min(u64::from(self.config.max_expires));
            if granted == 0 {
                if let Some(i) = found {
                    list.remove(i);
                }
                continue;
            }
            let binding = Binding {
                contact: spec.uri.to_owned(),
                source,
                call_id: call_id.to_owned(),
                cseq,
                expires: now + Duration::from_secs(granted),
                q: spec.q,
                instance: spec.instance.map(str::to_owned),
            };
            match found {
                Some(i) => {
                    let id = list[i].0.id;
                    list[i] = (Stored { id, binding }, true);
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    list.push((Stored { id, binding }, true));
                }
            }
        }
        // Over the cap: the older bindings expiring soonest make room.
        while list.len() > cap {
            let victim = list
                .iter()
                .enumerate()
                .filter(|(_, (_, touched))| !touched)
                .min_by_key(|(_, (s, _))| s.binding.expires)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    list.remove(i);
                }
                None => return Err(RegisterError::TooManyContacts(cap)),
            }
        }
        Ok(list.into_iter().map(|(s, _)| s).collect())
    }

    /// Replaces the bindings of `identity`, keeping the expiry index in step.
    fn commit(&mut self, identity: &str, updated: Vec<Stored>) {
        if let Some(old) = self.identities.remove(identity) {
            for s in old {
                self.index
                    .remove(&(s.binding.expires, identity.to_owned(), s.id));
            }
        }
        if updated.is_empty() {
            return;
        }
        for s in &updated {
            self.index
                .insert((s.binding.expires, identity.to_owned(), s.id));
        }
        self.identities.insert(identity.to_owned(), updated);
    }

    fn contact_spec<'a>(
        &self,
        value: &'a str,
        expires_header: Option<u64>,
    ) -> Result<ContactSpec<'a>, RegisterError> {
        let na = NameAddr::parse(value).map_err(|_| RegisterError::Malformed("Contact"))?;
        let scheme = na.uri.split(':').next().unwrap_or("");
        if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
            || uri_host_port(na.uri).is_none()
        {
            return Err(RegisterError::Malformed("Contact"));
        }
        let expires = match na.param("expires") {
            Some(v) => v
                .and_then(parse_delta)
                .unwrap_or(u64::from(self.config.default_expires)),
            None => expires_header.unwrap_or(u64::from(self.config.default_expires)),
        };
        Ok(ContactSpec {
            uri: na.uri,
            expires,
            q: na.param("q").flatten().and_then(parse_q),
            instance: na.param("+sip.instance").flatten(),
        })
    }

    /// The username of the credentials this registrar would verify in
    /// `request` (the `Authorization` for its realm, else the first), if any:
    /// what a throttle of failed attempts must count, not just any header's.
    pub fn authorization_username(&self, request: &Request) -> Option<String> {
        let v = self.pick_authorization(request)?;
        Credentials::parse(v).ok().map(|c| c.username)
    }

    /// The `Authorization` value for this realm (a phone may send several), else the first.
    fn pick_authorization<'r>(&self, request: &'r Request) -> Option<&'r str> {
        let mut values = request
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Authorization(_)))
            .map(header_value);
        let first = values.next()?;
        let realm = &self.config.digest.realm;
        let ours = |v: &str| Credentials::parse(v).is_ok_and(|c| &c.realm == realm);
        if ours(first) {
            return Some(first);
        }
        Some(values.find(|v| ours(v)).unwrap_or(first))
    }

    /// Authenticates a request other than REGISTER from a client identity
    /// (an INVITE from a softphone, design §4 step 1) with the same digest
    /// server: `Ok(identity)` when its credentials verify, else the response
    /// to send (401 with a fresh or stale challenge, or 403).
    pub fn authenticate(
        &mut self,
        now: Instant,
        request: &Request,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> Result<String, Response> {
        let Some(authorization) = self.pick_authorization(request) else {
            return Err(self.challenge(now, request, false).into_response());
        };
        let Ok(credentials) = Credentials::parse(authorization) else {
            return Err(self.challenge(now, request, false).into_response());
        };
        let request_uri = request.uri.to_string();
        // Besides the Request-URI itself, the digest `uri` may name just its
        // domain (`sip:host:port`): SIPp and some phones answer a challenge to
        // an INVITE that way. The response still binds method and nonce.
        let digest_uri = if uri_matches(&credentials.uri, &request_uri)
            || same_domain(&credentials.uri, &request_uri)
        {
            credentials.uri.as_str()
        } else {
            request_uri.as_str()
        };
        let method = request.method.to_string();
        let digest_request = DigestRequest {
            method: &method,
            uri: digest_uri,
            body: &request.body,
        };
        let since_epoch = now.saturating_duration_since(self.epoch);
        match self
            .digest
            .verify_credentials(since_epoch, &digest_request, &credentials, lookup)
        {
            Outcome::Ok(user) => Ok(user),
            Outcome::Stale | Outcome::Invalid(Rejection::SpentNonce) => {
                Err(self.challenge(now, request, true).into_response())
            }
            Outcome::Invalid(r @ (Rejection::UnknownUser | Rejection::BadResponse)) => Err(self
                .reject(request, RegisterError::BadCredentials(r))
                .into_response()),
            Outcome::Invalid(_) => Err(self.challenge(now, request, false).into_response()),
        }
    }

    fn challenge(&mut self, now: Instant, request: &Request, stale: bool) -> RegisterOutcome {
        let random = (u64::from(self.ids.u32()) << 32) | u64::from(self.ids.u32());
        let since_epoch = now.saturating_duration_since(self.epoch);
        let tag = self.ids.tag();
        let mut response = response_to(request, 401, None, Some(&tag));
        for c in self.digest.challenges(since_epoch, random, stale) {
            response
                .headers
                .push(Header::WwwAuthenticate(c.to_string().into()));
        }
        RegisterOutcome::Challenged { stale, response }
    }

    fn reject(&mut self, request: &Request, error: RegisterError) -> RegisterOutcome {
        let tag = self.ids.tag();
        let reason = match &error {
            RegisterError::TooManyContacts(_) => Some("Too Many Contacts"),
            RegisterError::OutOfOrder { .. } => Some("Out Of Order REGISTER"),
            RegisterError::IdentityMismatch { .. } => Some("Identity Mismatch"),
            _ => None,
        };
        let mut response = response_to(request, error.status(), reason, Some(&tag));
        let extra = match &error {
            RegisterError::NotRegister => Some(Header::Allow("REGISTER".to_owned().into())),
            RegisterError::UnsupportedExtension(tags) => {
                Some(Header::Unsupported(tags.clone().into()))
            }
            RegisterError::IntervalTooBrief { min, .. } => {
                Some(Header::MinExpires(min.to_string().into()))
            }
            RegisterError::StoreFull => Some(Header::RetryAfter("300".to_owned().into())),
            _ => None,
        };
        if let Some(h) = extra {
            response.headers.push(h);
        }
        RegisterOutcome::Rejected { error, response }
    }
}

/// `<uri>;expires=N[;q=..][;+sip.instance=".."]` for the 200 of a REGISTER.
fn render_contact(b: &Binding, now: Instant) -> String {
    let left = b.expires.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut out = format!("<{}>;expires={secs}", b.contact);
    if let Some(q) = b.q {
        out.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
    }
    if let Some(i) = &b.instance {
        out.push_str(&format!(";+sip.instance=\"{i}\""));
    }
    out
}

/// A delta-seconds value (§25.1); huge values saturate.
pub(crate) fn parse_delta(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(u64::MAX))
}

/// A `q` value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The user part of a SIP URI (`sip:joey@host` → `joey`), without a password.
pub fn uri_user(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let (userinfo, _) = rest.split_once('@')?;
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    (!user.is_empty()).then_some(user)
}

/// SIP URI equality after RFC 3261 §19.1.4, simplified: scheme and host
/// case-insensitive, user and password exact, ports equal (absent is not 5060),
/// `transport`, `user`, `ttl`, `method` and `maddr` equal when either side has
/// them, other parameters equal when both sides have them; URI headers and
/// percent-encoding are not compared.
/// Whether `domain_uri` is `sip:host[:port]` of `uri` (no user part).
fn same_domain(domain_uri: &str, uri: &str) -> bool {
    let (Some(d), Some(u)) = (UriParts::split(domain_uri), UriParts::split(uri)) else {
        return false;
    };
    d.scheme.eq_ignore_ascii_case(u.scheme)
        && d.userinfo.is_empty()
        && d.host.eq_ignore_ascii_case(u.host)
        && (d.port == u.port || d.port.is_none())
}

pub(crate) fn uri_matches(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (UriParts::split(a), UriParts::split(b)) else {
        return a == b;
    };
    if !x.scheme.eq_ignore_ascii_case(y.scheme)
        || x.userinfo != y.userinfo
        || !x.host.eq_ignore_ascii_case(y.host)
        || x.port != y.port
    {
        return false;
    }
    fn get<'a>(list: &'a str, name: &str) -> Option<&'a str> {
        params(list)
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }
    let same = |p: &str, q: &str| p.eq_ignore_ascii_case(q);
    for name in ["transport", "user", "ttl", "method", "maddr"] {
        match (get(x.params, name), get(y.params, name)) {
            (None, None) => {}
            (Some(p), Some(q)) if same(p, q) => {}
            _ => return false,
        }
    }
    params(x.params).all(|(k, v)| get(y.params, k).is_none_or(|w| same(v.unwrap_or(""), w)))
}

/// The pieces of a SIP URI that [`uri_matches`] compares.
struct UriParts<'a> {
    scheme: &'a str,
    userinfo: &'a str,
    host: &'a str,
    port: Option<u16>,
    /// URI parameters with their leading `;`.
    params: &'a str,
}

impl<'a> UriParts<'a> {
    fn split(uri: &'a str) -> Option<Self> {
        let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
        let (scheme, rest) = uri.split_once(':')?;
        let rest = rest.split('?').next().unwrap_or(rest);
        let (userinfo, hostpart) = rest.split_once('@').unwrap_or(("", rest));
        let (hostport, params) = hostpart.split_at(hostpart.find(';').unwrap_or(hostpart.len()));
        let (host, port) = split_host_port(hostport)?;
        Some(Self {
            scheme,
            userinfo,
            host,
            port,
            params,
        })
    }
}
