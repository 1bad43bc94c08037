//! A 400 names the field and the type it expects, never the value: a secret sent in the wrong
//! field, or with the wrong type, reaches neither the answer nor a log line, at any level.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backend, CapturedLogs, TestApp};

/// What the secrets below have in common, to look for in answers and logs.
const SECRET_TEXT: &str = "my-secret-key-value";
const SECRET_DIGITS: &str = "98765432";

/// Secret-looking values of every JSON type a field may wrongly get.
fn secrets() -> [Value; 4] {
    [
        json!(SECRET_TEXT),
        json!(98_765_432_123_456_789_i64),
        json!(98_765_432.5),
        json!(true),
    ]
}

/// Every JSON route with a valid body.
fn routes() -> Vec<(&'static str, Value)> {
    let identifier = Uuid::new_v4();
    vec![
        (
            "/authenticate",
            json!({"key": "k".repeat(16), "identifier": identifier}),
        ),
        (
            "/refresh",
            json!({"refresh_token": "r".repeat(16), "identifier": identifier}),
        ),
        ("/validate", json!({"jwt": "a.b.c"})),
        (
            "/register_key",
            json!({"key": "k".repeat(16), "identifier": identifier}),
        ),
        ("/is_key_registered", json!({"key": "k".repeat(16)})),
        ("/revoke_key", json!({"key_id": 1})),
        ("/revoke_key", json!({"key": "k".repeat(16)})),
        (
            "/revoke_refresh_token",
            json!({"refresh_token": "r".repeat(16)}),
        ),
        ("/revoke_identifier", json!({"identifier": identifier})),
    ]
}

fn leaks(text: &str) -> bool {
    text.contains(SECRET_TEXT) || text.contains(SECRET_DIGITS)
}

async fn a_value_of_the_wrong_type_is_never_echoed(backend: Backend) {
    let logs = CapturedLogs::start();
    let app = TestApp::new(backend).await;
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, body) in routes() {
        let fields: Vec<String> = body.as_object().expect("object").keys().cloned().collect();
        for field in fields {
            for secret in secrets() {
                // Only values the field cannot take: a string where a string (not a UUID) is
                // expected, or an integer for an integer, is an ordinary request.
                let fits = match (&body[&field], &secret) {
                    (Value::String(valid), Value::String(_)) => Uuid::parse_str(valid).is_err(),
                    (Value::Number(_), Value::Number(number)) => number.is_i64(),
                    _ => false,
                };
                if fits {
                    continue;
                }
                let mut body = body.clone();
                body[&field] = secret.clone();
                let (status, answer) = app.post(path, body.clone()).await;
                assert_eq!(status, 400, "{path} {body}: {answer}");
                checked += 1;
                let message = answer["message"].as_str().expect("message");
                if leaks(&answer.to_string()) {
                    problems.push(format!("{path} {body}: echoed: {message}"));
                }
                if !message.contains(&format!("`{field}`")) || !message.contains("expected") {
                    problems.push(format!("{path} {body}: no field or type: {message}"));
                }
            }
        }
    }
    assert!(checked >= 30, "{checked} type errors checked");
    let response = app
        .client
        .get("/keys")
        .query("identifier", &SECRET_TEXT)
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 400);
    let answer: Value = response.json().await.value().deserialize();
    let message = answer["message"].as_str().expect("message");
    if leaks(message) || !message.contains("`identifier`") {
        problems.push(format!("/keys?identifier=: {message}"));
    }

    let logged = logs.text();
    assert!(
        logged.contains("request rejected"),
        "the capture works: {logged}"
    );
    problems.extend(
        logged
            .lines()
            .filter(|line| leaks(line))
            .map(|line| format!("logged: {line}")),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

on_both_backends!(a_value_of_the_wrong_type_is_never_echoed);

/// One body path: whatever is wrong with a body (not JSON, trailing data, a field missing or of
/// the wrong type, a length the schema forbids), the answer is the operation's documented 400
/// with the same error shape, and a message in one form that names the field; a body over the
/// limit gets the documented 413 in the same shape.
async fn every_body_refusal_has_one_shape(backend: Backend) {
    let app = TestApp::with_args(backend, &["--max-body-size", "8192"]).await;
    let identifier = Uuid::new_v4();
    let raw = |body: String| {
        app.client
            .post("/authenticate")
            .content_type("application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let cases = [
        ("not json", "key=abc".to_owned(), 400, "invalid JSON body: "),
        (
            "trailing data",
            format!(r#"{{"key": "k", "identifier": "{identifier}"}} x"#),
            400,
            "invalid JSON body: ",
        ),
        (
            "missing field",
            r#"{"key": "k"}"#.to_owned(),
            400,
            "invalid JSON body: missing field `identifier`",
        ),
        (
            "wrong type",
            format!(r#"{{"key": 407, "identifier": "{identifier}"}}"#),
            400,
            "field `key`: invalid type: integer, expected",
        ),
        (
            "too long for the schema",
            format!(
                r#"{{"key": "{}", "identifier": "{identifier}"}}"#,
                "k".repeat(4097)
            ),
            400,
            "field `key`: expected maxLength(4096)",
        ),
        (
            "over the size limit",
            format!(
                r#"{{"key": "{}", "identifier": "{identifier}"}}"#,
                "k".repeat(9000)
            ),
            413,
            "the request body is larger than 8192 bytes",
        ),
    ];
    for (case, body, status, message) in cases {
        let response = raw(body).await;
        assert_eq!(response.0.status().as_u16(), status, "{case}");
        let answer: Value = response.json().await.value().deserialize();
        let object = answer.as_object().expect("a JSON object");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, ["error", "message"], "{case}: {answer}");
        let error = if status == 413 {
            "payload_too_large"
        } else {
            "invalid_request"
        };
        assert_eq!(answer["error"], error, "{case}: {answer}");
        let text = answer["message"].as_str().expect("message");
        assert!(text.starts_with(message), "{case}: {text}");
    }
    let (status, _) = app
        .post(
            "/authenticate",
            json!({"key": "k".repeat(16), "identifier": identifier}),
        )
        .await;
    assert_eq!(
        status, 401,
        "a good body whatever its Content-Type gets to the decision"
    );
}

on_both_backends!(every_body_refusal_has_one_shape);
