//! Request-level behaviour: JSON bodies whatever their Content-Type, the body size limit, and
//! the request log line.

use std::time::Instant;

use jwthenticator_core::describe_json_error;
use poem::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use tracing::Instrument;

use crate::error::into_json_response;

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

/// For the JSON endpoints: reads the body up to the size limit, checks it is a `T` (naming the
/// field that is wrong and the type it expects, which poem-openapi's own message does not, and
/// never the value, which may be a secret sent in the wrong field), and declares it JSON, since
/// the original accepted `curl -d` bodies sent as form data.
pub(crate) fn json_body<T: DeserializeOwned, E: Endpoint>(ep: E) -> impl Endpoint {
    ep.before(|mut req: Request| async move {
        let limit = req.data::<MaxBodySize>().map_or(64 * 1024, |m| m.0);
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large(limit));
        }
        let body = req
            .take_body()
            .into_bytes_limit(limit)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => too_large(limit),
                other => bad_request(format!("cannot read the request body: {other}")),
            })?;
        let mut parser = serde_json::Deserializer::from_slice(&body);
        if let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut parser) {
            let reason = describe_json_error(err.inner());
            let path = err.path().to_string();
            // Only a data error is about one of `T`'s fields; a syntax error may lie in a
            // member `T` ignores, whose name the sender chose.
            return Err(bad_request(
                if path == "." || err.inner().classify() != Category::Data {
                    format!("invalid JSON body: {reason}")
                } else {
                    format!("field `{path}`: {reason}")
                },
            ));
        }
        if let Err(err) = parser.end() {
            return Err(bad_request(format!(
                "invalid JSON body: {}",
                describe_json_error(&err)
            )));
        }
        req.set_body(body);
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(req)
    })
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

/// The label values of the HTTP metrics: every value comes from a fixed set, so made-up
/// methods and paths (scanners, `/validate_request` with any method) cannot add series.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabels {
    prefix: String,
    /// The paths of every documented operation, without the prefix.
    routes: std::sync::Arc<std::collections::HashSet<String>>,
}

impl RouteLabels {
    pub(crate) fn new(prefix: &str, routes: impl IntoIterator<Item = String>) -> Self {
        let mut routes: std::collections::HashSet<String> = routes.into_iter().collect();
        routes.extend(["/metrics", "/openapi.json", "/openapi.yaml"].map(str::to_owned));
        Self {
            prefix: prefix.to_owned(),
            routes: std::sync::Arc::new(routes),
        }
    }

    /// The route template a path was served by, `/docs` for the Swagger UI's files, else
    /// `unmatched`.
    fn route(&self, path: &str) -> String {
        let path = path.strip_prefix(self.prefix.as_str()).unwrap_or(path);
        let path = if path.is_empty() { "/" } else { path };
        if self.routes.contains(path) {
            path.to_owned()
        } else if path == "/docs" || path.starts_with("/docs/") {
            "/docs".to_owned()
        } else {
            "unmatched".to_owned()
        }
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
        let response = match ep.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => into_json_response(err),
        };
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
        let labels = RouteLabels::new("/auth", ["/".to_owned(), "/validate_request".to_owned()]);
        assert_eq!(labels.route("/auth/validate_request"), "/validate_request");
        assert_eq!(labels.route("/auth"), "/");
        assert_eq!(labels.route("/auth/metrics"), "/metrics");
        assert_eq!(labels.route("/auth/docs/swagger-ui.css"), "/docs");
        assert_eq!(labels.route("/auth/validate_request/x"), "unmatched");
        assert_eq!(labels.route("/elsewhere"), "unmatched");
    }

    #[test]
    fn made_up_methods_share_one_label() {
        let made_up = poem::http::Method::from_bytes(b"PROPFIND").expect("method");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&poem::http::Method::PATCH), "PATCH");
    }
}
