//! Reading the deployment files and the server's `--help`, and running the linters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_yaml::Value;
use tokio::process::Command;

/// The bound on every external command (a linter, the server's `--help`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is inside the workspace")
}

pub(crate) fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// What `jwthenticator-server --help` says: the subcommands, and each option's environment
/// variable with its default.
#[derive(Debug)]
pub(crate) struct Help {
    pub(crate) commands: BTreeSet<String>,
    /// Environment variable → default value (`None` when the option has no default).
    pub(crate) variables: BTreeMap<String, Option<String>>,
}

impl Help {
    pub(crate) async fn of(binary: &str) -> Self {
        // A clean environment: clap shows the values of set variables in the help.
        let output = run(
            Command::new(binary).arg("--help").env_clear(),
            "the server's --help",
        )
        .await;
        assert!(output.status.success(), "--help failed: {output:?}");
        Self::parse(&String::from_utf8_lossy(&output.stdout))
    }

    fn parse(help: &str) -> Self {
        let mut commands = BTreeSet::new();
        let mut variables = BTreeMap::new();
        let mut section = "";
        // An option's description wraps over several lines: gather them until the next option.
        let mut option = String::new();
        let mut flush = |option: &mut String| {
            if let Some((name, default)) = env_and_default(option) {
                variables.insert(name, default);
            }
            option.clear();
        };
        for line in help.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                flush(&mut option);
                section = line;
                continue;
            }
            match section {
                // `  name   description`; continuation lines are indented further.
                "Commands:" if line.starts_with("  ") && !line.starts_with("   ") => {
                    commands.extend(line.split_whitespace().next().map(str::to_owned));
                }
                "Options:" => {
                    let trimmed = line.trim_start();
                    if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
                        flush(&mut option);
                    }
                    option.push(' ');
                    option.push_str(trimmed);
                }
                _ => {}
            }
        }
        flush(&mut option);
        commands.remove("help");
        Self {
            commands,
            variables,
        }
    }

    /// The default of the option read from `variable`, as `--help` prints it.
    pub(crate) fn default_of(&self, variable: &str) -> Option<&str> {
        self.variables.get(variable).and_then(Option::as_deref)
    }
}

/// `[env: NAME=]` or `[env: NAME]` and `[default: VALUE]` of one option's help.
fn env_and_default(option: &str) -> Option<(String, Option<String>)> {
    let after = &option[option.find("[env: ")? + "[env: ".len()..];
    let name: String = after
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    let default = option.find("[default: ").map(|start| {
        let rest = &option[start + "[default: ".len()..];
        rest[..rest.find(']').unwrap_or(rest.len())].to_owned()
    });
    Some((name, default))
}

/// One build stage of a Dockerfile: its name and its instructions (keyword upper-cased,
/// continuation lines joined).
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) name: Option<String>,
    /// The image or earlier stage it starts from.
    pub(crate) base: String,
    pub(crate) instructions: Vec<(String, String)>,
}

impl Stage {
    /// The arguments of every `keyword` instruction of this stage.
    pub(crate) fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, args)| args.as_str())
            .collect()
    }

    /// The arguments of the last `keyword` instruction (the one in effect), if any.
    pub(crate) fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last().copied()
    }
}

/// `stage` and the stages it is built on, nearest first.
pub(crate) fn lineage<'s>(stages: &'s [Stage], stage: &'s Stage) -> Vec<&'s Stage> {
    let mut chain = vec![stage];
    while let Some(base) = chain
        .last()
        .and_then(|s| stages.iter().find(|b| b.name.as_deref() == Some(&s.base)))
    {
        // A stage cannot be built on itself; stop rather than loop on a malformed file.
        if chain.len() > stages.len() {
            break;
        }
        chain.push(base);
    }
    chain
}

/// The stages of a Dockerfile, in order.
pub(crate) fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (pending.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let instruction = std::mem::take(&mut pending);
        let (keyword, args) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [.., as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                name,
                base: words
                    .iter()
                    .find(|word| !word.starts_with("--"))
                    .map_or_else(String::new, |word| (*word).to_owned()),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, args));
        }
    }
    stages
}

/// The exec form `["a", "b"]` of an instruction's arguments.
pub(crate) fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|err| panic!("{args:?} is not in exec form: {err}"))
}

/// Every YAML document of `relative` (documents separated by `---` lines).
pub(crate) fn yaml_documents(relative: &Path) -> Vec<Value> {
    let path = workspace_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(document) = documents.last_mut() {
            document.push_str(line);
            document.push('\n');
        }
    }
    documents
        .iter()
        .map(|document| {
            serde_yaml::from_str::<Value>(document)
                .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// `value[key0][key1]...`, `Null` where a key is missing.
pub(crate) fn at<'v>(value: &'v Value, keys: &[&str]) -> &'v Value {
    keys.iter()
        .try_fold(value, |value, key| value.get(*key))
        .unwrap_or(&Value::Null)
}

/// A scalar as a string (YAML `8080` and `"8080"` alike).
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A sequence of strings (`[]` when absent).
pub(crate) fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// Every mapping in `value`, depth first, each with the key under which it appears.
pub(crate) fn walk<'v>(value: &'v Value, key: &str, visit: &mut impl FnMut(&str, &'v Value)) {
    match value {
        Value::Mapping(map) => {
            visit(key, value);
            for (k, v) in map {
                walk(v, k.as_str().unwrap_or_default(), visit);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                walk(item, key, visit);
            }
        }
        _ => {}
    }
}

/// Runs `command` to its end, killing it if it takes longer than [`COMMAND_TIMEOUT`].
pub(crate) async fn run(command: &mut Command, what: &str) -> std::process::Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|err| panic!("starting {what}: {err}"))
}

/// The path of `program` on `PATH`, if it is there.
pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}
