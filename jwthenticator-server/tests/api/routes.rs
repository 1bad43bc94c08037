//! The route paths the libraries call (core's `routes`) are the server's: each is an operation
//! of the generated OpenAPI document, and every operation there has its constant.

use std::collections::BTreeSet;

use jwthenticator_core::routes;

fn spec_paths() -> BTreeSet<String> {
    let spec: serde_json::Value =
        serde_json::from_str(&jwthenticator_server::openapi_json()).expect("the spec is JSON");
    spec["paths"]
        .as_object()
        .expect("the spec has paths")
        .iter()
        .filter(|(_, operations)| operations.as_object().is_some_and(|o| !o.is_empty()))
        .map(|(path, _)| path.clone())
        .collect()
}

#[test]
fn every_route_constant_of_core_is_an_operation_of_the_spec() {
    let documented = spec_paths();
    let missing: Vec<&str> = routes::ALL
        .iter()
        .copied()
        .filter(|path| !documented.contains(*path))
        .collect();
    assert!(missing.is_empty(), "{missing:?} not in {documented:?}");
}

#[test]
fn every_operation_of_the_spec_has_a_route_constant_in_core() {
    let constants: BTreeSet<&str> = routes::ALL.iter().copied().collect();
    let unnamed: Vec<String> = spec_paths()
        .into_iter()
        .filter(|path| !constants.contains(path.as_str()))
        .collect();
    assert!(
        unnamed.is_empty(),
        "add {unnamed:?} to jwthenticator_core::routes"
    );
}
