//! Request-level behaviour: JSON bodies whatever their Content-Type, the body size limit, and
//! the request log line.

use std::time::Instant;

use poem::http::header::{ALLOW, CONTENT_LENGTH};
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{failed_validation, into_json_response, invalid_body, invalid_field};

/// The largest request body accepted, in bytes (request data set by the app).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxBodySize(pub(crate) usize);

fn too_large(limit: usize) -> poem::Error {
    poem::Error::from_string(
        format!("the request body is larger than {limit} bytes"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
}

fn bad_request(message: String) -> poem::Error {
    poem::Error::from_string(message, StatusCode::BAD_REQUEST)
}

/// A JSON request body: the one way a body is read and parsed. It is read up to the size
/// limit whatever its Content-Type (the original accepted `curl -d` bodies sent as form data),
/// and parsed once, by `T`'s schema (poem-openapi's `ParseFromJSON`, validators included), so
/// that what the spec says is what the server takes. A refusal is a 400 (413 for a body over
/// the limit) that the operation's response enum answers, with [`crate::error::body_error`]'s
/// message: the field that is wrong and why, never its value.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'a, T: ParseFromJSON + DeserializeOwned> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<T> as Payload>::CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let limit = request.data::<MaxBodySize>().map_or(64 * 1024, |m| m.0);
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large(limit));
        }
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => too_large(limit),
                other => bad_request(format!("cannot read the request body: {other}")),
            })?;
        parse_json_body(&bytes).map(JsonBody).map_err(bad_request)
    }
}

/// Parses a body as a `T`: JSON syntax, then the types of `T`'s fields by serde (poem-openapi
/// alone would read `{"key": 407}` as the key `"407"`), then the validators of `T`'s schema.
/// `Err` is the 400's message, from [`crate::error`]: it names the field and what it expects.
fn parse_json_body<T: ParseFromJSON + DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| invalid_body(&err))?;
    serde_path_to_error::deserialize::<_, T>(&value).map_err(|err| invalid_field(&err))?;
    T::parse_from_json(Some(value)).map_err(|err| failed_validation(err.message()))
}

/// The request id header, taken from the request when it carries a sane one, else generated,
/// and echoed in the response.
pub(crate) const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The documented routes: the label values of the HTTP metrics, every one from a fixed set so
/// that made-up methods and paths (scanners, `/validate_request` with any method) cannot add
/// series, and the methods each path answers, for the `Allow` header of a 405.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabels {
    prefix: String,
    /// The paths of every documented operation, without the prefix.
    routes: std::sync::Arc<std::collections::HashSet<String>>,
    /// The `Allow` value of each documented path (RFC 9110 §10.2.1).
    allowed: std::sync::Arc<std::collections::HashMap<String, HeaderValue>>,
}

impl RouteLabels {
    /// From the documented operations' paths (without the prefix) and methods.
    pub(crate) fn new(
        prefix: &str,
        operations: impl IntoIterator<Item = (String, Vec<poem::http::Method>)>,
    ) -> Self {
        let mut allowed = std::collections::HashMap::new();
        for (path, mut methods) in operations {
            // poem answers HEAD wherever GET is routed.
            if methods.contains(&poem::http::Method::GET)
                && !methods.contains(&poem::http::Method::HEAD)
            {
                methods.push(poem::http::Method::HEAD);
            }
            let methods: Vec<&str> = methods.iter().map(poem::http::Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&methods.join(", ")) {
                allowed.insert(path, value);
            }
        }
        let mut routes: std::collections::HashSet<String> = allowed.keys().cloned().collect();
        routes.extend(["/metrics", "/openapi.json", "/openapi.yaml"].map(str::to_owned));
        Self {
            prefix: prefix.to_owned(),
            routes: std::sync::Arc::new(routes),
            allowed: std::sync::Arc::new(allowed),
        }
    }

    fn unprefixed<'a>(&self, path: &'a str) -> &'a str {
        let path = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        if path.is_empty() { "/" } else { path }
    }

    /// The route template a path was served by, `/docs` for the Swagger UI's files, else
    /// `unmatched`.
    fn route(&self, path: &str) -> String {
        let path = self.unprefixed(path);
        if self.routes.contains(path) {
            path.to_owned()
        } else if path == "/docs" || path.starts_with("/docs/") {
            "/docs".to_owned()
        } else {
            "unmatched".to_owned()
        }
    }

    /// The methods a documented path answers.
    fn allow(&self, path: &str) -> Option<&HeaderValue> {
        self.allowed.get(self.unprefixed(path))
    }
}

/// The method as a label: the standard ones by name, any other as `other`.
fn method_label(method: &poem::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// What of a client-chosen string goes into a log line: at most this many characters.
const LOGGED_CHARS: usize = 256;

/// Runs every request in a span carrying its request id (so every log line has it), echoes
/// the id, turns errors into JSON answers, logs one line per request (method, path without
/// query, status, latency) and records the HTTP metrics.
pub(crate) async fn observe<E: Endpoint>(
    ep: E,
    req: Request,
    labels: RouteLabels,
) -> poem::Result<Response> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = async {
        let mut response = match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => into_json_response(err),
        };
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = labels.allow(&path)
        {
            response.headers_mut().insert(ALLOW, allow.clone());
        }
        let elapsed = started.elapsed();
        let logged_method: String = method.as_str().chars().take(LOGGED_CHARS).collect();
        let logged_path: String = path.chars().take(LOGGED_CHARS).collect();
        tracing::info!(
            method = %logged_method,
            path = %logged_path,
            status = response.status().as_u16(),
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        let route = if response.status() == StatusCode::NOT_FOUND {
            "unmatched".to_owned()
        } else {
            labels.route(&path)
        };
        let method = method_label(&method);
        metrics::counter!(
            "http_requests_total",
            "route" => route.clone(),
            "method" => method,
            "status" => response.status().as_u16().to_string()
        )
        .increment(1);
        metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
            .record(elapsed.as_secs_f64());
        response
    }
    .instrument(span)
    .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_come_from_the_documented_routes_only() {
        let labels = RouteLabels::new(
            "/auth",
            [
                ("/".to_owned(), vec![poem::http::Method::GET]),
                (
                    "/validate_request".to_owned(),
                    vec![poem::http::Method::GET],
                ),
            ],
        );
        assert_eq!(labels.route("/auth/validate_request"), "/validate_request");
        assert_eq!(labels.route("/auth"), "/");
        assert_eq!(labels.route("/auth/metrics"), "/metrics");
        assert_eq!(labels.route("/auth/docs/swagger-ui.css"), "/docs");
        assert_eq!(labels.route("/auth/validate_request/x"), "unmatched");
        assert_eq!(labels.route("/elsewhere"), "unmatched");
    }

    #[test]
    fn a_documented_path_allows_its_documented_methods() {
        let labels = RouteLabels::new(
            "/auth",
            [(
                "/keys".to_owned(),
                vec![poem::http::Method::GET, poem::http::Method::POST],
            )],
        );
        assert_eq!(
            labels.allow("/auth/keys").map(HeaderValue::as_bytes),
            Some(&b"GET, POST, HEAD"[..])
        );
        assert_eq!(labels.allow("/auth/elsewhere"), None);
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let made_up = poem::http::Method::from_bytes(b"PROPFIND").expect("method");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&poem::http::Method::PATCH), "PATCH");
    }
}
