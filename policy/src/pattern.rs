//! Wildcard patterns with policy variables: Action, Resource and condition values.
//!
//! `*` matches any run of characters (`/` and `:` included), `?` exactly one; both only where
//! the element allows wildcards (Action, Resource, StringLike, ArnLike; in StringEquals they
//! are plain characters). In a Version 2012-10-17 policy, `${key}` is replaced by the request's
//! value of a known single-valued key, `${key, 'default'}` by the default when the request has
//! none, and `${*}`, `${?}`, `${$}` are the literal characters. A substituted value is always
//! literal: a user named `a*` matches only `a*`, never every user starting with `a`. A pattern
//! whose variable has no value (and no default) matches nothing; a statement using such a
//! variable does not apply at all (see [`crate::Statement::applies`]).
//!
//! Matching is the classic greedy algorithm with one backtrack point: O(pattern × text) at
//! worst, no recursion, no allocation beyond the resolved pattern.

use crate::error::Problem;
use crate::keys;
use crate::limits::VARIABLE_NAME_BYTES_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Char(char),
    Star,
    One,
    Var {
        key: String,
        default: Option<String>,
    },
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// A resolved pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Char(char),
    Star,
    One,
}

impl Pattern {
    /// Parses `text`; `wildcards` makes `*` and `?` wildcards, `variables` makes `${...}` a
    /// variable (else both are plain characters).
    pub(crate) fn parse(text: &str, wildcards: bool, variables: bool) -> Result<Self, Problem> {
        let mut pieces = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let (piece, len) = parse_variable(text, &rest[2..])?;
                pieces.push(piece);
                rest = &rest[2 + len..];
                continue;
            }
            pieces.push(match c {
                '*' if wildcards => Piece::Star,
                '?' if wildcards => Piece::One,
                c => Piece::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        Ok(Self { pieces })
    }

    /// The plain characters before the first wildcard or variable.
    pub(crate) fn literal_prefix(&self) -> String {
        self.pieces
            .iter()
            .map_while(|p| match p {
                Piece::Char(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether the pattern has a wildcard.
    pub(crate) fn has_wildcard(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Star | Piece::One))
    }

    /// Whether the pattern has a variable.
    pub(crate) fn has_variable(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var { .. }))
    }

    /// The keys of the variables that have no default: the request must carry them.
    pub(crate) fn required_variables(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var { key, default: None } => Some(key.as_str()),
            _ => None,
        })
    }

    /// The pattern with its variables replaced by `lookup`'s values (`None` when one has no
    /// value and no default); `fold` lowercases it for case-insensitive matching.
    pub(crate) fn resolve<'a>(
        &self,
        lookup: impl Fn(&str) -> Option<&'a str>,
        fold: bool,
    ) -> Option<Vec<Tok>> {
        let mut toks = Vec::with_capacity(self.pieces.len());
        let push_text = |toks: &mut Vec<Tok>, text: &str| {
            if fold {
                toks.extend(text.to_lowercase().chars().map(Tok::Char));
            } else {
                toks.extend(text.chars().map(Tok::Char));
            }
        };
        for piece in &self.pieces {
            match piece {
                Piece::Star => toks.push(Tok::Star),
                Piece::One => toks.push(Tok::One),
                Piece::Char(c) => {
                    let mut buf = [0; 4];
                    push_text(&mut toks, c.encode_utf8(&mut buf));
                }
                Piece::Var { key, default } => {
                    let value = lookup(key).or(default.as_deref())?;
                    push_text(&mut toks, value);
                }
            }
        }
        Some(toks)
    }

    /// Whether `text` matches, variables resolved by `lookup`, `fold` for case-insensitive.
    pub(crate) fn matches<'a>(
        &self,
        text: &str,
        lookup: impl Fn(&str) -> Option<&'a str>,
        fold: bool,
    ) -> bool {
        let Some(toks) = self.resolve(lookup, fold) else {
            return false;
        };
        let text: Vec<char> = if fold {
            text.to_lowercase().chars().collect()
        } else {
            text.chars().collect()
        };
        glob(&toks, &text)
    }
}

/// Parses the inside of `${...}` at the start of `rest` (after `${`): the piece and the bytes
/// consumed up to and with the `}`.
fn parse_variable(text: &str, rest: &str) -> Result<(Piece, usize), Problem> {
    let bad = |reason: &str| Problem::InvalidVariable {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    // The closing brace, skipping one inside a quoted default.
    let mut quoted = false;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '}' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(|| bad("\"${\" without a closing \"}\""))?;
    let inner = rest[..end].trim();
    let piece = match inner {
        "*" => Piece::Char('*'),
        "?" => Piece::Char('?'),
        "$" => Piece::Char('$'),
        _ => {
            let (name, default) = match inner.split_once(',') {
                None => (inner, None),
                Some((name, default)) => {
                    let default = default.trim();
                    let unquoted = default
                        .strip_prefix('\'')
                        .and_then(|d| d.strip_suffix('\''))
                        .filter(|d| !d.contains('\''))
                        .ok_or_else(|| bad("a default value must be one 'quoted' string"))?;
                    (name.trim(), Some(unquoted.to_owned()))
                }
            };
            if name.is_empty() || name.len() > VARIABLE_NAME_BYTES_MAX {
                return Err(bad("the variable has no valid key name"));
            }
            let Some((key, spec)) = keys::canonical(name) else {
                return Err(bad(&format!("unknown key \"{name}\"")));
            };
            if spec.multi_valued {
                return Err(bad(&format!(
                    "\"{name}\" is multi-valued and cannot be a variable"
                )));
            }
            Piece::Var { key, default }
        }
    };
    Ok((piece, end + 1))
}

/// Whether `text` matches the resolved pattern `p`.
pub(crate) fn glob(p: &[Tok], text: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        match p.get(pi) {
            Some(Tok::One) => {
                pi += 1;
                ti += 1;
            }
            Some(Tok::Char(c)) if *c == text[ti] => {
                pi += 1;
                ti += 1;
            }
            Some(Tok::Star) => {
                star = Some((pi, ti));
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|t| *t == Tok::Star)
}

/// Whether `text` matches the wildcard pattern `pattern` (`*`, `?`; case-sensitive; no
/// variables): the matching Action and Resource use.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    match Pattern::parse(pattern, true, false) {
        Ok(p) => p.matches(text, |_| None, false),
        Err(_) => unreachable!("a pattern without variables always parses"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_user(pattern: &str, text: &str, user: Option<&'static str>) -> bool {
        Pattern::parse(pattern, true, true).unwrap().matches(
            text,
            |k| if k == keys::USERNAME { user } else { None },
            false,
        )
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("a*", "a", true),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("*b*", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("**", "x", true),
            (
                "*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/", true),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::B/x", false),
            ("é?", "éü", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(wildcard_match(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn folding_is_for_actions_only() {
        let p = Pattern::parse("s3:Get*", true, false).unwrap();
        assert!(p.matches("S3:GETOBJECT", |_| None, true));
        assert!(!p.matches("S3:GETOBJECT", |_| None, false));
    }

    #[test]
    fn no_wildcards_means_literal_characters() {
        let p = Pattern::parse("a*?", false, true).unwrap();
        assert!(p.matches("a*?", |_| None, false));
        assert!(!p.matches("abc", |_| None, false));
    }

    #[test]
    fn variables_substitute_literally() {
        let p = "arn:aws:s3:::b/home/${aws:username}/*";
        assert!(with_user(p, "arn:aws:s3:::b/home/alice/x", Some("alice")));
        assert!(!with_user(p, "arn:aws:s3:::b/home/bob/x", Some("alice")));
        // A user name with a wildcard character is literal after substitution.
        assert!(!with_user(p, "arn:aws:s3:::b/home/alice/x", Some("*")));
        assert!(with_user(p, "arn:aws:s3:::b/home/*/x", Some("*")));
        // No value: no match, even for a pattern that would otherwise match everything.
        assert!(!with_user("${aws:username}*", "anything", None));
        assert!(with_user("${aws:username, 'anon'}/*", "anon/x", None));
        assert!(with_user("${AWS:UserName}", "alice", Some("alice")));
    }

    #[test]
    fn escapes_are_literal() {
        assert!(with_user("a${*}b${?}${$}", "a*b?$", None));
        assert!(!with_user("a${*}b", "axxb", None));
    }

    #[test]
    fn bad_variables_are_refused() {
        for bad in [
            "${",
            "${aws:username",
            "${}",
            "${aws:nope}",
            "${aws:username, default}",
            "${aws:username, 'a'b'}",
            "${s3:RequestObjectTagKeys}",
        ] {
            assert!(
                matches!(
                    Pattern::parse(bad, true, true),
                    Err(Problem::InvalidVariable { .. })
                ),
                "{bad}"
            );
        }
        // Without variables, `${` is plain text.
        assert!(Pattern::parse("${", true, false).is_ok());
    }

    /// The obvious recursive matcher: the model the linear one is checked against.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && naive(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_agrees_with_the_naive_matcher(p in "[ab*?/]{0,8}", t in "[ab/]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            proptest::prop_assert_eq!(wildcard_match(&p, &t), naive(&pc, &tc), "{} vs {}", p, t);
        }
    }
}
