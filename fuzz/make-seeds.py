#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from files already in the
repository (standard library only, deterministic):

  sip_message  RFC 4475 torture messages (fixtures/sip/torture/*.sip, a
               selection) and messages of the SIPp scenarios
               (fixtures/sipp/**/*.xml, CDATA with SIPp's [keywords] filled in)
  sdp          the endpoint samples of crates/tandem-rtp/tests/sdp_samples/mod.rs
               and the SDP bodies of the SIPp scenarios
  rtp          RFC 4733 packets of fixtures/sipp/engine/dtmf-pcap.py, G.711
               packets with payload from fixtures/audio/sweep-8khz.ul, the
               CSRC/extension/padding packet of tandem-rtp's unit test, RTCP
  twiml        fixtures/twiml/*.xml and the SIPp suite's TwiML and screening
               documents (fixtures/sipp/engine/{twiml,web})
  config       configs/*.toml, configs/examples/*.toml, and the configs of
               crates/tandem/src/config/tests.rs and crates/tandem/tests/cli.rs

    python3 fuzz/make-seeds.py
"""

import hashlib
import importlib.util
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"

# SIPp keywords, filled in as SIPp would for one call on loopback.
SIPP = {
    "service": "+15550001000",
    "remote_ip": "127.0.0.1",
    "remote_port": "5060",
    "local_ip": "127.0.0.1",
    "local_port": "5070",
    "transport": "UDP",
    "branch": "z9hG4bK-4242-1-0",
    "branch-3": "z9hG4bK-4242-1-3",
    "branch-5": "z9hG4bK-4242-1-5",
    "pid": "4242",
    "call_number": "1",
    "call_id": "1-4242@127.0.0.1",
    "media_port": "6000",
    "media_ip_type": "4",
    "media_ip": "127.0.0.1",
    "local_ip_type": "4",
    "peer_tag_param": ";tag=as5f3b1c2d",
    "last_Via:": "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-7a1f;received=127.0.0.1;rport=5060",
    "last_From:": "From: <sip:+15551112222@127.0.0.1:5060>;tag=tandem-9c1d",
    "last_To:": "To: <sip:callee@127.0.0.1:5070>",
    "last_Call-ID:": "Call-ID: tandem-call-0001@127.0.0.1",
    "last_CSeq:": "CSeq: 1 INVITE",
    "last_Contact:": "Contact: <sip:carrier@127.0.0.1:5070>",
    "authentication": (
        'Authorization: Digest username="carol", realm="tandem", '
        'nonce="00000000655c3a80000000000000002a6f1b2c3d4e5f60718293a4b5c6d7e8f9", '
        'uri="sip:+15550001000@127.0.0.1:5060", response="6629fae49393a05397450978507c4ef1", '
        'algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001'
    ),
}

SIP_TORTURE = [
    "wsinv", "intmeth", "esc01", "esc02", "escnull", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason", "badinv01", "clerr",
    "ncl", "mcl01", "bcast", "bext01", "cparam01", "regaut01", "inv2543", "badvers",
    "mismatch01", "quotbal", "ltgtruri", "unkscm", "zeromf", "scalar02", "multi01",
]
SIPP_MESSAGES = 16


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def sipp_messages():
    """Every <send> CDATA of the SIPp scenarios, as SIPp would send it."""
    out = []
    for path in sorted((ROOT / "fixtures" / "sipp").rglob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        if root.tag != "scenario":
            continue
        for send in root.iter("send"):
            text = send.text or ""
            lines = [l.strip() for l in text.strip("\n").split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            if not lines:
                continue
            try:
                blank = lines.index("")
                head, body = lines[:blank], lines[blank + 1:]
            except ValueError:
                head, body = lines, []
            fill = lambda l: re.sub(r"\[([A-Za-z_0-9:+-]+)\]", lambda m: SIPP.get(m.group(1), m.group(0)), l)
            body_b = "".join(fill(l) + "\r\n" for l in body).encode()
            head_s = "\r\n".join(fill(l) for l in head).replace("[len]", str(len(body_b)))
            out.append((path.stem, head_s.encode() + b"\r\n\r\n" + body_b, body_b))
    return out


def rust_str_consts(path):
    """`pub const NAME: &str = "...";` and `r#"..."#` literals of a Rust file."""
    src = path.read_text()
    out = {}
    for m in re.finditer(r'const (\w+): &str = "((?:[^"\\]|\\.)*)";', src, re.S):
        s = m.group(2)
        s = re.sub(r"\\\n\s*", "", s)
        s = s.replace("\\r", "\r").replace("\\n", "\n").replace('\\"', '"').replace("\\t", "\t").replace("\\\\", "\\")
        out[m.group(1)] = s
    for m in re.finditer(r'const (\w+): &str = r#"(.*?)"#;', src, re.S):
        out[m.group(1)] = m.group(2)
    return out


def sip_and_sdp():
    torture = ROOT / "fixtures" / "sip" / "torture"
    for name in SIP_TORTURE:
        write("sip_message", f"torture-{name}.sip", (torture / f"{name}.sip").read_bytes())
    seen, picked, bodies = set(), [], {}
    for stem, msg, body in sipp_messages():
        h = hashlib.sha1(msg).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        start = msg.split(b"\r\n", 1)[0].split(b" ")
        kind = start[0] if not msg.startswith(b"SIP/") else start[1]
        picked.append((kind, stem, msg))
        if body.startswith(b"v=0"):
            bodies.setdefault(hashlib.sha1(body).hexdigest(), (stem, body))
    # One message per start-line kind first.
    kinds, chosen = set(), []
    for kind, stem, msg in picked:
        if kind not in kinds:
            kinds.add(kind)
            chosen.append((kind, stem, msg))
    # Then the ones carrying digest credentials, then the rest in order.
    for item in [i for i in picked if b"Authorization:" in i[2]] + picked:
        if len(chosen) >= SIPP_MESSAGES:
            break
        if item not in chosen:
            chosen.append(item)
    for i, (kind, stem, msg) in enumerate(chosen[:SIPP_MESSAGES]):
        write("sip_message", f"sipp-{i:02}-{stem}-{kind.decode().lower()}.sip", msg)

    samples = rust_str_consts(ROOT / "crates" / "tandem-rtp" / "tests" / "sdp_samples" / "mod.rs")
    for name, text in samples.items():
        write("sdp", f"sample-{name.lower()}.sdp", text.encode())
    for i, (stem, body) in enumerate(list(bodies.values())[:8]):
        write("sdp", f"sipp-{i:02}-{stem}.sdp", body)


def rtp():
    spec = importlib.util.spec_from_file_location("dtmf", ROOT / "fixtures" / "sipp" / "engine" / "dtmf-pcap.py")
    dtmf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dtmf)
    events = [pkt for _, pkt in dtmf.packets()]
    write("rtp", "rfc4733-start.rtp", events[0])
    write("rtp", "rfc4733-end.rtp", events[-1])
    # The whole event as a sequence: one length byte before each packet.
    write("rtp", "rfc4733-sequence.bin", b"".join(bytes([len(p)]) + p for p in events))
    ulaw = (ROOT / "fixtures" / "audio" / "sweep-8khz.ul").read_bytes()
    pcmu = struct.pack("!BBHII", 0x80, 0x80 | 0, 1, 160, 0x11223344) + ulaw[:160]
    pcma = struct.pack("!BBHII", 0x80, 8, 2, 320, 0x11223344) + ulaw[160:320]
    write("rtp", "pcmu.rtp", pcmu)
    write("rtp", "pcma.rtp", pcma)
    # tandem-rtp's csrc_extension_and_padding_are_skipped packet.
    p = bytes([0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1])
    p += bytes([9, 9, 9, 9]) + bytes([0xBE, 0xDE, 0, 1, 1, 2, 3, 4]) + bytes([7] * 10) + bytes([0, 0, 3])
    write("rtp", "csrc-ext-padding.rtp", p)
    # RTCP: a sender report with one report block, and a compound SR + SDES.
    sr = struct.pack("!BBHI", 0x81, 200, 12, 0x11223344) + struct.pack("!IIIII", 0xE8A3B1C2, 0x10000000, 160, 10, 1600)
    sr += struct.pack("!IIIIII", 0x55667788, 0, 4711, 0, 0, 0)
    sdes = struct.pack("!BBHI", 0x81, 202, 4, 0x11223344) + bytes([1, 7]) + b"tandem!" + bytes([0, 0, 0])
    write("rtp", "rtcp-sr.rtcp", sr)
    write("rtp", "rtcp-compound.rtcp", sr + sdes)
    write("rtp", "mixed-sequence.bin", b"".join(bytes([len(p)]) + p for p in [pcmu[:172], events[0], sr, events[3], events[-1]]))


def twiml():
    paths = sorted((ROOT / "fixtures" / "twiml").glob("*.xml"))
    paths += sorted((ROOT / "fixtures" / "sipp" / "engine" / "twiml").glob("*.xml"))
    paths += sorted((ROOT / "fixtures" / "sipp" / "engine" / "web").rglob("*.xml"))
    seen = set()
    for path in paths:
        text = path.read_text()
        text = text.replace("@WEB@", "http://127.0.0.1:8000").replace("@A@", "5071").replace("@B@", "5072").replace("@C@", "5073")
        h = hashlib.sha1(text.encode()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        rel = path.relative_to(ROOT / "fixtures").with_suffix("")
        write("twiml", "-".join(rel.parts) + ".xml", text.encode())


def config():
    for path in [ROOT / "configs" / "tandem.toml", *sorted((ROOT / "configs" / "examples").glob("*.toml"))]:
        write("config", path.name, path.read_bytes())
    base = rust_str_consts(ROOT / "crates" / "tandem" / "src" / "config" / "tests.rs")["BASE"]
    write("config", "tests-base.toml", base.encode())
    eph = rust_str_consts(ROOT / "crates" / "tandem" / "tests" / "cli.rs")["EPHEMERAL"]
    write("config", "cli-ephemeral.toml", eph.encode())


def main():
    for d in OUT.glob("*"):
        for f in d.glob("*"):
            f.unlink()
    sip_and_sdp()
    rtp()
    twiml()
    config()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} files")


if __name__ == "__main__":
    main()
