//! Errors become JSON answers here, in one place; database text never reaches a client.

use jwthenticator_core::ErrorResponse;
use jwthenticator_core::describe_json_error;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::error::{ParseParamError, ParsePathError};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;

use crate::store::StoreError;

/// An error a handler gives up with; becomes a JSON answer with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorResponse,
}

impl ApiError {
    pub(crate) fn internal(message: &str) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: ErrorResponse::new("internal_error", message),
        }
    }

    pub(crate) fn unavailable(message: &str) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: ErrorResponse::new("unavailable", message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "database operation failed");
        match err {
            StoreError::Unavailable(_) => {
                Self::unavailable("the database is unavailable; retry later")
            }
            _ => Self::internal("internal error"),
        }
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(json_response(err.status, err.body))
    }
}

/// The JSON error answer `status` has in the spec.
fn documented(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: <Json<ErrorResponse> as Payload>::CONTENT_TYPE,
            schema: ErrorResponse::schema_ref(),
        }],
        headers: Vec::new(),
    }
}

/// An operation that returns `Result<_, ApiError>` documents the answers an `ApiError` can be.
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![
                documented(
                    503,
                    "The database is unavailable or the signing key is not loaded yet; retry \
                     later.",
                ),
                documented(
                    500,
                    "An internal error; the details are in the server's log.",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorResponse::register(registry);
    }
}

/// How an operation of the internal group can fail: the admin guard's refusals, which
/// `security::InternalGuard` answers before the operation runs and which are documented here so
/// that every internal operation lists them, and an [`ApiError`].
#[derive(Debug)]
pub(crate) struct InternalApiError(ApiError);

impl From<ApiError> for InternalApiError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<StoreError> for InternalApiError {
    fn from(err: StoreError) -> Self {
        Self(err.into())
    }
}

impl From<InternalApiError> for poem::Error {
    fn from(err: InternalApiError) -> Self {
        err.0.into()
    }
}

impl ApiResponse for InternalApiError {
    fn meta() -> MetaResponses {
        let mut unauthorized = documented(
            401,
            "`ADMIN_TOKEN` is set and the request does not carry `Authorization: Bearer \
             <ADMIN_TOKEN>`.",
        );
        unauthorized.headers.push(MetaHeader {
            name: "WWW-Authenticate".to_owned(),
            description: Some("`Bearer realm=\"jwthenticator-admin\"`".to_owned()),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        });
        let forbidden = documented(
            403,
            "A browser's cross-site request; or, without `ADMIN_TOKEN` (and `INTERNAL_PORT`), a \
             request that is not from a loopback client or that came through a proxy.",
        );
        let mut responses = vec![unauthorized, forbidden];
        responses.extend(ApiError::meta().responses);
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

pub(crate) fn json_response(status: StatusCode, body: ErrorResponse) -> Response {
    poem::web::Json(body).with_status(status).into_response()
}

/// The body of a 400 for a request poem-openapi could not parse: says which field and why.
pub(crate) fn bad_request_body(err: &poem::Error) -> ErrorResponse {
    let message = client_error_message(err);
    tracing::info!(status = 400, reason = %message, "request rejected");
    ErrorResponse::new("invalid_request", message)
}

/// The body of a 413: the limit, from the error's own message.
pub(crate) fn payload_too_large_body(err: &poem::Error) -> ErrorResponse {
    tracing::info!(status = 413, "request rejected: body too large");
    ErrorResponse::new("payload_too_large", err.to_string())
}

/// What a client error says, to the client and to the log. poem-openapi's parameter errors
/// quote the input (`Expected input type "string", found "..."`), and the input may be a
/// secret, so of those only the parameter and its type are kept.
fn client_error_message(err: &poem::Error) -> String {
    let parameter = match (
        err.downcast_ref::<ParseParamError>(),
        err.downcast_ref::<ParsePathError>(),
    ) {
        (Some(err), _) => Some((err.name, &err.reason)),
        (_, Some(err)) => Some((err.name, &err.reason)),
        _ => None,
    };
    if let Some((name, reason)) = parameter {
        return match expected_type(reason) {
            Some(ty) => format!("parameter `{name}`: expected {ty}"),
            None => format!("parameter `{name}` is invalid"),
        };
    }
    err.to_string()
}

/// A body that is not JSON, or not one JSON document: serde_json's fixed wording and the
/// position, never the text.
pub(crate) fn invalid_body(err: &serde_json::Error) -> String {
    format!("invalid JSON body: {}", describe_json_error(err))
}

/// A JSON body whose field has the wrong type or is missing: the field and the type it
/// expects, never the value, which may be a secret sent in the wrong field.
pub(crate) fn invalid_field(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let reason = describe_json_error(err.inner());
    match err.path().to_string() {
        path if path == "." => format!("invalid JSON body: {reason}"),
        path => format!("field `{path}`: {reason}"),
    }
}

/// A field that failed a validator of the schema (a length, say): the field and the validator.
/// Any other reason poem-openapi gives may hold the input, so it is not repeated.
pub(crate) fn failed_validation(reason: &str) -> String {
    failed_validator(reason).map_or_else(
        || "the request body does not match the schema".to_owned(),
        |(field, validator)| format!("field `{field}`: expected {validator}"),
    )
}

/// Whether a character may appear in a name poem-openapi derives from our own types.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_()<>,. ".contains(c)
}

/// The field and validator of a poem-openapi validation failure, whose whole reason is
/// `failed to parse "Type": field `name` verification failed. validator`: every part comes
/// from our types. Any other reason may hold the input.
fn failed_validator(reason: &str) -> Option<(&str, &str)> {
    let rest = reason.strip_prefix("failed to parse \"")?;
    let (ty, rest) = rest.split_once("\": field `")?;
    let (field, validator) = rest.split_once("` verification failed. ")?;
    [ty, field, validator]
        .iter()
        .all(|part| !part.is_empty() && part.chars().all(is_name_char))
        .then_some((field, validator))
}

/// The type a poem-openapi parameter error names: every form of its reason (`Type "T" expects
/// an input value.`, `Expected input type "T", found ...`, `failed to parse "T": ...`) names
/// the type in its first quotes, before any input.
fn expected_type(reason: &str) -> Option<&str> {
    let (_, rest) = reason.split_once('"')?;
    let (ty, _) = rest.split_once('"')?;
    (!ty.is_empty() && ty.chars().all(is_name_char)).then_some(ty)
}

/// Turns any error that is not already an answer (unknown route, wrong method, oversized body)
/// into a JSON answer with the same status.
pub(crate) fn into_json_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_client_error() => "invalid_request",
        _ => "internal_error",
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
        "internal error".to_owned()
    } else {
        // Parse errors name the field and the expected type, never a secret's value.
        let message = client_error_message(&err);
        tracing::info!(status = status.as_u16(), reason = %message, "request rejected");
        message
    };
    json_response(status, ErrorResponse::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "my-secret-key-value";

    #[test]
    fn parse_errors_keep_the_field_or_parameter_and_drop_the_input() {
        assert_eq!(
            failed_validation(
                r#"failed to parse "AuthRequest": field `key` verification failed. minLength(1)"#
            ),
            "field `key`: expected minLength(1)"
        );
        for reason in [
            format!(r#"Expected input type "string", found "{SECRET}"."#),
            format!(
                r#"failed to parse "AuthRequest": field `key` verification failed. {SECRET}"x""#
            ),
            format!(r#"failed to parse "X": field `{SECRET}"` verification failed. minLength(1)"#),
        ] {
            assert_eq!(
                failed_validation(&reason),
                "the request body does not match the schema"
            );
        }

        let parameter = |reason: String| {
            client_error_message(&poem::Error::from(ParseParamError {
                name: "identifier",
                reason,
            }))
        };
        for reason in [
            r#"Type "string_uuid" expects an input value."#.to_owned(),
            format!(r#"Expected input type "string_uuid", found "{SECRET}"."#),
            format!(r#"failed to parse "string_uuid": invalid character: found `{SECRET}`"#),
        ] {
            assert_eq!(
                parameter(reason),
                "parameter `identifier`: expected string_uuid"
            );
        }
        assert_eq!(
            parameter("no type named".to_owned()),
            "parameter `identifier` is invalid"
        );
    }
}
