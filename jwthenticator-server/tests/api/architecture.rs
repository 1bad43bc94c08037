//! The server's structure, as ARCHITECTURE.md describes it: its top-level modules import each
//! other in one direction only, no source file grows past the size one can hold in mind, and
//! every module ARCHITECTURE.md names exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Non-test lines a source file of the server may have.
const MAX_LINES: usize = 600;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file without its unit tests (the `#[cfg(test)]` module at its end) and comments.
fn code(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read source");
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

/// The top-level module a file belongs to (`keys` for `src/keys/set.rs`), `None` for the crate
/// root and the binary.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(source_dir()).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules a file's code names through `crate::`, grouped imports included.
fn imports(code: &[String], modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = code.join(" ");
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(String::new()),
                    c => items.last_mut().expect("an item").push(c),
                }
            }
            let firsts: Vec<String> = items
                .iter()
                .filter_map(|item| item.trim().split("::").next().map(str::to_owned))
                .collect();
            found.extend(firsts.into_iter().filter(|name| modules.contains(name)));
            continue;
        } else {
            vec![
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default(),
            ]
        };
        found.extend(
            names
                .into_iter()
                .filter(|name| modules.contains(*name))
                .map(str::to_owned),
        );
    }
    found
}

/// The module graph: each top-level module and the ones it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let mut uses = imports(&code(file), &modules);
        uses.remove(&module);
        graph.get_mut(&module).expect("known").extend(uses);
    }
    graph
}

/// The modules in layers: each imports only modules of lower layers. Panics on a cycle, naming
/// the modules in it.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < graph.len() {
        let layer: Vec<String> = graph
            .iter()
            .filter(|(m, uses)| !placed.contains(*m) && uses.iter().all(|u| placed.contains(u)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            !layer.is_empty(),
            "the server's modules import each other in a circle: {:?}",
            graph
                .iter()
                .filter(|(m, _)| !placed.contains(*m))
                .map(|(m, uses)| format!(
                    "{m} -> {:?}",
                    uses.iter()
                        .filter(|u| !placed.contains(*u))
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
        );
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    layers
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    let layers = layers(&graph);
    // The layering, printed for ARCHITECTURE.md (`cargo test architecture -- --nocapture`).
    for (depth, layer) in layers.iter().enumerate() {
        let described: Vec<String> = layer
            .iter()
            .map(|m| {
                let uses = &graph[m];
                if uses.is_empty() {
                    m.clone()
                } else {
                    format!(
                        "{m} -> {}",
                        uses.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            })
            .collect();
        println!("layer {depth}: {}", described.join("; "));
    }
    assert!(layers.len() > 3, "{layers:?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.into_iter().map(str::to_owned).collect()))
    .collect();
    let found = std::panic::catch_unwind(|| layers(&graph)).expect_err("a cycle");
    let message = found.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("a ->") && !message.contains("d ->"),
        "{message}"
    );
    let modules: BTreeSet<String> = ["keys", "store"].map(str::to_owned).into();
    let uses = imports(
        &["use crate::{keys::{KeySet, shared}, store::Store};".to_owned()],
        &modules,
    );
    assert_eq!(uses, modules);
}

#[test]
fn no_source_file_is_longer_than_one_can_hold_in_mind() {
    let mut files = Vec::new();
    rust_files(&source_dir(), &mut files);
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, code(f).len()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(f, lines)| format!("{}: {lines}", f.display()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines of code: {long:?}");
}

#[test]
fn every_module_architecture_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    // Every `path/to/file.rs` or `path/to/dir/` in backquotes is a path from the root.
    let mut named = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let looks_like_a_path = quoted.contains('/')
            && (quoted.ends_with(".rs") || quoted.ends_with('/') || quoted.ends_with(".md"))
            && !quoted.contains(' ');
        if looks_like_a_path {
            named += 1;
            assert!(
                root.join(quoted).exists(),
                "ARCHITECTURE.md names `{quoted}`, which does not exist"
            );
        }
    }
    assert!(named > 20, "ARCHITECTURE.md names only {named} paths");
    // And every top-level module of the server is in it.
    for module in graph().keys() {
        let file = format!("jwthenticator-server/src/{module}.rs");
        let dir = format!("jwthenticator-server/src/{module}/");
        assert!(
            text.contains(&file) || text.contains(&dir),
            "ARCHITECTURE.md does not describe the server module `{module}`"
        );
    }
}
