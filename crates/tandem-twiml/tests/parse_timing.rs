//! Microbenchmark (ignored by default): parse time of a `<Dial>` with ten
//! nouns. Run with
//! `cargo test -p tandem-twiml --release --test parse_timing -- --ignored --nocapture`.

use std::hint::black_box;
use std::time::Instant;

use tandem_twiml::{Verb, parse};

fn ten_noun_dial() -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>\n  <Dial action=\"/after\" timeout=\"25\" record=\"record-from-answer-dual\" answerOnBridge=\"true\">\n",
    );
    for i in 0..4 {
        xml.push_str(&format!(
            "    <Number statusCallback=\"https://cb.example/s\" statusCallbackEvent=\"initiated ringing answered completed\" sendDigits=\"ww{i}\">(415) 555-120{i}</Number>\n"
        ));
    }
    for i in 0..3 {
        xml.push_str(&format!("    <Client url=\"/screen\"><Identity>agent_{i}</Identity><Parameter name=\"k\" value=\"v\"/></Client>\n"));
    }
    for i in 0..3 {
        xml.push_str(&format!("    <Sip username=\"u\" password=\"p\">sip:desk{i}@pbx.example.com;transport=tcp?X-Team=sales</Sip>\n"));
    }
    xml.push_str("  </Dial>\n  <Say>Nobody answered.</Say>\n</Response>\n");
    xml
}

#[test]
#[ignore = "timing loop; run explicitly with --ignored --nocapture"]
fn parse_ten_noun_dial_timing() {
    let xml = ten_noun_dial();
    let doc = parse(&xml).unwrap_or_else(|e| panic!("{e}"));
    let Some(Verb::Dial(dial)) = doc.verbs.first() else {
        panic!("not a dial")
    };
    assert_eq!(dial.nouns.len(), 10);
    let iterations = 20_000u32;
    for _ in 0..1000 {
        black_box(parse(black_box(&xml)).is_ok());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(parse(black_box(&xml)).is_ok());
    }
    let per = start.elapsed() / iterations;
    eprintln!(
        "parse of a 10-noun <Dial> ({} bytes): {per:?} per document over {iterations} runs",
        xml.len()
    );
}
