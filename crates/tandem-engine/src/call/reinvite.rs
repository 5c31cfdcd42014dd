//! Re-INVITEs between the legs of a bridge (hold, resume, codec change):
//! answered from Tandem's anchored leg and offered on to the other side.

use super::*;

impl Call {
    /// A 2xx to a re-INVITE Tandem sent the caller: ACK it and take its SDP.
    pub(super) fn on_parent_reinvite_response(&mut self, response: &Response, seq: u32) {
        if response.status_code.code() >= 200 {
            self.on_refresh_response(None, response);
        }
        if !(200..300).contains(&response.status_code.code()) {
            if response.status_code.code() >= 300 {
                self.dialog.on_invite_response(response);
            }
            return;
        }
        let branch = self.ids.branch();
        self.dialog.on_invite_response(response);
        if let Ok(ack) = self.dialog.ack_for(
            seq,
            self.source.transport.as_str(),
            self.cfg.host(self.source.transport),
            &branch,
        ) {
            self.out.push_back(Output::Ack {
                request: ack,
                peer: self.source,
            });
        }
        if let (Some(leg), true) = (self.media, has_sdp(&response.headers, &response.body))
            && let Err(e) = self.env.take_answer(leg, &response.body)
        {
            tracing::warn!(error = %e, "answer to our re-INVITE unusable");
        }
    }

    /// A 2xx to a re-INVITE Tandem sent a callee: ACK it and take its SDP.
    pub(super) fn on_child_reinvite_response(&mut self, i: usize, response: &Response, seq: u32) {
        if response.status_code.code() >= 200 {
            self.on_refresh_response(Some(i), response);
        }
        if !(200..300).contains(&response.status_code.code()) {
            if response.status_code.code() >= 300
                && let Some(dl) = self
                    .dial
                    .as_mut()
                    .and_then(|d| d.branches.get_mut(i))
                    .and_then(|b| b.dialog.as_mut())
            {
                dl.on_invite_response(response);
            }
            return;
        }
        let branch = self.ids.branch();
        let cfg = self.cfg.clone();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        let Some(dialog) = &mut b.dialog else { return };
        dialog.on_invite_response(response);
        let host = cfg.host(b.peer.transport);
        if let Ok(ack) = dialog.ack_for(seq, b.peer.transport.as_str(), host, &branch) {
            self.out.push_back(Output::Ack {
                request: ack,
                peer: b.peer,
            });
        }
        if let (Some(leg), true) = (b.media, has_sdp(&response.headers, &response.body))
            && let Err(e) = self.env.take_answer(leg, &response.body)
        {
            tracing::warn!(error = %e, "answer to our re-INVITE unusable");
        }
    }

    /// A re-INVITE from one side of the bridge (hold, resume, codec change):
    /// answered at once from Tandem's anchored leg, and offered on to the other
    /// side so that hold propagates (design §1: re-INVITEs pass between legs).
    pub(super) fn relay_reinvite(
        &mut self,
        from_child: Option<usize>,
        request: &Request,
    ) -> Option<Vec<u8>> {
        if !self.env.has_media() || !has_sdp(&request.headers, &request.body) {
            return None;
        }
        let body = &request.body;
        let cfg = self.cfg.clone();
        let branch = self.ids.branch();
        let bridged = self.dial.as_ref().and_then(|d| d.bridged);
        // A refresh resending the remote's last SDP as it was changes
        // nothing: answered, not passed on (RFC 3264 §8: an unchanged
        // description; a re-INVITE on the other leg for every refresh
        // doubled them).
        match from_child {
            None => {
                let unchanged = self.env.same_remote_sdp(self.media?, body);
                let answer = match self.env.answer(self.media?, body) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "caller's re-INVITE SDP unusable");
                        return None;
                    }
                };
                if let Some(i) = bridged.filter(|_| !unchanged) {
                    let se = self.session_header(Some(i));
                    let b = &mut self.dial.as_mut()?.branches[i];
                    if let (Some(leg), Some(dialog)) = (b.media, &mut b.dialog)
                        && let Ok(offer) = self.env.offer(leg, Some(body))
                        && let Ok(mut re) = dialog.request(
                            Method::Invite,
                            b.peer.transport.as_str(),
                            cfg.host(b.peer.transport),
                            &branch,
                        )
                    {
                        re.headers.extend(se.into_iter().collect());
                        re.headers
                            .push(Header::ContentType("application/sdp".into()));
                        re.body = offer;
                        self.out.push_back(Output::Request {
                            request: re,
                            peer: b.peer,
                        });
                    }
                }
                Some(answer)
            }
            Some(i) => {
                let leg = self.dial.as_ref()?.branches[i].media?;
                let unchanged = self.env.same_remote_sdp(leg, body);
                let answer = match self.env.answer(leg, body) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "callee's re-INVITE SDP unusable");
                        return None;
                    }
                };
                let se = self.session_header(None);
                if bridged == Some(i)
                    && !unchanged
                    && let Some(parent) = self.media
                    && let Ok(offer) = self.env.offer(parent, Some(body))
                    && let Ok(mut re) = self.dialog.request(
                        Method::Invite,
                        self.source.transport.as_str(),
                        cfg.host(self.source.transport),
                        &branch,
                    )
                {
                    re.headers.extend(se.into_iter().collect());
                    re.headers
                        .push(Header::ContentType("application/sdp".into()));
                    re.body = offer;
                    self.out.push_back(Output::Request {
                        request: re,
                        peer: self.source,
                    });
                }
                Some(answer)
            }
        }
    }

    /// An in-dialog UPDATE (RFC 3311) from the caller or from branch `i`.
    /// With an SDP offer it is answered in its 2xx, from Tandem's anchored
    /// leg, and the change is offered on like a re-INVITE's; an offer that
    /// cannot be answered gets 488 (and the session stays as it was).
    /// Without a body it only refreshes the session: 200.
    pub(super) fn answer_update(
        &mut self,
        stx: ServerTx,
        request: &Request,
        from_child: Option<usize>,
    ) {
        let before = self.session_snapshot(from_child);
        let session = match self.refresh_by_peer(from_child, request) {
            Ok(h) => h,
            Err(r) => {
                self.out.push_back(Output::Respond { stx, response: r });
                return;
            }
        };
        let offer = has_sdp(&request.headers, &request.body);
        let answer = if offer && self.env.has_media() {
            self.relay_reinvite(from_child, request)
        } else {
            None
        };
        let response = match (offer && self.env.has_media(), answer) {
            (true, None) => {
                tracing::warn!("UPDATE offer cannot be answered: 488");
                // Only a 2xx refreshes the session (RFC 4028 §10).
                self.restore_session(from_child, before);
                response_to(request, 488, None, None)
            }
            (_, answer) => {
                let mut r = response_to(request, 200, None, None);
                r.headers
                    .push(Header::Contact(self.contact(from_child).into()));
                r.headers.extend(session);
                if let Some(sdp) = answer {
                    if from_child.is_none() {
                        self.answer_sdp = Some(sdp.clone());
                    }
                    r.headers
                        .push(Header::ContentType("application/sdp".into()));
                    r.body = sdp;
                }
                r
            }
        };
        self.out.push_back(Output::Respond { stx, response });
    }
}
