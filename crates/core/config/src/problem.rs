//! A problem found in a configuration: where it is (a [`Field`], the path of keys and array
//! indices into the file) and what is wrong. The field lets `check-config` find the line, and
//! the settings API and forms put the message next to the input it concerns.

use std::fmt;

/// One step of a [`Field`]: a key of a table or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value is in the file: `dhcp.range`, `hosts[1].cmdline` (indices from 0). Empty: the
/// file as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Field(Vec<Segment>);

impl Field {
    /// A top-level key (`dhcp`).
    pub fn key(key: &str) -> Field {
        Field(vec![Segment::Key(key.to_owned())])
    }

    /// A key below this one (`dhcp` -> `dhcp.range`).
    pub fn then(mut self, key: &str) -> Field {
        self.0.push(Segment::Key(key.to_owned()));
        self
    }

    /// An element of this array (`hosts` -> `hosts[1]`).
    pub fn at(mut self, index: usize) -> Field {
        self.0.push(Segment::Index(index));
        self
    }

    /// `inner` below this field (`machines[2]` + `hostname`).
    pub fn join(mut self, inner: &Field) -> Field {
        self.0.extend(inner.0.iter().cloned());
        self
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The keys of the field, indices left out: `hosts[1].cmdline` -> `["hosts", "cmdline"]`.
    pub fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem: where, and a sentence that says what is wrong and what to do (without the
/// field's name: [`Problem`]'s `Display` puts it in front, a form shows the message next to
/// its input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub message: String,
}

impl Problem {
    pub fn new(field: Field, message: impl Into<String>) -> Problem {
        Problem {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.segments().is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_print_as_paths() {
        let f = Field::key("hosts").at(1).then("cmdline");
        assert_eq!(f.to_string(), "hosts[1].cmdline");
        assert_eq!(f.keys(), ["hosts", "cmdline"]);
        let p = Problem::new(Field::key("dhcp").then("range"), "is backwards");
        assert_eq!(p.to_string(), "dhcp.range: is backwards");
        assert_eq!(Problem::new(Field::default(), "x").to_string(), "x");
    }
}
