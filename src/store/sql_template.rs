//! Operator-written SQL with named parameters (`:to`, `:user`, `:phones`…), turned into each
//! backend's bind markers.
//!
//! Owns: reading the text once at start-up (parameters inside quoted strings and identifiers,
//! and PostgreSQL `::` casts, are left alone), refusing names the query may not use, and writing
//! the text with `?` (SQLite, MySQL) or `$n` (PostgreSQL) markers, a list parameter expanded to
//! as many markers as it has values. Flexisip's `:from`/`:to`/`:phones` requests are the
//! precedent. Must not: run anything.

/// How a backend writes its bind markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markers {
    /// `?` for every value (SQLite, MySQL).
    Question,
    /// `$1`, `$2`… (PostgreSQL).
    Dollar,
}

/// Why an operator's query was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SqlTemplateError {
    /// A `:name` the query may not use.
    #[error("unknown parameter `:{name}` (only {allowed} exist)")]
    UnknownParameter {
        /// The name as written.
        name: String,
        /// The names that exist, for the message.
        allowed: String,
    },
    /// A quote is never closed.
    #[error("unterminated quoted string or identifier")]
    Unterminated,
}

/// One piece of the query: text, or the marker(s) of a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<P> {
    Text(String),
    Param(P),
}

/// A query read once, written for any backend on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTemplate<P> {
    pieces: Vec<Piece<P>>,
}

impl<P: Copy + PartialEq> SqlTemplate<P> {
    /// Reads `sql`, whose parameters are the `names` (matched without regard to case).
    pub fn parse(sql: &str, names: &[(&str, P)]) -> Result<Self, SqlTemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::with_capacity(sql.len());
        let mut chars = sql.char_indices().peekable();
        let mut quote: Option<char> = None;
        let mut previous = '\0';
        while let Some((i, c)) = chars.next() {
            if let Some(open) = quote {
                // A doubled quote inside a literal closes and reopens it: same result.
                if c == open {
                    quote = None;
                }
            } else if c == '\'' || c == '"' {
                quote = Some(c);
            } else if c == ':'
                && previous != ':'
                && chars.peek().is_some_and(|(_, n)| is_name_start(*n))
            {
                let rest = &sql[i + 1..];
                let len = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                let Some(&(_, param)) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
                else {
                    return Err(SqlTemplateError::UnknownParameter {
                        name: name.to_owned(),
                        allowed: names
                            .iter()
                            .map(|(n, _)| format!(":{n}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Param(param));
                for _ in 0..len {
                    chars.next();
                }
                previous = 'x';
                continue;
            }
            text.push(c);
            previous = c;
        }
        if quote.is_some() {
            return Err(SqlTemplateError::Unterminated);
        }
        pieces.push(Piece::Text(text));
        pieces.retain(|p| !matches!(p, Piece::Text(t) if t.is_empty()));
        Ok(Self { pieces })
    }

    /// The parameters in the order their markers appear.
    pub fn params(&self) -> impl Iterator<Item = P> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(p) => Some(*p),
            Piece::Text(_) => None,
        })
    }

    /// Whether the query uses `param`.
    pub fn uses(&self, param: P) -> bool {
        self.params().any(|p| p == param)
    }

    /// The text with `markers`; a parameter stands for `count(param)` values, written as that
    /// many markers separated by commas (at least one).
    pub fn render(&self, markers: Markers, count: impl Fn(P) -> usize) -> String {
        let mut out = String::new();
        let mut n = 0usize;
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(p) => {
                    for k in 0..count(*p).max(1) {
                        if k > 0 {
                            out.push_str(", ");
                        }
                        n += 1;
                        match markers {
                            Markers::Question => out.push('?'),
                            Markers::Dollar => {
                                out.push('$');
                                out.push_str(itoa::Buffer::new().format(n));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum P {
        User,
        Phones,
    }

    const NAMES: &[(&str, P)] = &[("user", P::User), ("phones", P::Phones)];

    #[test]
    fn a_list_parameter_becomes_one_marker_per_value() {
        let t = SqlTemplate::parse(
            "SELECT u, d, p FROM a WHERE p IN (:phones) AND u <> :USER",
            NAMES,
        )
        .unwrap();
        let count = |p| if p == P::Phones { 3 } else { 1 };
        assert_eq!(
            t.render(Markers::Question, count),
            "SELECT u, d, p FROM a WHERE p IN (?, ?, ?) AND u <> ?"
        );
        assert_eq!(
            t.render(Markers::Dollar, count),
            "SELECT u, d, p FROM a WHERE p IN ($1, $2, $3) AND u <> $4"
        );
        assert_eq!(t.params().collect::<Vec<_>>(), [P::Phones, P::User]);
        assert!(t.uses(P::User));
    }

    #[test]
    fn quotes_casts_and_unknown_names_are_handled() {
        let t = SqlTemplate::parse(
            "SELECT ':user', x::text FROM \"a:phones\" WHERE u = :user",
            NAMES,
        )
        .unwrap();
        assert_eq!(
            t.render(Markers::Question, |_| 1),
            "SELECT ':user', x::text FROM \"a:phones\" WHERE u = ?"
        );
        assert_eq!(
            SqlTemplate::parse("SELECT :domain", NAMES),
            Err(SqlTemplateError::UnknownParameter {
                name: "domain".into(),
                allowed: ":user, :phones".into()
            })
        );
        assert_eq!(
            SqlTemplate::parse("SELECT 'x", NAMES),
            Err(SqlTemplateError::Unterminated)
        );
    }
}
