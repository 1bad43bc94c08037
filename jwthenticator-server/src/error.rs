//! Errors become JSON answers here, in one place; database text never reaches a client.

use jwthenticator_core::ErrorResponse;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::error::{ParseParamError, ParsePathError, ParseRequestPayloadError};

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

pub(crate) fn json_response(status: StatusCode, body: ErrorResponse) -> Response {
    poem::web::Json(body).with_status(status).into_response()
}

/// The body of a 400 for a request poem-openapi could not parse: says which field and why.
pub(crate) fn bad_request_body(err: &poem::Error) -> ErrorResponse {
    let message = client_error_message(err);
    tracing::info!(status = 400, reason = %message, "request rejected");
    ErrorResponse::new("invalid_request", message)
}

/// What a client error says, to the client and to the log. poem-openapi's parse errors quote
/// the input (`Expected input type "string", found "..."`), and the input may be a secret, so
/// of those only the parameter and its type, or the field and the validator it failed, are kept.
fn client_error_message(err: &poem::Error) -> String {
    if let Some(err) = err.downcast_ref::<ParseRequestPayloadError>() {
        return failed_validator(&err.reason).map_or_else(
            || "the request body does not match the schema".to_owned(),
            |(field, validator)| format!("field `{field}` verification failed. {validator}"),
        );
    }
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
    fn poem_openapi_parse_errors_keep_the_field_or_parameter_and_drop_the_input() {
        let payload = |reason: String| {
            client_error_message(&poem::Error::from(ParseRequestPayloadError { reason }))
        };
        assert_eq!(
            payload(
                r#"failed to parse "AuthRequest": field `key` verification failed. minLength(1)"#
                    .to_owned()
            ),
            "field `key` verification failed. minLength(1)"
        );
        for reason in [
            format!(r#"Expected input type "string", found "{SECRET}"."#),
            format!(
                r#"failed to parse "AuthRequest": field `key` verification failed. {SECRET}"x""#
            ),
            format!(r#"failed to parse "X": field `{SECRET}"` verification failed. minLength(1)"#),
        ] {
            let message = payload(reason);
            assert_eq!(message, "the request body does not match the schema");
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
