//! The JSON tree of a policy document, objects kept as ordered key lists so that a key given
//! twice is refused rather than silently replaced by the last one (serde_json's own maps keep
//! only the last: two `"StringEquals"` blocks in one Condition would lose a condition).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{MalformedPolicy, Problem};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, MalformedPolicy> {
        serde_json::from_slice(bytes).map_err(|e| {
            MalformedPolicy::new(
                "policy",
                Problem::InvalidJson {
                    detail: e.to_string(),
                },
            )
        })
    }

    /// The entries of an object whose keys are all distinct.
    pub(crate) fn object<'a>(
        &'a self,
        at: &str,
        expected: &'static str,
    ) -> Result<&'a [(String, Json)], MalformedPolicy> {
        let Json::Object(entries) = self else {
            return Err(MalformedPolicy::new(at, Problem::WrongType { expected }));
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k, _)| k == key) {
                return Err(MalformedPolicy::new(
                    at,
                    Problem::DuplicateKey { key: key.clone() },
                ));
            }
        }
        Ok(entries)
    }

    /// A string, or the strings of an array (at least one): the shape of Action, Resource,
    /// principal lists.
    pub(crate) fn strings<'a>(
        &'a self,
        at: &str,
        field: &'static str,
    ) -> Result<Vec<&'a str>, MalformedPolicy> {
        let wrong = || {
            MalformedPolicy::new(
                at,
                Problem::WrongType {
                    expected: "a string or an array of strings",
                },
            )
        };
        match self {
            Json::String(s) => Ok(vec![s.as_str()]),
            Json::Array(items) if items.is_empty() => {
                Err(MalformedPolicy::new(at, Problem::Empty { field }))
            }
            Json::Array(items) => items
                .iter()
                .map(|i| match i {
                    Json::String(s) => Ok(s.as_str()),
                    _ => Err(wrong()),
                })
                .collect(),
            _ => Err(wrong()),
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            entries.push((k, v));
        }
        Ok(Json::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_kept_and_refused() {
        let j = Json::parse(br#"{"a": 1, "a": 2}"#).unwrap();
        let err = j.object("policy", "an object").unwrap_err();
        assert_eq!(err.problem, Problem::DuplicateKey { key: "a".into() });
    }

    #[test]
    fn bad_json_says_where() {
        let err = Json::parse(b"{\"a\": }").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(err.to_string().contains("column"), "{err}");
    }
}
