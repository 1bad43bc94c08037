//! Errors become JSON answers here, in one place; database text never reaches a client.

use jwthenticator_core::ErrorResponse;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

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
    let message = err.to_string();
    // poem-openapi prefixes its parse errors with what it was doing; the rest is the reason.
    let message = message
        .strip_prefix("parse request payload error: ")
        .unwrap_or(&message);
    tracing::info!(status = 400, reason = %message, "request rejected");
    ErrorResponse::new("invalid_request", message)
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
        let message = err.to_string();
        tracing::info!(status = status.as_u16(), reason = %message, "request rejected");
        message
    };
    json_response(status, ErrorResponse::new(code, message))
}
