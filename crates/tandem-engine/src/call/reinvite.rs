//! Re-INVITEs between the legs of a bridge (hold, resume, codec change):
//! answered from Tandem's anchored leg and offered on to the other side.

use super::*;

impl Call {
    /// A 2xx to a re-INVITE Tandem sent the caller: ACK it and take its SDP.
    pub(super) async fn on_parent_reinvite_response(&mut self, response: &Response, seq: u32) {
        let branch = self.ids.branch();
        let host = self.ctx.cfg.sip_host.clone();
        let leg = LegSignal {
            dialog: &mut self.dialog,
            media: self.media.as_mut(),
            peer: self.source,
        };
        leg.ack_reinvite(&self.ctx, response, seq, &host, &branch)
            .await;
    }

    /// A 2xx to a re-INVITE Tandem sent a callee: ACK it and take its SDP.
    pub(super) async fn on_child_reinvite_response(
        &mut self,
        i: usize,
        response: &Response,
        seq: u32,
    ) {
        let branch = self.ids.branch();
        let host = self.ctx.cfg.sip_host.clone();
        let Some(b) = self.dial.as_mut().map(|d| &mut d.branches[i]) else {
            return;
        };
        let Some(dialog) = &mut b.dialog else { return };
        let leg = LegSignal {
            dialog,
            media: b.media.as_mut(),
            peer: b.peer,
        };
        leg.ack_reinvite(&self.ctx, response, seq, &host, &branch)
            .await;
    }

    /// A re-INVITE from one side of the bridge (hold, resume, codec change):
    /// answered at once from Tandem's anchored leg, and offered on to the other
    /// side so that hold propagates (design §1: re-INVITEs pass between legs).
    pub(super) async fn relay_reinvite(
        &mut self,
        from_child: Option<usize>,
        request: &Request,
    ) -> Option<Vec<u8>> {
        let caps = self.ctx.media.as_ref()?.caps().clone();
        let body = &request.body;
        if !has_sdp(&request.headers, body) {
            return None;
        }
        let host = self.ctx.cfg.sip_host.clone();
        let branch = self.ids.branch();
        let bridged = self.dial.as_ref().and_then(|d| d.bridged);
        match from_child {
            None => {
                let answer = match self.media.as_mut()?.answer(body, &caps) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "caller's re-INVITE SDP unusable");
                        return None;
                    }
                };
                if let Some(i) = bridged {
                    let b = &mut self.dial.as_mut()?.branches[i];
                    if let (Some(m), Some(dialog)) = (&mut b.media, &mut b.dialog)
                        && let Ok(offer) = m.offer_from(body, &caps)
                        && let Ok(mut re) = dialog.request(
                            Method::Invite,
                            b.peer.transport.as_str(),
                            &host,
                            &branch,
                        )
                    {
                        re.headers
                            .push(Header::ContentType("application/sdp".into()));
                        re.body = offer;
                        let _ = self.ctx.ep.send_request(re, b.peer).await;
                    }
                }
                Some(answer)
            }
            Some(i) => {
                let b = &mut self.dial.as_mut()?.branches[i];
                let answer = match b.media.as_mut()?.answer(body, &caps) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "callee's re-INVITE SDP unusable");
                        return None;
                    }
                };
                if bridged == Some(i)
                    && let Some(m) = &mut self.media
                    && let Ok(offer) = m.offer_from(body, &caps)
                    && let Ok(mut re) = self.dialog.request(
                        Method::Invite,
                        self.source.transport.as_str(),
                        &host,
                        &branch,
                    )
                {
                    re.headers
                        .push(Header::ContentType("application/sdp".into()));
                    re.body = offer;
                    let _ = self.ctx.ep.send_request(re, self.source).await;
                }
                Some(answer)
            }
        }
    }
}

/// One leg's dialog, media and peer, for what both sides of a bridge do alike.
struct LegSignal<'a> {
    dialog: &'a mut Dialog,
    media: Option<&'a mut MediaLeg>,
    peer: Peer,
}

impl LegSignal<'_> {
    /// ACKs the 2xx of a re-INVITE Tandem sent on this leg (CSeq `seq`) and
    /// takes the SDP answer it carries.
    async fn ack_reinvite(
        self,
        ctx: &Ctx,
        response: &Response,
        seq: u32,
        host: &str,
        branch: &str,
    ) {
        if !(200..300).contains(&response.status_code.code()) {
            return;
        }
        self.dialog.on_invite_response(response);
        if let Ok(ack) = self
            .dialog
            .ack_for(seq, self.peer.transport.as_str(), host, branch)
        {
            let _ = ctx
                .ep
                .send_stateless(SipMessage::Request(ack), self.peer)
                .await;
        }
        if let (Some(m), true) = (self.media, has_sdp(&response.headers, &response.body))
            && let Err(e) = m.on_answer(&response.body)
        {
            tracing::warn!(error = %e, "answer to our re-INVITE unusable");
        }
    }
}
