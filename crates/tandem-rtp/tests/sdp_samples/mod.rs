//! Session descriptions in the style of real endpoints, written out by hand
//! from their usual output (addresses and ids changed).
#![allow(dead_code, reason = "each test binary uses a different subset")]

/// SIPp's built-in `uac` scenario.
pub const SIPP: &str = "v=0\r
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 6000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
";

/// Asterisk (chan_pjsip) offer: G.711 first, GSM, G.726, telephone-event.
pub const ASTERISK: &str = "v=0\r
o=- 1650371203 1650371203 IN IP4 192.168.1.10\r
s=Asterisk\r
c=IN IP4 192.168.1.10\r
t=0 0\r
m=audio 17284 RTP/AVP 0 8 3 111 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:111 G726-32/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=maxptime:150\r
a=sendrecv\r
";

/// FreeSWITCH offer: Opus first, telephone-event at 48 kHz and 8 kHz, CN, a=rtcp.
pub const FREESWITCH: &str = "v=0\r
o=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.5\r
s=FreeSWITCH\r
c=IN IP4 10.0.0.5\r
t=0 0\r
m=audio 24580 RTP/AVP 102 9 0 8 103 101 13\r
a=rtpmap:102 opus/48000/2\r
a=fmtp:102 useinbandfec=1; maxplaybackrate=16000\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:103 telephone-event/48000\r
a=fmtp:103 0-16\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=rtpmap:13 CN/8000\r
a=ptime:20\r
a=rtcp:24581 IN IP4 10.0.0.5\r
";

/// baresip offer: Opus stereo, media-level b=, rtcp-rsize, ssrc, mid.
pub const BARESIP: &str = "v=0\r
o=- 1937617414 3151238567 IN IP4 192.168.0.15\r
s=-\r
c=IN IP4 192.168.0.15\r
t=0 0\r
m=audio 10950 RTP/AVP 96 0 8 101\r
b=AS:128\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 stereo=1;sprop-stereo=1\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=rtcp-rsize\r
a=ssrc:2839475613 cname:f1e0b2c3-8a2b-4b0a-9a43-1d2f5e6a7b8c\r
a=sendrecv\r
a=label:1\r
a=mid:0\r
";

/// linphone offer: session b= and rtcp-xr, speex, G.729 annexb, telephone-event
/// at three rates, and a video stream.
pub const LINPHONE: &str = "v=0\r
o=alice 3316 1431 IN IP4 192.168.1.20\r
s=Talk\r
c=IN IP4 192.168.1.20\r
b=AS:380\r
t=0 0\r
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r
a=rtpmap:96 opus/48000/2\r
a=fmtp:96 useinbandfec=1\r
a=rtpmap:97 speex/16000\r
a=fmtp:97 vbr=on\r
a=rtpmap:98 speex/8000\r
a=fmtp:98 vbr=on\r
a=fmtp:18 annexb=yes\r
a=rtpmap:101 telephone-event/48000\r
a=rtpmap:99 telephone-event/16000\r
a=rtpmap:100 telephone-event/8000\r
a=rtcp-fb:* trr-int 1000\r
a=rtcp-fb:* ccm tmmbr\r
m=video 9078 RTP/AVP 96\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:* trr-int 1000\r
a=rtcp-fb:96 nack pli\r
";

/// An IPv6 offer (a PBX on a v6 trunk).
pub const IPV6: &str = "v=0\r
o=- 4711 4711 IN IP6 2001:db8::10\r
s=-\r
c=IN IP6 2001:db8::10\r
t=0 0\r
m=audio 30000 RTP/AVP 8 0 101\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
";

/// Hold, RFC 3264 style (Asterisk, most phones).
pub const HOLD_SENDONLY: &str = "v=0\r
o=- 1650371203 1650371204 IN IP4 192.168.1.10\r
s=Asterisk\r
c=IN IP4 192.168.1.10\r
t=0 0\r
m=audio 17284 RTP/AVP 0 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=sendonly\r
";

/// Hold, RFC 2543 style (old gateways, SIPp's hold scenarios).
pub const HOLD_ZERO_ADDR: &str = "v=0\r
o=user1 53655765 2353687638 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 0.0.0.0\r
t=0 0\r
m=audio 6000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
";

/// Hold with both directions off.
pub const HOLD_INACTIVE: &str = "v=0\r
o=- 1 2 IN IP4 10.0.0.7\r
s=-\r
c=IN IP4 10.0.0.7\r
t=0 0\r
m=audio 5004 RTP/AVP 0 8\r
a=inactive\r
";

/// An SRTP-only offer (SDES, one AES_CM_128_HMAC_SHA1_80 key).
pub const SRTP_ONLY: &str = "v=0\r
o=- 1 1 IN IP4 10.0.0.8\r
s=-\r
c=IN IP4 10.0.0.8\r
t=0 0\r
m=audio 5004 RTP/SAVP 0\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r
";

/// A G.729-only offer (no codec in common).
pub const G729_ONLY: &str = "v=0\r
o=- 1 1 IN IP4 10.0.0.9\r
s=-\r
c=IN IP4 10.0.0.9\r
t=0 0\r
m=audio 5004 RTP/AVP 18\r
a=rtpmap:18 G729/8000\r
a=fmtp:18 annexb=no\r
";

/// Every sample, named.
pub const ALL: &[(&str, &str)] = &[
    ("sipp", SIPP),
    ("asterisk", ASTERISK),
    ("freeswitch", FREESWITCH),
    ("baresip", BARESIP),
    ("linphone", LINPHONE),
    ("ipv6", IPV6),
    ("hold-sendonly", HOLD_SENDONLY),
    ("hold-zero-addr", HOLD_ZERO_ADDR),
    ("hold-inactive", HOLD_INACTIVE),
    ("srtp", SRTP_ONLY),
    ("g729", G729_ONLY),
];
