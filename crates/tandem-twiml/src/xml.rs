//! Well-formed XML to a small element tree that keeps byte offsets, built on
//! quick-xml; TwiML meaning is given to it by `parse`.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::error::{LineIndex, ParseError};

/// Deepest nesting accepted (`Response > Gather > Say > SSML` needs a few).
pub(crate) const MAX_DEPTH: usize = 16;

/// One attribute with the offset of its name.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) offset: usize,
}

/// A node of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A child element.
    Element(Element),
    /// Text or CDATA, unescaped; `offset` is where the raw text starts.
    Text { text: String, offset: usize },
}

/// An element with its attributes and children.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub(crate) name: String,
    /// Offset of the `<` that opens the element.
    pub(crate) offset: usize,
    pub(crate) attrs: Vec<Attr>,
    pub(crate) children: Vec<Node>,
}

impl Element {
    /// Child elements, in order.
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text { .. } => None,
        })
    }

    /// The concatenated text of the direct text children, trimmed, and the
    /// offset of its first non-blank character (the element's offset when
    /// there is no text).
    pub(crate) fn text(&self) -> (String, usize) {
        let mut out = String::new();
        let mut first = None;
        for node in &self.children {
            if let Node::Text { text, offset } = node {
                if first.is_none()
                    && let Some(lead) = text.find(|c: char| !c.is_whitespace())
                {
                    first = Some(offset + lead);
                }
                out.push_str(text);
            }
        }
        (out.trim().to_owned(), first.unwrap_or(self.offset))
    }

    /// All text below this element (SSML inside `<Say>`), whitespace collapsed.
    pub(crate) fn deep_text(&self) -> String {
        fn walk(e: &Element, out: &mut String) {
            for node in &e.children {
                match node {
                    Node::Text { text, .. } => {
                        out.push(' ');
                        out.push_str(text);
                    }
                    Node::Element(child) => walk(child, out),
                }
            }
        }
        let mut raw = String::new();
        walk(self, &mut raw);
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Parses `source` into its root element. `source` may start with a BOM.
pub(crate) fn parse_tree(source: &str, lines: &LineIndex<'_>) -> Result<Element, ParseError> {
    let bom = if source.starts_with('\u{feff}') { 3 } else { 0 };
    let body = &source[bom..];
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let xml_err = |message: String, offset: usize| ParseError::Xml {
        message,
        at: lines.position(offset + bom),
    };
    loop {
        let before = offset_of(reader.buffer_position());
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(xml_err(e.to_string(), offset_of(reader.error_position()))),
        };
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                return Err(xml_err(format!("second root element <{name}>"), before));
            }
            Event::Start(start) => {
                let element = open(&start, before + bom, lines)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep {
                        element: element.name,
                        at: lines.position(element.offset),
                        limit: MAX_DEPTH,
                    });
                }
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = open(&start, before + bom, lines)?;
                attach(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                // quick-xml has already checked that the end name matches.
                if let Some(element) = stack.pop() {
                    attach(&mut stack, &mut root, element);
                }
            }
            Event::Text(text) => {
                let unescaped = text
                    .unescape()
                    .map_err(|e| xml_err(e.to_string(), before))?
                    .into_owned();
                push_text(&mut stack, unescaped, before + bom, lines)?;
            }
            Event::CData(data) => {
                let raw = String::from_utf8_lossy(&data).into_owned();
                // Skip the "<![CDATA[" marker so offsets point at the text.
                push_text(&mut stack, raw, before + bom + 9, lines)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(ParseError::Xml {
            message: format!("<{}> is never closed", open.name),
            at: lines.position(source.len()),
        });
    }
    root.ok_or(ParseError::Empty)
}

fn offset_of(pos: u64) -> usize {
    usize::try_from(pos).unwrap_or(usize::MAX)
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(
    stack: &mut [Element],
    text: String,
    offset: usize,
    lines: &LineIndex<'_>,
) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(Node::Text { text, offset });
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => {
            let lead = text.find(|c: char| !c.is_whitespace()).unwrap_or(0);
            Err(ParseError::Xml {
                message: format!("text {:?} outside the root element", text.trim()),
                at: lines.position(offset + lead),
            })
        }
    }
}

fn open(
    start: &BytesStart<'_>,
    offset: usize,
    lines: &LineIndex<'_>,
) -> Result<Element, ParseError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let raw: &[u8] = start;
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| ParseError::Xml {
            message: e.to_string(),
            at: lines.position(offset),
        })?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| ParseError::Xml {
                message: format!("attribute {key}: {e}"),
                at: lines.position(offset),
            })?
            .into_owned();
        let at = offset + 1 + find_attr(raw, key.as_bytes()).unwrap_or(0);
        attrs.push(Attr {
            name: key,
            value,
            offset: at,
        });
    }
    Ok(Element {
        name,
        offset,
        attrs,
        children: Vec::new(),
    })
}

/// Offset of attribute `key` inside the raw tag content (after the `<`),
/// skipping quoted values.
fn find_attr(raw: &[u8], key: &[u8]) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    let mut quote: Option<u8> = None;
    for (i, &b) in raw.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None => {
                let before_ok = i > 0 && raw.get(i - 1).is_some_and(u8::is_ascii_whitespace);
                if before_ok && raw.get(i..i + key.len()) == Some(key) {
                    let rest = raw.get(i + key.len()..).unwrap_or_default();
                    let after_ok = rest
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        .is_some_and(|b| *b == b'=');
                    if after_ok {
                        return Some(i);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(src: &str) -> Result<Element, ParseError> {
        parse_tree(src, &LineIndex::new(src))
    }

    #[test]
    fn keeps_offsets_of_elements_and_attributes() {
        let src = "<?xml version=\"1.0\"?>\n<Response>\n  <Dial timeout=\"10\"  record = 'true'>x</Dial>\n</Response>";
        let root = tree(src).expect("parses");
        let dial = root.elements().next().expect("dial");
        assert_eq!(&src[dial.offset..dial.offset + 5], "<Dial");
        assert_eq!(
            &src[dial.attrs[0].offset..dial.attrs[0].offset + 7],
            "timeout"
        );
        assert_eq!(
            &src[dial.attrs[1].offset..dial.attrs[1].offset + 6],
            "record"
        );
        assert_eq!(dial.attrs[1].value, "true");
        assert_eq!(dial.text().0, "x");
    }

    #[test]
    fn attribute_named_inside_another_value_is_found_at_its_name() {
        let raw = b"Number url=\"a method=b\" method=\"GET\"";
        assert_eq!(find_attr(raw, b"method"), Some(24));
    }

    #[test]
    fn unescapes_text_and_reports_unclosed_elements() {
        let root = tree("<Response><Sip>a&amp;b</Sip></Response>").expect("parses");
        assert_eq!(root.elements().next().expect("sip").text().0, "a&b");
        assert!(matches!(
            tree("<Response><Say>"),
            Err(ParseError::Xml { .. })
        ));
        assert!(matches!(tree("  "), Err(ParseError::Empty)));
        assert!(matches!(
            tree("<Response/><Response/>"),
            Err(ParseError::Xml { .. })
        ));
    }

    #[test]
    fn rejects_excessive_nesting() {
        let src = "<a>".repeat(MAX_DEPTH + 1);
        assert!(matches!(tree(&src), Err(ParseError::TooDeep { .. })));
    }
}
