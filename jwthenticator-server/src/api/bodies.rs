//! What the operations take beyond the core types: the admin token as the spec documents it,
//! and request bodies whose schema states a rule the handler enforces.

use jwthenticator_core::{RegisterKeyRequest, RevokeKeyRequest};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, MetaSecurityScheme, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::config::DEFAULT_MIN_KEY_LENGTH;

/// `ADMIN_TOKEN`, as the spec documents the internal group's requirement. It decides nothing:
/// `security::InternalGuard` has answered every request for the group (401, 403) before an
/// operation runs, also in the modes without a token (loopback clients, `INTERNAL_PORT`).
/// Every internal operation takes one, and a test checks the spec lists it on each.
pub(crate) struct AdminToken;

impl<'a> ApiExtractor<'a> for AdminToken {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            "AdminToken",
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "`Authorization: Bearer <ADMIN_TOKEN>`. Without `ADMIN_TOKEN` the internal \
                     API answers loopback clients (not through a proxy) with no token, or every \
                     client of `INTERNAL_PORT`.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["AdminToken"]
    }

    async fn from_request(
        _request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self)
    }
}

/// A core request type with a schema here that says more than the derived one: a rule that
/// the handler enforces. Parsing is the core type's, and so is the JSON shape.
macro_rules! refined_body {
    ($(#[$doc:meta])* $name:ident($inner:ty), $refine:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name(pub(crate) $inner);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                <$inner as Type>::name()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Reference(Self::name().into_owned())
            }

            fn register(registry: &mut Registry) {
                registry.create_schema::<Self, _>(Self::name().into_owned(), |_| {
                    // The derived schema (fields, validators), built aside so that it is not
                    // registered under the same name.
                    let mut schema = Registry::new().create_fake_schema::<$inner>();
                    let refine: fn(&mut MetaSchema) = $refine;
                    refine(&mut schema);
                    schema
                });
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
                <$inner>::parse_from_json(value)
                    .map(Self)
                    .map_err(poem_openapi::types::ParseError::propagate)
            }
        }
    };
}

/// The schema of a property of an object schema.
fn property<'a>(schema: &'a mut MetaSchema, name: &str) -> Option<&'a mut MetaSchema> {
    schema
        .properties
        .iter_mut()
        .find(|(property, _)| *property == name)
        .and_then(|(_, schema)| match schema {
            MetaSchemaRef::Inline(schema) => Some(schema.as_mut()),
            MetaSchemaRef::Reference(_) => None,
        })
}

refined_body!(
    /// The body of `/register_key`; its schema states `MIN_KEY_LENGTH`'s default as the
    /// key's minimum length (the handler checks the configured one).
    RegisterKeyBody(RegisterKeyRequest),
    |schema| {
        if let Some(key) = property(schema, "key") {
            key.min_length = Some(DEFAULT_MIN_KEY_LENGTH);
        }
    }
);

impl<'de> serde::Deserialize<'de> for RegisterKeyBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RegisterKeyRequest::deserialize(deserializer).map(Self)
    }
}

refined_body!(
    /// The body of `/revoke_key`; its schema says that exactly one of `key` and `key_id` is
    /// given (`oneOf`), which the handler enforces.
    RevokeKeyBody(RevokeKeyRequest),
    |schema| {
        let requiring = |field: &'static str| {
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                required: vec![field],
                ..MetaSchema::ANY
            }))
        };
        schema.one_of = vec![requiring("key"), requiring("key_id")];
    }
);

/// `RevokeKeyRequest` as serde reads it, less lenient: a field is absent or has a value, and
/// `null` is neither (the schema types both fields as non-nullable).
#[derive(serde::Deserialize)]
struct PresentOrAbsent {
    #[serde(default, deserialize_with = "present")]
    key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    key_id: Option<i64>,
}

/// A field that, when present, must hold a `T`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl<'de> serde::Deserialize<'de> for RevokeKeyBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let PresentOrAbsent { key, key_id } = PresentOrAbsent::deserialize(deserializer)?;
        Ok(Self(RevokeKeyRequest { key, key_id }))
    }
}
