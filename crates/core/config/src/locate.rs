//! Where a [`Field`] is in the file's text: its line, from the TOML parser's spans. A field the
//! file does not spell out (a default, a key that is missing) is placed at the nearest table
//! or entry that holds it, so every problem gets a line.

use toml::de::{DeTable, DeValue};

use crate::problem::{Field, Segment};

/// A config file's text, parsed once to find lines.
#[derive(Debug)]
pub struct Lines<'i> {
    text: &'i str,
    root: Option<toml::Spanned<DeTable<'i>>>,
}

impl<'i> Lines<'i> {
    pub fn new(text: &'i str) -> Lines<'i> {
        Lines {
            text,
            root: DeTable::parse(text).ok(),
        }
    }

    /// The 1-based line of `field` (or of the nearest enclosing table or entry the file spells
    /// out); `None` when the file says nothing of its section.
    pub fn line(&self, field: &Field) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut table: &DeTable<'_> = root.get_ref();
        let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
        let mut best: Option<usize> = None;
        for segment in field.segments() {
            let next = match (segment, value.map(|v| v.get_ref())) {
                (Segment::Key(k), None | Some(DeValue::Table(_))) => {
                    if let Some(DeValue::Table(t)) = value.map(|v| v.get_ref()) {
                        table = t;
                    }
                    table
                        .iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                        .map(|(key, v)| (key.span().start, v))
                }
                (Segment::Index(i), Some(DeValue::Array(items))) => {
                    items.get(*i).map(|v| (v.span().start, v))
                }
                // `flakes.url` without an index: the first entry.
                (Segment::Key(_), Some(DeValue::Array(items))) => {
                    items.first().map(|v| (v.span().start, v))
                }
                _ => None,
            };
            let Some((at, v)) = next else { break };
            best = Some(at);
            value = Some(v);
        }
        best.map(|offset| self.line_at(offset))
    }

    /// The 1-based line of a byte offset.
    pub fn line_at(&self, offset: usize) -> usize {
        line_at(self.text, offset)
    }
}

/// The 1-based line of a byte offset into `text`.
pub fn line_at(text: &str, offset: usize) -> usize {
    let upto = text.get(..offset).unwrap_or(text);
    upto.bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# a comment
[lan]
interface = "eth0"

[dhcp]
mode = "router"
range = ["10.0.0.9", "10.0.0.1"]

[[dhcp.reservations]]
mac = "52:54:00:00:00:01"
address = "10.0.0.5"

[[hosts]]
name = "a"
kernel = "/k"
initrd = "/i"

[[hosts]]
name = "b"
kernel = "/k"
initrd = "/i"
cmdline = "x || y"
"#;

    #[test]
    fn fields_have_the_lines_they_are_written_on() {
        let lines = Lines::new(TEXT);
        let at = |f: Field| lines.line(&f);
        assert_eq!(at(Field::key("lan").then("interface")), Some(3));
        assert_eq!(at(Field::key("dhcp").then("range")), Some(7));
        assert_eq!(
            at(Field::key("dhcp")
                .then("reservations")
                .at(0)
                .then("address")),
            Some(11)
        );
        assert_eq!(at(Field::key("hosts").at(1).then("cmdline")), Some(22));
        assert_eq!(at(Field::key("hosts").at(1).then("name")), Some(19));
    }

    #[test]
    fn an_unwritten_field_is_placed_at_what_holds_it() {
        let lines = Lines::new(TEXT);
        // The key is missing: the section's header line.
        let lease = lines.line(&Field::key("dhcp").then("lease_time")).unwrap();
        assert!((5..=6).contains(&lease), "{lease}");
        let desc = lines
            .line(&Field::key("hosts").at(0).then("description"))
            .unwrap();
        assert!((13..=14).contains(&desc), "{desc}");
        // A section the file does not have.
        assert_eq!(lines.line(&Field::key("menu").then("default")), None);
        assert_eq!(Lines::new("not toml [").line(&Field::key("lan")), None);
    }
}
