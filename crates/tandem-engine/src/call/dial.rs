//! `<Dial>` on the call actor: child legs and their INVITEs (digest
//! answers, `<Client>` contacts), the fork arbiter's decisions, the bridge,
//! recordings, and branches cancelled after the Dial ended.

use super::*;

impl Call {
    pub(super) fn branch_index(&self, call_id: &str) -> Option<usize> {
        self.dial.as_ref()?.by_call_id.get(call_id).copied()
    }

    pub(super) async fn start_dial(&mut self, spec: tandem_twiml::Dial) {
        let t = now();
        let caller_id = spec
            .caller_id
            .clone()
            .unwrap_or_else(|| self.from_user.clone());
        let mut branches = Vec::new();
        let mut unreachable = Vec::new();
        for noun in &spec.nouns {
            for target in self.targets(noun).await {
                let built = match target {
                    Ok(target) => self.build_branch(noun, target, &caller_id),
                    Err(code) => Err(code),
                };
                match built {
                    Ok(b) => branches.push(b),
                    Err(code) => {
                        unreachable.push((branches.len(), code));
                        branches.push(self.dead_branch(code));
                    }
                }
            }
        }
        let screening: Vec<bool> = branches.iter().map(|b| b.screen_url.is_some()).collect();
        let policy = if spec.ring_tone.is_some() {
            RingbackPolicy::RingTone
        } else {
            RingbackPolicy::CalleeEarlyMedia
        };
        let arbiter = ForkArbiter::new(
            t,
            branches.len(),
            Duration::from_secs(u64::from(spec.timeout)),
            screening,
            policy,
        );
        let by_call_id = branches
            .iter()
            .enumerate()
            .map(|(i, b)| (b.call_id.clone(), i))
            .collect();
        for b in &branches {
            self.ctx.calls.insert(b.call_id.clone(), self.me.clone());
        }
        let time_limit = None;
        let rec_opts = RecordingOptions::from_twiml(spec.record, spec.recording_track, spec.trim);
        let rec_callback = spec.recording_status_callback.as_ref().and_then(|u| {
            let url = self.resolve_url(u)?;
            let events = if spec.recording_status_callback_event.is_empty() {
                vec![tandem_twiml::RecordingEvent::Completed]
            } else {
                spec.recording_status_callback_event.clone()
            };
            Some((
                url,
                twiml_method(spec.recording_status_callback_method),
                events,
            ))
        });
        self.dial = Some(DialState {
            spec,
            arbiter,
            branches,
            by_call_id,
            bridged: None,
            bridged_at: None,
            time_limit,
            result: None,
            rec_opts,
            recording: None,
            rec_callback,
        });
        // Send every INVITE at once.
        let dial = self.dial.as_mut().expect("just set");
        for b in dial.branches.iter_mut() {
            if b.state == BranchState::Calling {
                let _ = self.ctx.ep.send_request(b.invite.clone(), b.peer).await;
                report(
                    b,
                    tandem_twiml::CallProgressEvent::Initiated,
                    tandem_webhook::CallStatus::Initiated,
                    None,
                );
            }
        }
        for (i, code) in unreachable {
            if let Some(d) = &mut self.dial {
                d.arbiter.on_failed(t, i, code);
            }
        }
        if self
            .dial
            .as_ref()
            .and_then(|d| d.rec_opts.as_ref())
            .is_some_and(|o| o.from == RecordFrom::Ringing)
        {
            self.start_recording();
        }
        let answer_on_bridge = self.dial.as_ref().is_some_and(|d| d.spec.answer_on_bridge);
        if !self.answered && answer_on_bridge && !self.early_sent {
            // The caller rings until a callee is bridged; with anchored media it hears ringback.
            let sdp = self.answer_sdp.clone();
            let code = if sdp.is_some() { 183 } else { 180 };
            let r = self.response(code, sdp.as_deref());
            let _ = self.ctx.ep.respond(self.invite_tx, r).await;
            self.early_sent = true;
        }
        self.apply_actions().await;
    }

    pub(super) fn dead_branch(&mut self, code: u16) -> Branch {
        let call_id = self.ids.call_id();
        Branch {
            sid: call_sid(&mut self.ids),
            call_id,
            via_branch: String::new(),
            invite: self.invite.clone(),
            peer: self.source,
            to: String::new(),
            dialog: None,
            state: BranchState::Ended,
            media: None,
            status_callback: None,
            callbacks: None,
            answered_at: None,
            ringing_reported: false,
            final_code: Some(code),
            answer_sdp: None,
            parent_sid: self.sid.clone(),
            account_sid: self.ctx.cfg.account_sid.clone(),
            screen_url: None,
            credentials: None,
            auth_tried: false,
            screen: None,
            send_digits: None,
        }
    }

    /// Where a noun rings: one target for `<Number>` and `<Sip>`, one per
    /// registered contact for `<Client>`; an Err ends that branch at once
    /// with its SIP status.
    async fn targets(&mut self, noun: &Noun) -> Vec<Result<Target, u16>> {
        match noun {
            Noun::Sip(s) => {
                let creds = s.username.clone().zip(s.password.clone());
                vec![resolve(&s.uri, s.headers.clone(), creds).await]
            }
            Noun::Number(n) => {
                let number = n.number.to_string();
                let Some(trunk) = self.ctx.cfg.trunk_for(&number, n.byoc.as_deref()) else {
                    tracing::warn!(%number, "no trunk carries this number");
                    return vec![Err(404)];
                };
                let host = trunk
                    .proxy
                    .split_once(':')
                    .map_or(trunk.proxy.as_str(), |(_, h)| h);
                let creds = trunk.username.clone().zip(trunk.password.clone());
                vec![resolve(&format!("sip:{number}@{host}"), Vec::new(), creds).await]
            }
            Noun::Client(c) => {
                let contacts = self.ctx.registrar_contacts(&c.identity);
                if contacts.is_empty() {
                    tracing::info!(identity = %c.identity, "<Client> not registered: branch fails");
                    return vec![Err(480)];
                }
                contacts
                    .into_iter()
                    .map(|(uri, peer)| {
                        Ok(Target {
                            uri,
                            peer,
                            headers: Vec::new(),
                            credentials: None,
                        })
                    })
                    .collect()
            }
            _ => vec![Err(488)],
        }
    }

    /// Builds a branch's INVITE toward a target.
    fn build_branch(
        &mut self,
        noun: &Noun,
        target: Target,
        caller_id: &str,
    ) -> Result<Branch, u16> {
        let Target {
            uri,
            peer,
            headers: extra,
            credentials,
        } = target;
        let transport = peer.transport;
        let call_id = self.ids.call_id();
        let via_branch = self.ids.branch();
        let tag = self.ids.tag();
        let Ok(ruri) = rsip::Uri::try_from(uri.split('?').next().unwrap_or(&uri)) else {
            return Err(400);
        };
        let host_port = &self.ctx.cfg.sip_host;
        let mut b = RequestBuilder::new(Method::Invite, ruri)
            .via(transport.as_str(), host_port, &via_branch)
            .max_forwards(70)
            .from(format!("<sip:{caller_id}@{host_port}>;tag={tag}"))
            .to(format!("<{}>", uri.split('?').next().unwrap_or(&uri)))
            .call_id(call_id.clone())
            .cseq(1)
            .contact(self.contact());
        for (k, v) in extra {
            b = b.header(Header::Other(k, v));
        }
        if let Noun::Client(c) = noun {
            for (k, v) in &c.parameters {
                b = b.header(Header::Other(format!("X-{k}"), v.clone()));
            }
        }
        // Media: a leg per branch, offered the caller's codecs.
        let mut media = None;
        let mut body = None;
        if let Some(m) = &self.ctx.media {
            let mut leg = m.leg(self.media_tx.clone()).map_err(|e| e.status())?;
            let sdp = if has_sdp(&self.invite.headers, &self.invite.body) {
                leg.offer_from(&self.invite.body, m.caps())
                    .map_err(|e| e.status())?
            } else {
                leg.offer(m.caps())
            };
            body = Some(sdp);
            media = Some(leg);
        } else if has_sdp(&self.invite.headers, &self.invite.body) {
            body = Some(self.invite.body.clone());
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let invite = b.build();
        let status_callback = noun_options(noun).and_then(|o| {
            let url = self.resolve_url(o.status_callback.as_ref()?)?;
            let events = if o.status_callback_event.is_empty() {
                vec![tandem_twiml::CallProgressEvent::Completed]
            } else {
                o.status_callback_event.clone()
            };
            Some((url, twiml_method(o.status_callback_method), events))
        });
        let screen_url =
            noun_options(noun).and_then(|o| Some((self.resolve_url(o.url.as_ref()?)?, o.method)));
        let sid = call_sid(&mut self.ids);
        let callbacks = status_callback
            .as_ref()
            .map(|_| self.ctx.callbacks.open(sid.clone()));
        Ok(Branch {
            sid,
            call_id,
            via_branch,
            invite,
            peer,
            to: user_of(&uri),
            dialog: None,
            state: BranchState::Calling,
            media,
            status_callback,
            callbacks,
            answered_at: None,
            ringing_reported: false,
            final_code: None,
            answer_sdp: None,
            parent_sid: self.sid.clone(),
            account_sid: self.ctx.cfg.account_sid.clone(),
            screen_url,
            credentials,
            auth_tried: false,
            screen: None,
            send_digits: match noun {
                Noun::Number(n) => n.send_digits.clone(),
                _ => None,
            },
        })
    }

    pub(super) async fn on_child_response(
        &mut self,
        response: Response,
        stray_source: Option<Peer>,
    ) {
        let cid = response.headers.call_id().unwrap_or("").to_owned();
        let Some((seq, Method::Invite)) = response.headers.cseq() else {
            // Responses to BYE, CANCEL, INFO: the transactions did their part.
            return;
        };
        if cid == self.call_id {
            self.on_parent_reinvite_response(&response, seq).await;
            return;
        }
        let Some(i) = self.branch_index(&cid) else {
            self.on_lingering_response(&cid, &response).await;
            return;
        };
        let reinvite = self
            .dial
            .as_ref()
            .and_then(|d| d.branches[i].dialog.as_ref())
            .is_some_and(|dl| seq > dl.invite_seq);
        if reinvite {
            self.on_child_reinvite_response(i, &response, seq).await;
            return;
        }
        let code = response.status_code.code();
        let t = now();
        let sdp = has_sdp(&response.headers, &response.body);
        let host = self.ctx.cfg.sip_host.clone();
        let Some(dial) = &mut self.dial else { return };
        let b = &mut dial.branches[i];
        if (200..300).contains(&code) {
            // Every 2xx is ACKed at once (ACK before any BYE); the arbiter decides what follows.
            let dialog = match b.dialog.take() {
                Some(mut d) if d.id.remote_tag == response.headers.to_tag().unwrap_or("") => {
                    d.on_invite_response(&response);
                    Ok(d)
                }
                _ => Dialog::uac(&b.invite, &response),
            };
            let Ok(dialog) = dialog else {
                tracing::warn!("2xx without To tag from a callee: cannot ACK it");
                return;
            };
            let ack_branch = self.ids.branch();
            if let Ok(ack) = dialog.ack(b.peer.transport.as_str(), &host, &ack_branch) {
                let _ = self
                    .ctx
                    .ep
                    .send_stateless(SipMessage::Request(ack), b.peer)
                    .await;
            }
            b.dialog = Some(dialog);
            if stray_source.is_some()
                || b.state == BranchState::Answered
                || b.state == BranchState::Bridged
            {
                return;
            }
            if let (Some(m), true) = (&mut b.media, sdp)
                && let Err(e) = m.on_answer(&response.body)
            {
                tracing::warn!(error = %e, "callee's SDP answer unusable");
            }
            // Kept only to answer the caller with when media is not anchored.
            if sdp && b.media.is_none() {
                b.answer_sdp = Some(response.body.clone());
            }
            b.state = BranchState::Answered;
            b.answered_at = Some(t);
            dial.arbiter.on_answered(t, i);
        } else if code > 100 && code < 200 {
            if b.state == BranchState::Calling {
                b.state = BranchState::Ringing;
            }
            if b.dialog.is_none() && response.headers.to_tag().is_some() {
                b.dialog = Dialog::uac(&b.invite, &response).ok();
            }
            if let (Some(m), true) = (&mut b.media, sdp) {
                let _ = m.on_answer(&response.body);
            }
            if !b.ringing_reported {
                b.ringing_reported = true;
                report(
                    b,
                    tandem_twiml::CallProgressEvent::Ringing,
                    tandem_webhook::CallStatus::Ringing,
                    None,
                );
            }
            dial.arbiter.on_provisional(t, i, code, sdp);
        } else if matches!(code, 401 | 407) && b.credentials.is_some() && !b.auth_tried {
            // Answer the challenge once with the trunk's or the noun's credentials.
            b.auth_tried = true;
            let branch = self.ids.branch();
            let cnonce = self.ids.tag();
            match authorized_invite(
                &b.invite,
                &response,
                b.credentials.as_ref(),
                &branch,
                &cnonce,
            ) {
                Ok(invite) => {
                    b.invite = invite.clone();
                    b.via_branch = branch;
                    let peer = b.peer;
                    let _ = self.ctx.ep.send_request(invite, peer).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, code, "cannot answer the callee's challenge");
                    b.final_code = Some(code);
                    b.state = BranchState::Ended;
                    dial.arbiter.on_failed(t, i, code);
                }
            }
        } else if code >= 300 {
            b.final_code = Some(code);
            b.state = BranchState::Ended;
            dial.arbiter.on_failed(t, i, code);
        }
        self.apply_actions().await;
    }

    /// A final response on a branch cancelled after its Dial ended: a 2xx is
    /// ACKed then BYEd (ACK first), anything final lets the branch go.
    pub(super) async fn on_lingering_response(&mut self, cid: &str, response: &Response) {
        let Some(pos) = self.lingering.iter().position(|(_, b)| b.call_id == cid) else {
            return;
        };
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let (_, b) = self.lingering.remove(pos);
        self.ctx.calls.remove(&b.call_id);
        if code >= 300 {
            return;
        }
        tracing::info!(code, "a cancelled branch answered anyway: ACK then BYE");
        let host = self.ctx.cfg.sip_host.clone();
        let Ok(mut dialog) = Dialog::uac(&b.invite, response) else {
            return;
        };
        let transport = b.peer.transport.as_str();
        if let Ok(ack) = dialog.ack(transport, &host, &self.ids.branch()) {
            let _ = self
                .ctx
                .ep
                .send_stateless(SipMessage::Request(ack), b.peer)
                .await;
        }
        if let Ok(bye) = dialog.request(Method::Bye, transport, &host, &self.ids.branch()) {
            let _ = self.ctx.ep.send_request(bye, b.peer).await;
        }
    }

    pub(super) async fn branch_failed(&mut self, i: usize, code: u16) {
        if let Some(d) = &mut self.dial {
            if d.branches[i].state == BranchState::Ended {
                return;
            }
            d.branches[i].state = BranchState::Ended;
            d.branches[i].final_code = Some(code);
            d.arbiter.on_failed(now(), i, code);
        }
        self.apply_actions().await;
    }

    /// The caller left (BYE or CANCEL) during a Dial.
    pub(super) async fn caller_left(&mut self) {
        let bridged = self.dial.as_ref().and_then(|d| d.bridged);
        if bridged.is_some() {
            self.end_bridge(true).await;
            return;
        }
        if let Some(d) = &mut self.dial {
            d.arbiter.on_caller_hangup(now());
        }
        self.apply_actions().await;
    }

    pub(super) async fn bye_branch(&mut self, i: usize) {
        let host = self.ctx.cfg.sip_host.clone();
        let branch = self.ids.branch();
        let Some(d) = &mut self.dial else { return };
        let b = &mut d.branches[i];
        if let Some(dialog) = &mut b.dialog
            && let Ok(bye) = dialog.request(Method::Bye, b.peer.transport.as_str(), &host, &branch)
        {
            let _ = self.ctx.ep.send_request(bye, b.peer).await;
        }
        b.state = BranchState::Ended;
    }

    pub(super) async fn apply_actions(&mut self) {
        while let Some(action) = self.dial.as_mut().and_then(|d| d.arbiter.poll_action()) {
            match action {
                Action::Cancel(i) => {
                    let (cid, br) = {
                        let b = &self.dial.as_ref().expect("dial").branches[i];
                        (b.call_id.clone(), b.via_branch.clone())
                    };
                    let _ = self.ctx.ep.cancel(&cid, &br).await;
                }
                Action::AckThenBye(i) | Action::Bye(i) => self.bye_branch(i).await,
                Action::StartScreening(i) => self.start_screening(i),
                Action::Bridge(i) => self.bridge(i).await,
                Action::PlayRingback => self.play_ringback(),
                Action::PlayEarlyMedia(i) => self.play_early_media(i),
                Action::Finished(result) => self.dial_finished(result).await,
            }
        }
    }

    pub(super) fn play_ringback(&mut self) {
        let tone = self
            .dial
            .as_ref()
            .and_then(|d| d.spec.ring_tone)
            .and_then(|t| t.code().parse().ok())
            .unwrap_or(tandem_media::tones::RingTone::Us);
        if let Some(m) = &mut self.media {
            m.start_ringback(tone);
        }
    }

    pub(super) fn play_early_media(&mut self, i: usize) {
        if let (Some(parent), Some(d)) = (&mut self.media, &self.dial)
            && let Some(child) = &d.branches[i].media
        {
            parent.stop_ringback();
            child.leg.relay_to(Some(&parent.leg));
        }
    }

    pub(super) async fn bridge(&mut self, i: usize) {
        let t = now();
        if self.dial.as_ref().is_some_and(|d| d.spec.hangup_on_star) {
            self.ensure_dtmf();
        }
        if !self.answered && !self.caller_gone {
            if self.ctx.media.is_none() {
                // Signalling only: the caller gets the callee's own SDP answer.
                self.answer_sdp = self
                    .dial
                    .as_ref()
                    .and_then(|d| d.branches[i].answer_sdp.clone());
            }
            self.answer().await;
        }
        let Some(d) = &mut self.dial else { return };
        d.bridged = Some(i);
        d.bridged_at = Some(t);
        if d.spec.time_limit > 0 {
            d.time_limit = Some(t + Duration::from_secs(u64::from(d.spec.time_limit)));
        }
        let b = &mut d.branches[i];
        b.state = BranchState::Bridged;
        // The offer in the INVITE is answered; later requests need only its headers.
        b.invite.body = Vec::new();
        report(
            b,
            tandem_twiml::CallProgressEvent::Answered,
            tandem_webhook::CallStatus::InProgress,
            None,
        );
        if let (Some(parent), Some(child)) = (&mut self.media, &b.media) {
            parent.stop_ringback();
            tandem_rtp::bridge(&parent.leg, &child.leg);
        }
        if let (Some(child), Some(digits)) = (&b.media, &b.send_digits) {
            match digits_source(digits) {
                Ok(src) => child.leg.inject(src).detach(),
                Err(e) => tracing::warn!(error = %e, "sendDigits not played"),
            }
        }
        if self
            .dial
            .as_ref()
            .is_some_and(|d| d.recording.is_none() && d.rec_opts.is_some())
        {
            self.start_recording();
        }
        if let Some(d) = &self.dial
            && let (Some((_, taps)), Some(child)) = (&d.recording, &d.branches[i].media)
        {
            child.leg.set_tap(Some(taps.child.clone()));
        }
        tracing::info!(branch = i, "bridged");
    }

    /// The bridge ended: `by_us` when the caller left, timeLimit or hangupOnStar.
    pub(super) async fn end_bridge(&mut self, by_us: bool) {
        let Some(i) = self.dial.as_ref().and_then(|d| d.bridged) else {
            return;
        };
        if by_us {
            let live = self
                .dial
                .as_ref()
                .is_some_and(|d| d.branches[i].state == BranchState::Bridged);
            if live {
                self.bye_branch(i).await;
            }
        }
        let Some(d) = &mut self.dial else { return };
        d.branches[i].state = BranchState::Ended;
        let duration = d
            .bridged_at
            .map_or(0, |a| now().saturating_duration_since(a).as_secs());
        d.result = Some(DialCallStatus::Completed);
        let outcome = DialOutcome {
            status: DialCallStatus::Completed,
            call_sid: Some(d.branches[i].sid.clone()),
            duration: Some(duration as u32),
            bridged: true,
            recording_url: None,
        };
        self.finish_dial(outcome).await;
    }

    pub(super) async fn dial_finished(&mut self, result: crate::fork::DialResult) {
        let Some(d) = &mut self.dial else { return };
        if d.bridged.is_some() {
            // The bridge is up; the Dial ends when it does.
            return;
        }
        let status = result.status.dial_call_status();
        let outcome = DialOutcome {
            status,
            call_sid: d.branches.first().map(|b| b.sid.clone()),
            duration: Some(0),
            bridged: false,
            recording_url: None,
        };
        self.finish_dial(outcome).await;
    }

    /// Starts the Dial's recording: channel 1 the caller, channel 2 the callee.
    pub(super) fn start_recording(&mut self) {
        let Some(opts) = self.dial.as_ref().and_then(|d| d.rec_opts) else {
            return;
        };
        let Some(parent) = &self.media else {
            tracing::info!("no media on the caller's leg: nothing to record");
            return;
        };
        match self
            .ctx
            .recordings
            .start(&self.sid, opts, tokio::time::Instant::now())
        {
            Ok((session, taps)) => {
                let tap: Arc<dyn Tap> = match &self.dtmf {
                    Some(d) => fan_out(vec![d.clone() as Arc<dyn Tap>, taps.parent.clone()]),
                    None => taps.parent.clone(),
                };
                parent.leg.set_tap(Some(tap));
                let event = session.in_progress_event();
                let cb = self.dial.as_ref().and_then(|d| d.rec_callback.clone());
                if let Some((url, method, events)) = cb
                    && events.contains(&tandem_twiml::RecordingEvent::InProgress)
                    && let Err(e) = self
                        .parent_callbacks()
                        .enqueue_recording(url, method, &event)
                {
                    tracing::warn!(error = %e, "recording callback dropped");
                }
                tracing::info!(recording = %session.sid(), "recording started");
                if let Some(d) = &mut self.dial {
                    d.recording = Some((session, taps));
                }
            }
            Err(e) => tracing::warn!(error = %e, "recording not started"),
        }
    }

    /// The parent call's callback queue, opened on first use.
    pub(super) fn parent_callbacks(&mut self) -> &tandem_webhook::CallbackQueue {
        let sid = self.sid.clone();
        let ctx = self.ctx.clone();
        self.callbacks
            .get_or_insert_with(|| ctx.callbacks.open(sid))
    }

    pub(super) async fn finish_dial(&mut self, mut outcome: DialOutcome) {
        let Some(mut d) = self.dial.take() else {
            return;
        };
        self.ctx.metrics.dial_ended(webhook_status(outcome.status));
        if let Some((mut session, _)) = d.recording.take() {
            // The caller's leg goes back to DTMF only.
            if let Some(m) = &self.media {
                m.leg.set_tap(self.dtmf.clone().map(|t| t as Arc<dyn Tap>));
            }
            match session.stop(tokio::time::Instant::now()) {
                Ok(info) => {
                    self.ctx.metrics.recording_finished(info.status);
                    if info.status == tandem_webhook::RecordingStatus::Completed {
                        outcome.recording_url = Some(info.url.clone());
                    }
                    let wanted = match info.status {
                        tandem_webhook::RecordingStatus::Absent => {
                            tandem_twiml::RecordingEvent::Absent
                        }
                        _ => tandem_twiml::RecordingEvent::Completed,
                    };
                    if let Some((url, method, events)) = &d.rec_callback
                        && events.contains(&wanted)
                    {
                        let (url, method) = (url.clone(), *method);
                        let q = self.parent_callbacks();
                        if let Err(e) = q.enqueue_recording(url, method, &info.event()) {
                            tracing::warn!(error = %e, "recording callback dropped");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "recording not finished"),
            }
        }
        let t = now();
        for mut b in std::mem::take(&mut d.branches) {
            let status = match (b.answered_at, b.final_code) {
                (Some(_), _) => tandem_webhook::CallStatus::Completed,
                (None, Some(486 | 600)) => tandem_webhook::CallStatus::Busy,
                (None, Some(408 | 480 | 487)) | (None, None) => {
                    tandem_webhook::CallStatus::NoAnswer
                }
                (None, Some(_)) => tandem_webhook::CallStatus::Failed,
            };
            let duration = b
                .answered_at
                .map(|a| t.saturating_duration_since(a).as_secs());
            report(
                &b,
                tandem_twiml::CallProgressEvent::Completed,
                status,
                duration,
            );
            if let Some(m) = b.media.take() {
                m.close().await;
            }
            if matches!(b.state, BranchState::Calling | BranchState::Ringing) {
                // CANCELled but not yet final: its 200 may cross our CANCEL and must
                // still be ACKed then BYEd, so its Call-ID stays routed here.
                b.state = BranchState::Ended;
                b.screen = None;
                self.lingering.push((t + LINGER, b));
            } else {
                self.ctx.calls.remove(&b.call_id);
            }
        }
        if let Some(parent) = &mut self.media {
            parent.stop_ringback();
            parent.leg.relay_to(None);
        }
        tracing::info!(status = %outcome.status, "dial finished");
        self.feed(Event::DialOutcome(outcome));
        if self.caller_gone {
            self.finished = true;
        }
    }
}

/// How long a cancelled branch is waited for (64*T1 with the default T1).
const LINGER: Duration = Duration::from_secs(32);

/// The INVITE re-sent with credentials for a 401/407 (RFC 3261 §22.2): new
/// branch, next CSeq, Authorization or Proxy-Authorization.
fn authorized_invite(
    invite: &Request,
    challenge: &Response,
    credentials: Option<&(String, String)>,
    branch: &str,
    cnonce: &str,
) -> Result<Request, tandem_sip::auth::AuthError> {
    use tandem_sip::auth::{Challenge, DigestClient, DigestRequest};
    let proxy = challenge.status_code.code() == 407;
    let value = challenge
        .headers
        .iter()
        .find(|h| {
            if proxy {
                matches!(h, Header::ProxyAuthenticate(_))
            } else {
                matches!(h, Header::WwwAuthenticate(_))
            }
        })
        .map(tandem_sip::message::header_value)
        .unwrap_or("");
    let parsed = Challenge::parse(value)?;
    let (user, pass) = credentials
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .unwrap_or(("", ""));
    let uri = invite.uri.to_string();
    let creds = DigestClient::new().authorize(
        &parsed,
        &DigestRequest {
            method: "INVITE",
            uri: &uri,
            body: &invite.body,
        },
        user,
        pass,
        cnonce,
    )?;
    let mut next = invite.clone();
    let seq = next.headers.cseq().map_or(1, |c| c.0) + 1;
    let mut via_done = false;
    for h in next.headers.iter_mut() {
        match h {
            Header::Via(_) if !via_done => {
                via_done = true;
                let v = tandem_sip::message::header_value(h);
                let rewritten = match v.split_once(";branch=") {
                    Some((head, rest)) => {
                        let tail = rest
                            .split_once(';')
                            .map_or(String::new(), |(_, t)| format!(";{t}"));
                        format!("{head};branch={branch}{tail}")
                    }
                    None => format!("{v};branch={branch}"),
                };
                *h = Header::Via(rewritten.into());
            }
            Header::CSeq(_) => *h = Header::CSeq(format!("{seq} INVITE").into()),
            _ => {}
        }
    }
    next.headers
        .retain(|h| !matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)));
    let value = creds.to_string();
    next.headers.push(if proxy {
        Header::ProxyAuthorization(value.into())
    } else {
        Header::Authorization(value.into())
    });
    Ok(next)
}

/// Where a branch's INVITE goes.
#[derive(Debug)]
struct Target {
    uri: String,
    peer: Peer,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
}

/// Resolves a SIP URI to the peer to send to (`transport=tcp` honoured, port 5060 by default).
async fn resolve(
    uri: &str,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
) -> Result<Target, u16> {
    let Some((host, port)) = uri_host_port(uri) else {
        tracing::warn!(%uri, "destination URI has no host");
        return Err(400);
    };
    let transport = match uri_param(uri, "transport").flatten() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    let port = port.unwrap_or(5060);
    let Some(addr) = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
    else {
        tracing::warn!(%uri, "cannot resolve the destination");
        return Err(404);
    };
    Ok(Target {
        uri: uri.to_owned(),
        peer: Peer { transport, addr },
        headers,
        credentials,
    })
}

/// The same `DialCallStatus` in the webhook crate's vocabulary.
fn webhook_status(s: DialCallStatus) -> tandem_webhook::DialCallStatus {
    match s {
        DialCallStatus::Completed => tandem_webhook::DialCallStatus::Completed,
        DialCallStatus::Answered => tandem_webhook::DialCallStatus::Answered,
        DialCallStatus::Busy => tandem_webhook::DialCallStatus::Busy,
        DialCallStatus::NoAnswer => tandem_webhook::DialCallStatus::NoAnswer,
        DialCallStatus::Failed => tandem_webhook::DialCallStatus::Failed,
        DialCallStatus::Canceled => tandem_webhook::DialCallStatus::Canceled,
    }
}
