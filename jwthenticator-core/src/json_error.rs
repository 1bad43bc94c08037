//! [`describe_json_error`]: what went wrong in a JSON document, without quoting the document.

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_json::error::Category;

/// Says what is wrong with a JSON document that failed to deserialise, naming the expected
/// type but never a value of the input.
///
/// serde's own messages quote what they found (`invalid type: string "my-secret", expected
/// i64`), and a secret sent in the wrong field would then reach a log line or an error answer.
/// Here the found value is reduced to its kind (`invalid type: string, expected i64`), an
/// unknown variant or field is not repeated, and a message that a type's own `Deserialize`
/// wrote (which may quote its input, as `uuid` does) becomes `invalid value`, with the expected
/// type when the message says it. Syntax errors keep serde_json's fixed wording. The position
/// is kept: it points into the document without repeating it.
///
/// # Example
///
/// ```
/// use jwthenticator_core::describe_json_error;
///
/// let err = serde_json::from_str::<i64>(r#""my-secret-key-value""#).unwrap_err();
/// assert_eq!(
///     describe_json_error(&err),
///     "invalid type: string, expected i64 at line 1 column 21"
/// );
/// ```
pub fn describe_json_error(err: &serde_json::Error) -> String {
    let full = err.to_string();
    // serde_json appends the position to every message whose position it knows.
    let (message, position) = match err.line() {
        0 => (full.as_str(), String::new()),
        line => {
            let position = format!(" at line {line} column {}", err.column());
            (full.strip_suffix(&position).unwrap_or(&full), position)
        }
    };
    let message = match err.classify() {
        // The fixed texts of serde_json's own error codes: they never quote the input.
        Category::Syntax | Category::Eof | Category::Io => message.to_owned(),
        Category::Data => describe_data_error(message),
    };
    message + &position
}

/// The kinds of value serde's `Unexpected` names before the value itself, longest first where
/// one begins another.
const VALUE_KINDS: &[&str] = &[
    "string",
    "integer",
    "floating point",
    "boolean",
    "character",
    "byte array",
    "null",
    "unit value",
    "Option value",
    "newtype struct",
    "sequence",
    "map",
    "unit variant",
    "newtype variant",
    "tuple variant",
    "struct variant",
    "enum",
];

/// A data error (the JSON was well formed, its content did not fit the type) in serde's
/// wording, with every piece of the input left out.
fn describe_data_error(message: &str) -> String {
    for (prefix, unexpected_and_expected) in [
        ("invalid type", message.strip_prefix("invalid type: ")),
        ("invalid value", message.strip_prefix("invalid value: ")),
    ] {
        if let Some(rest) = unexpected_and_expected {
            // What was found comes first and may hold anything, `, expected` included; what
            // was expected is the type's own description, after the last one.
            let Some((unexpected, expected)) = rest.rsplit_once(", expected ") else {
                return prefix.to_owned();
            };
            return match VALUE_KINDS
                .iter()
                .find(|kind| unexpected.starts_with(*kind))
            {
                Some(kind) => format!("{prefix}: {kind}, expected {expected}"),
                None => format!("{prefix}, expected {expected}"),
            };
        }
    }
    if message.starts_with("invalid length ")
        || message.starts_with("missing field `")
        || message.starts_with("duplicate field `")
    {
        // A count, or the name of one of the type's own fields.
        return message.to_owned();
    }
    for (prefix, what) in [
        ("unknown variant `", "unknown variant"),
        ("unknown field `", "unknown field"),
    ] {
        if message.starts_with(prefix) {
            return match message.rsplit_once("`, expected ") {
                Some((_, expected)) => format!("{what}, expected {expected}"),
                None => what.to_owned(),
            };
        }
    }
    "invalid value".to_owned()
}

/// Reads a UUID string (as `Uuid`'s own `Deserialize` does for JSON) with serde's standard
/// "invalid value" error, `invalid value: string, expected a UUID`, which names the string by
/// its kind only, even where the error is displayed as it is. `uuid`'s own error is a
/// free-form message quoting the input.
pub(crate) fn deserialize_uuid<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<uuid::Uuid, D::Error> {
    struct UuidString;

    impl Visitor<'_> for UuidString {
        type Value = uuid::Uuid;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a UUID")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<uuid::Uuid, E> {
            uuid::Uuid::parse_str(value)
                .map_err(|_| E::invalid_value(Unexpected::Other("string"), &self))
        }
    }

    deserializer.deserialize_str(UuidString)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const SECRET: &str = "my-secret-key-value";

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "the fields are read only to fail")]
    #[serde(deny_unknown_fields)]
    struct Body {
        key_id: Option<i64>,
        flag: Option<bool>,
        list: Option<Vec<String>>,
        kind: Option<Kind>,
        #[serde(default, deserialize_with = "uuid")]
        id: Option<uuid::Uuid>,
        small: Option<u8>,
    }

    fn uuid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<uuid::Uuid>, D::Error> {
        deserialize_uuid(d).map(Some)
    }

    #[derive(Debug, Deserialize)]
    enum Kind {
        A,
    }

    fn describe(json: &str) -> String {
        let err = serde_json::from_str::<Body>(json).expect_err("invalid");
        describe_json_error(&err)
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_kind_only() {
        for (json, expected) in [
            (
                format!(r#"{{"key_id": "{SECRET}"}}"#),
                "invalid type: string, expected i64 at line 1 column 32",
            ),
            (
                format!(r#"{{"flag": "{SECRET}, expected i64"}}"#),
                "invalid type: string, expected a boolean at line 1 column 44",
            ),
            (
                r#"{"list": 123456789}"#.to_owned(),
                "invalid type: integer, expected a sequence at line 1 column 18",
            ),
            (
                r#"{"key_id": 1234.5678}"#.to_owned(),
                "invalid type: floating point, expected i64 at line 1 column 20",
            ),
            (
                r#"{"list": [true]}"#.to_owned(),
                "invalid type: boolean, expected a string at line 1 column 14",
            ),
        ] {
            assert_eq!(describe(&json), expected, "{json}");
        }
    }

    #[test]
    fn values_that_do_not_fit_are_not_repeated() {
        for json in [
            format!(r#"{{"kind": "{SECRET}"}}"#),
            format!(r#"{{"id": "{SECRET}"}}"#),
            format!(r#"{{"{SECRET}": 1}}"#),
            r#"{"small": 987654321}"#.to_owned(),
        ] {
            let message = describe(&json);
            assert!(
                !message.contains(SECRET) && !message.contains("987654321"),
                "{json}: {message}"
            );
        }
        assert_eq!(
            describe(&format!(r#"{{"kind": "{SECRET}"}}"#)),
            "unknown variant, expected `A` at line 1 column 30"
        );
        assert_eq!(
            describe(r#"{"id": "not-a-uuid"}"#),
            "invalid value: string, expected a UUID at line 1 column 19"
        );
        let err = serde_json::from_str::<uuid::Uuid>(r#""not-a-uuid""#).expect_err("invalid");
        assert_eq!(
            describe_json_error(&err),
            "invalid value at line 1 column 12"
        );
        assert_eq!(
            describe(r#"{"small": 987654321}"#),
            "invalid value: integer, expected u8 at line 1 column 19"
        );
    }

    #[test]
    fn messages_without_input_are_kept() {
        assert_eq!(
            describe(r#"{"key_id": 1, "key_id": 2}"#),
            "duplicate field `key_id` at line 1 column 22"
        );
        assert_eq!(
            describe(r#"{"list": ["a""#),
            "EOF while parsing a list at line 1 column 13"
        );
        assert_eq!(
            describe(r#"{"list": ["\ud800"]}"#),
            "unexpected end of hex escape at line 1 column 18"
        );
        let err = serde_json::from_str::<(u8, u8)>("[1]").expect_err("short");
        assert_eq!(
            describe_json_error(&err),
            "invalid length 1, expected a tuple of size 2 at line 1 column 3"
        );
    }
}
