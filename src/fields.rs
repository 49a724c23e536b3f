//! Name/value fields sent as a JSON object or a form (`a=1&b=%2B`): the facts a broker or
//! streaming server sends in its body, and the answer of an operator's backend.
//!
//! Takes: the body's bytes or text. Returns: every field in the order sent, values as
//! text (a JSON string, number, boolean, or `null` as empty), or why the body cannot be
//! read. Must never: accept a name sent twice (a reader that keeps one copy, first or
//! last, can be made to decide on either), decode a form value more than once, or read a
//! form's `+` as a space (EMQX topics and tokens use it as a character).

use std::collections::HashSet;

use percent_encoding::percent_decode_str;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Why a body's fields cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("a JSON field holds an array or an object")]
    NestedValue,
    #[error("body is not UTF-8, or a field is badly percent-encoded")]
    BadEncoding,
    #[error("a field is sent twice")]
    Repeated,
}

/// The members of a JSON object, as text.
pub fn json(body: &[u8]) -> Result<Vec<(String, String)>, FieldsError> {
    let Members(members) = serde_json::from_slice(body).map_err(|_| FieldsError::NotAnObject)?;
    let mut fields = Vec::with_capacity(members.len());
    for (name, value) in members {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            Value::Array(_) | Value::Object(_) => return Err(FieldsError::NestedValue),
        };
        fields.push((name, text));
    }
    once_each(fields)
}

/// The fields of a form or query, percent-decoded once.
pub fn form(text: &str) -> Result<Vec<(String, String)>, FieldsError> {
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| FieldsError::BadEncoding)
    };
    let fields = text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect::<Result<Vec<_>, FieldsError>>()?;
    once_each(fields)
}

/// The fields of two parts of one request (a body and the URL's query, as EMQX sends
/// `clientid` in the URL and the rest in the body), as one list. A name in both counts
/// once when its values agree; with different values it is sent twice, and refused.
pub fn merge(
    mut first: Vec<(String, String)>,
    second: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, FieldsError> {
    for (name, value) in second {
        match field(&first, &name) {
            Some(seen) if seen == value => {}
            Some(_) => return Err(FieldsError::Repeated),
            None => first.push((name, value)),
        }
    }
    Ok(first)
}

/// The value of field `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn once_each(fields: Vec<(String, String)>) -> Result<Vec<(String, String)>, FieldsError> {
    let mut seen = HashSet::with_capacity(fields.len());
    if fields.iter().all(|(name, _)| seen.insert(name.as_str())) {
        Ok(fields)
    } else {
        Err(FieldsError::Repeated)
    }
}

/// A JSON object's members in the order sent, repeated names included: a JSON map would
/// keep one copy and hide the ambiguity.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectMembers;
        impl<'de> Visitor<'de> for ObjectMembers {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectMembers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_keep_their_order_and_become_text() {
        let fields = json(br#"{"b": "x", "a": 1, "c": true, "d": null}"#).expect("reads");
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["b", "a", "c", "d"]);
        assert_eq!(field(&fields, "a"), Some("1"));
        assert_eq!(field(&fields, "c"), Some("true"));
        assert_eq!(field(&fields, "d"), Some(""));
    }

    #[test]
    fn a_name_sent_twice_is_refused() {
        assert_eq!(
            json(br#"{"result": "deny", "result": "allow"}"#),
            Err(FieldsError::Repeated)
        );
        assert_eq!(form("result=deny&result=allow"), Err(FieldsError::Repeated));
        assert_eq!(
            form("a=1&%61=2"),
            Err(FieldsError::Repeated),
            "decoded first"
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert_eq!(json(b"[1]"), Err(FieldsError::NotAnObject));
        assert_eq!(json(b"not json"), Err(FieldsError::NotAnObject));
        assert_eq!(json(br#"{"a": [1]}"#), Err(FieldsError::NestedValue));
        assert_eq!(form("a=%ff"), Err(FieldsError::BadEncoding));
    }

    #[test]
    fn form_values_are_decoded_once_and_plus_stays_plus() {
        let fields = form("topic=a%2B%252B+b&empty").expect("reads");
        assert_eq!(field(&fields, "topic"), Some("a+%2B+b"));
        assert_eq!(field(&fields, "empty"), Some(""));
    }

    #[test]
    fn two_parts_merge_and_a_name_in_both_must_agree() {
        let body = form("username=alice&topic=t").unwrap();
        let url = form("clientid=c1&username=alice").unwrap();
        assert_eq!(
            merge(body.clone(), url).unwrap(),
            form("username=alice&topic=t&clientid=c1").unwrap()
        );
        let other = form("username=mallory").unwrap();
        assert_eq!(merge(body, other), Err(FieldsError::Repeated));
    }
}
