//! Dialogs (RFC 3261 §12): creation on both sides (§12.1.1 UAS, §12.1.2 UAC,
//! including the early dialogs forking creates), in-dialog requests with route
//! sets and loose/strict routing (§12.2.1.1, §16.12), CSeq rules (§12.2.2),
//! remote target refresh, the ACK for a 2xx (§13.2.2.4), 481 for unknown
//! dialogs and 491 on re-INVITE glare (§14.1, §14.2).

use std::collections::HashMap;

use crate::builder::RequestBuilder;
use crate::header::NameAddr;
use crate::message::{Header, HeadersExt, Method, Request, Response, header_value};

/// Why a dialog could not be created or a request was refused in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header needed to build the dialog is missing or malformed.
    #[error("cannot form a dialog: {0}")]
    Malformed(&'static str),
    /// The response carries no To tag (RFC 2543 peers): no dialog state.
    #[error("response without To tag")]
    NoRemoteTag,
    /// The in-dialog request's CSeq is not above the last one (answered 500).
    #[error("CSeq {got} not above {last}")]
    CSeqOutOfOrder {
        /// Received CSeq.
        got: u32,
        /// Highest CSeq seen in this dialog.
        last: u32,
    },
    /// A re-INVITE arrived while ours is pending (answered 491).
    #[error("re-INVITE glare")]
    Glare,
    /// No dialog matches the request (answered 481).
    #[error("no such dialog")]
    Unknown,
}

impl DialogError {
    /// The status a UAS answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::CSeqOutOfOrder { .. } => 500,
            Self::Glare => 491,
            Self::Unknown => 481,
            _ => 400,
        }
    }
}

/// Which side of the dialog Tandem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Tandem sent the INVITE.
    Uac,
    /// Tandem received the INVITE.
    Uas,
}

/// §12: early (from a 1xx with a tag) or confirmed (from a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended by BYE or a failed INVITE.
    Terminated,
}

/// Dialog identifier (§12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Tandem's tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// One dialog's state.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Identifier.
    pub id: DialogId,
    /// Tandem's role.
    pub role: Role,
    /// Early, confirmed or terminated.
    pub state: DialogState,
    /// Local URI with tag, as a From header value of requests Tandem sends.
    pub local: String,
    /// Remote URI with tag, as a To header value of requests Tandem sends.
    pub remote: String,
    /// Last CSeq Tandem used.
    pub local_seq: u32,
    /// Highest CSeq received, if any.
    pub remote_seq: Option<u32>,
    /// The peer's Contact URI: the Request-URI of in-dialog requests.
    pub remote_target: String,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<String>,
    /// Tandem's Contact value.
    pub local_contact: String,
    /// CSeq of the INVITE that created the dialog (for its ACK).
    pub invite_seq: u32,
    /// A re-INVITE Tandem sent is awaiting its final response.
    pub local_reinvite_pending: bool,
    /// A re-INVITE from the peer is awaiting Tandem's final response.
    pub remote_reinvite_pending: bool,
}

fn contact_uri(h: &rsip::Headers) -> Option<String> {
    let v = h.value_of(|h| matches!(h, Header::Contact(_)))?;
    NameAddr::parse(v).ok().map(|n| n.uri.to_owned())
}

fn record_routes(h: &rsip::Headers) -> Vec<String> {
    h.iter()
        .filter(|h| matches!(h, Header::RecordRoute(_)))
        .map(|h| header_value(h).trim().to_owned())
        .collect()
}

fn value(
    h: &rsip::Headers,
    pred: impl Fn(&Header) -> bool,
    name: &'static str,
) -> Result<String, DialogError> {
    h.value_of(pred)
        .map(|v| v.trim().to_owned())
        .ok_or(DialogError::Malformed(name))
}

impl Dialog {
    /// The UAC side (§12.1.2) from the INVITE Tandem sent and a response with a
    /// To tag: a 1xx makes an early dialog, a 2xx a confirmed one. The route set
    /// is the response's Record-Route in reverse order.
    pub fn uac(invite: &Request, response: &Response) -> Result<Self, DialogError> {
        let code = response.status_code.code();
        let remote_tag = response
            .headers
            .to_tag()
            .ok_or(DialogError::NoRemoteTag)?
            .to_owned();
        let local_tag = invite
            .headers
            .from_tag()
            .ok_or(DialogError::Malformed("From tag"))?
            .to_owned();
        let call_id = invite
            .headers
            .call_id()
            .ok_or(DialogError::Malformed("Call-ID"))?
            .to_owned();
        let (invite_seq, _) = invite
            .headers
            .cseq()
            .ok_or(DialogError::Malformed("CSeq"))?;
        let mut route_set = record_routes(&response.headers);
        route_set.reverse();
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            role: Role::Uac,
            state: if code >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local: value(&invite.headers, |h| matches!(h, Header::From(_)), "From")?,
            remote: value(&response.headers, |h| matches!(h, Header::To(_)), "To")?,
            local_seq: invite_seq,
            remote_seq: None,
            remote_target: contact_uri(&response.headers).unwrap_or_else(|| invite.uri.to_string()),
            route_set,
            local_contact: value(
                &invite.headers,
                |h| matches!(h, Header::Contact(_)),
                "Contact",
            )
            .unwrap_or_default(),
            invite_seq,
            local_reinvite_pending: false,
            remote_reinvite_pending: false,
        })
    }

    /// The UAS side (§12.1.1) from a received INVITE and the tag Tandem put in
    /// its To; the route set is the request's Record-Route in order.
    pub fn uas(
        invite: &Request,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Self, DialogError> {
        let remote_tag = invite
            .headers
            .from_tag()
            .ok_or(DialogError::Malformed("From tag"))?
            .to_owned();
        let call_id = invite
            .headers
            .call_id()
            .ok_or(DialogError::Malformed("Call-ID"))?
            .to_owned();
        let (seq, _) = invite
            .headers
            .cseq()
            .ok_or(DialogError::Malformed("CSeq"))?;
        let to = value(&invite.headers, |h| matches!(h, Header::To(_)), "To")?;
        let local = if invite.headers.to_tag().is_some() {
            to
        } else {
            format!("{to};tag={local_tag}")
        };
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            role: Role::Uas,
            state: DialogState::Early,
            local,
            remote: value(&invite.headers, |h| matches!(h, Header::From(_)), "From")?,
            local_seq: 0,
            remote_seq: Some(seq),
            remote_target: contact_uri(&invite.headers).ok_or(DialogError::Malformed("Contact"))?,
            route_set: record_routes(&invite.headers),
            local_contact: local_contact.to_owned(),
            invite_seq: seq,
            local_reinvite_pending: false,
            remote_reinvite_pending: false,
        })
    }

    /// A later response to the dialog-creating INVITE (UAC): a 2xx confirms the
    /// dialog and fixes its route set and target (§12.1.2, §13.2.2.4).
    pub fn on_invite_response(&mut self, response: &Response) {
        let code = response.status_code.code();
        if let Some(target) = contact_uri(&response.headers) {
            self.remote_target = target;
        }
        if (200..300).contains(&code) {
            if self.state == DialogState::Early {
                let mut rr = record_routes(&response.headers);
                rr.reverse();
                self.route_set = rr;
            }
            self.state = DialogState::Confirmed;
            self.local_reinvite_pending = false;
        } else if code >= 300 {
            if self.state == DialogState::Early {
                self.state = DialogState::Terminated;
            }
            self.local_reinvite_pending = false;
        }
    }

    /// Marks a UAS dialog confirmed when Tandem sends its 2xx.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Checks and records an in-dialog request from the peer (§12.2.2): it
    /// must name this dialog (Call-ID, the peer's tag in From, Tandem's in
    /// To; else [`DialogError::Unknown`], 481), CSeq must increase, re-INVITE
    /// glare gets 491, a target refresh request (re-INVITE, UPDATE) updates
    /// the remote target. ACK and CANCEL carry the CSeq of what they
    /// acknowledge and are not checked for it; CANCEL names the INVITE's
    /// transaction, not the dialog, and is not checked at all.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if req.method == Method::Cancel {
            return Ok(());
        }
        // The request names this dialog by Call-ID and both tags (§12.2.2):
        // the peer's tag in From, ours in To. Another pair is another (or a
        // forged) dialog: 481, whatever the Call-ID.
        if req.headers.call_id() != Some(self.id.call_id.as_str())
            || req.headers.from_tag() != Some(self.id.remote_tag.as_str())
            || req.headers.to_tag() != Some(self.id.local_tag.as_str())
        {
            return Err(DialogError::Unknown);
        }
        if req.method == Method::Ack {
            return Ok(());
        }
        let (seq, _) = req.headers.cseq().ok_or(DialogError::Malformed("CSeq"))?;
        if let Some(last) = self.remote_seq
            && seq <= last
        {
            return Err(DialogError::CSeqOutOfOrder { got: seq, last });
        }
        if req.method == Method::Invite && self.local_reinvite_pending {
            return Err(DialogError::Glare);
        }
        self.remote_seq = Some(seq);
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(target) = contact_uri(&req.headers)
        {
            self.remote_target = target;
        }
        if req.method == Method::Invite {
            self.remote_reinvite_pending = true;
        }
        if req.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// Builds an in-dialog request (BYE, re-INVITE, UPDATE, INFO, OPTIONS...)
    /// with the next local CSeq, the route set and the remote target as the
    /// Request-URI, or the first route when it is a strict router (§12.2.1.1).
    pub fn request(
        &mut self,
        method: Method,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<Request, DialogError> {
        self.local_seq += 1;
        if method == Method::Invite {
            self.local_reinvite_pending = true;
        }
        self.build(method, self.local_seq, transport, sent_by, branch)
    }

    /// The ACK for the 2xx of the dialog's INVITE (§13.2.2.4): the INVITE's
    /// CSeq number with method ACK, a new branch.
    pub fn ack(
        &self,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<Request, DialogError> {
        self.build(Method::Ack, self.invite_seq, transport, sent_by, branch)
    }

    /// The ACK for the 2xx of a re-INVITE sent with CSeq `seq`.
    pub fn ack_for(
        &self,
        seq: u32,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<Request, DialogError> {
        self.build(Method::Ack, seq, transport, sent_by, branch)
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<Request, DialogError> {
        let strict = self.route_set.first().is_some_and(|r| !is_loose(r));
        let (ruri, routes): (String, Vec<String>) = if strict {
            let first = route_uri(&self.route_set[0]).to_owned();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (first, rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let uri = crate::uri::parse(ruri.as_str())
            .map_err(|_| DialogError::Malformed("remote target"))?;
        let with_contact = matches!(method, Method::Invite | Method::Update);
        let mut b = RequestBuilder::new(method, uri)
            .via(transport, sent_by, branch)
            .max_forwards(70)
            .from(self.local.clone())
            .to(self.remote.clone())
            .call_id(self.id.call_id.clone())
            .cseq(seq)
            .routes(routes.iter().map(String::as_str));
        if !self.local_contact.is_empty() && with_contact {
            b = b.contact(self.local_contact.clone());
        }
        Ok(b.build())
    }

    /// The URI of the next hop: the first route, else the remote target.
    pub fn next_hop(&self) -> &str {
        match self.route_set.first() {
            Some(r) => route_uri(r),
            None => &self.remote_target,
        }
    }
}

fn route_uri(route: &str) -> &str {
    NameAddr::parse(route).map(|n| n.uri).unwrap_or(route)
}

fn is_loose(route: &str) -> bool {
    crate::header::uri_param(route_uri(route), "lr").is_some()
}

/// Dialogs of one endpoint shard, matched by Call-ID and tags.
#[derive(Debug, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a dialog.
    pub fn insert(&mut self, d: Dialog) {
        self.map.insert(d.id.clone(), d);
    }

    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.map.remove(id)
    }

    /// A dialog by id.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The dialog of a received in-dialog request (our tag is in its To), or
    /// [`DialogError::Unknown`] (481).
    pub fn match_request(&mut self, req: &Request) -> Result<&mut Dialog, DialogError> {
        let id = DialogId {
            call_id: req
                .headers
                .call_id()
                .ok_or(DialogError::Unknown)?
                .to_owned(),
            local_tag: req.headers.to_tag().ok_or(DialogError::Unknown)?.to_owned(),
            remote_tag: req.headers.from_tag().unwrap_or("").to_owned(),
        };
        self.map.get_mut(&id).ok_or(DialogError::Unknown)
    }
}

#[cfg(test)]
mod tests;
