//! The payload of a JWThenticator JWT.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The claims of a JWT issued by JWThenticator, in the original's order:
/// `token_id`, `identifier`, `iat`, `exp`, then the optional `aud` and `iss`.
///
/// Claims other issuers add are kept in [`Claims::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Unique id of this token.
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub token_id: Uuid,
    /// The client the token was issued to.
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub identifier: Uuid,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// Intended audiences (`JWT_AUDIENCE`); always written as a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Issuer (`JWT_ISSUER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Any other claims the token carries.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `aud` claim: a single string or a list of strings on the wire (RFC 7519 section 4.1.3),
/// always a list here and when written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether `name` is one of the audiences.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|aud| aud == name)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;

        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Audience;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Audience, E> {
                Ok(Audience(vec![value.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(Audience(values))
            }
        }

        deserializer.deserialize_any(OneOrMany)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_json() -> Value {
        serde_json::json!({
            "token_id": "6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d",
            "identifier": "0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1",
            "iat": 1_700_000_000,
            "exp": 1_700_090_000,
        })
    }

    #[test]
    fn audience_reads_a_string_or_a_list_and_writes_a_list() {
        let mut json = claims_json();
        json["aud"] = "svc".into();
        let claims: Claims = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(claims.aud, Some(Audience(vec!["svc".into()])));
        json["aud"] = serde_json::json!(["a", "b"]);
        let claims: Claims = serde_json::from_value(json).expect("parses");
        assert_eq!(
            serde_json::to_value(&claims).expect("writes")["aud"],
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn unknown_claims_are_kept_in_extra() {
        let mut json = claims_json();
        json["scope"] = "read".into();
        let claims: Claims = serde_json::from_value(json).expect("parses");
        assert_eq!(claims.extra.get("scope"), Some(&Value::from("read")));
    }

    #[test]
    fn serialises_in_the_original_order_without_absent_claims() {
        let claims: Claims = serde_json::from_value(claims_json()).expect("parses");
        let text = serde_json::to_string(&claims).expect("writes");
        assert!(text.starts_with(r#"{"token_id":"#), "{text}");
        assert!(!text.contains("aud") && !text.contains("nbf"), "{text}");
    }

    #[test]
    fn duplicate_registered_claims_are_rejected() {
        let text = r#"{"token_id":"6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d","identifier":"0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1","iat":1,"exp":2,"exp":99999999999}"#;
        assert!(serde_json::from_str::<Claims>(text).is_err());
    }
}
