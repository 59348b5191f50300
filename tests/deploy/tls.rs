//! TLS verification is never disabled, anywhere: not in the service, not in
//! a collector config, not in a chart or a manifest, not in a command a
//! script runs or a README tells users to run. The one plaintext connection
//! is the zero-account demo's collector -> Jaeger hop inside the cluster,
//! which has no TLS to verify.
//!
//! Each kind of file is parsed, not matched line by line: YAML (the collector
//! configs, every chart's rendered output over every value set, values
//! files, manifests, workflows) is walked value by value, including YAML
//! held in strings such as a ConfigMap's collector config; Rust is tokenized,
//! so comments and strings do not count; shell is split into words, so
//! `curl -fsSk` is caught and `curl -o k` is not.
//! `each_detector_catches_a_planted_example` shows that every detector can fail.

use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use serde_json::Value;
use somework_testkit::helm::{Rendered, parse_yaml};
use somework_testkit::tools::repo_root;

use crate::helpers::Charts;

/// Keys whose true value turns certificate verification off: the collector's
/// `configtls` (Go), kubeconfig, and Kubernetes API objects.
const SKIP_VERIFY_KEYS: &[&str] = &[
    "insecure_skip_verify",
    "insecure-skip-tls-verify",
    "insecureSkipVerify",
    "insecureSkipTLSVerify",
];

/// Rust identifiers that turn verification off: reqwest's builder methods,
/// the sentry crate's `ClientOptions::accept_invalid_certs`, and rustls's
/// `dangerous()` escape hatch (custom certificate verifiers).
const RUST_VERIFICATION_OFF: &[&str] = &[
    "danger_accept_invalid_certs",
    "danger_accept_invalid_hostnames",
    "accept_invalid_certs",
    "accept_invalid_hostnames",
    "dangerous",
];

/// The one exporter allowed to send in plaintext, and where it must point.
const PLAINTEXT_EXPORTER: &str = "otlp_grpc/jaeger";
const PLAINTEXT_HOST_SUFFIX: &str = ".svc.cluster.local";

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".tools" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn project_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&repo_root(), &mut files);
    files
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- YAML ----

/// A YAML boolean as YAML 1.1 readers (Go's yaml.v2 among them) take it.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => ["true", "yes", "on", "y", "1"]
            .iter()
            .any(|t| s.trim().eq_ignore_ascii_case(t)),
        _ => false,
    }
}

/// The host of a collector endpoint (`host:port`, `scheme://host:port/...`,
/// or `${env:NAME:-default}`, whose default is used).
fn endpoint_host(endpoint: &str) -> String {
    let endpoint = match endpoint.trim().strip_prefix("${env:") {
        Some(rest) => rest
            .split_once(":-")
            .map_or("", |(_, default)| default.trim_end_matches('}')),
        None => endpoint.trim(),
    };
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
        None => authority.split(':').next().unwrap_or_default().to_owned(),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// Everything in `value` that turns verification off, or sends plaintext
/// where it may not; `path` names where it is (e.g. `exporters.otlp_grpc`).
fn yaml_findings(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(tls) = map.get("tls")
                && tls.get("insecure").is_some_and(truthy)
            {
                let component = path.rsplit('.').next().unwrap_or_default();
                let host = map
                    .get("endpoint")
                    .and_then(Value::as_str)
                    .map(endpoint_host)
                    .unwrap_or_default();
                let in_cluster_jaeger =
                    component == PLAINTEXT_EXPORTER && host.ends_with(PLAINTEXT_HOST_SUFFIX);
                if !is_loopback(&host) && !in_cluster_jaeger {
                    found.push(format!("{path}: tls.insecure to {host:?}"));
                }
            }
            for (key, item) in map {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if SKIP_VERIFY_KEYS.contains(&key.as_str()) && truthy(item) {
                    found.push(format!("{here}: {item}"));
                }
                // A container's command line, as one argv.
                if let ("command" | "args", Value::Array(words)) = (key.as_str(), item) {
                    let words: Vec<String> = words
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    found.extend(
                        argv_findings(&words)
                            .into_iter()
                            .map(|f| format!("{here}: {f}")),
                    );
                }
                yaml_findings(item, &here, found);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                yaml_findings(item, &format!("{path}[{index}]"), found);
            }
        }
        Value::String(text) => {
            // YAML inside a string: a ConfigMap's collector config.
            if text.contains('\n')
                && text.contains(':')
                && let Ok(inner) = parse_yaml(text)
                && inner.is_object()
            {
                yaml_findings(&inner, path, found);
            }
            // Commands in a string: a container's script, a workflow's `run`.
            if text.contains(char::is_whitespace) {
                found.extend(
                    shell_findings(text)
                        .into_iter()
                        .map(|f| format!("{path}: {f}")),
                );
            }
        }
        _ => {}
    }
}

/// `text` with each `@NAME@` placeholder that a script fills in with `sed`
/// (deploy/local-cluster) replaced by a plain word, so that it parses.
fn fill_placeholders(text: &str) -> String {
    let mut parts = text.split('@');
    let mut filled = parts.next().unwrap_or_default().to_owned();
    let mut previous_was_placeholder = false;
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        let is_name = !part.is_empty()
            && part.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && index + 1 < parts.len()
            && !previous_was_placeholder;
        if is_name {
            filled.push_str("placeholder");
        } else {
            if !previous_was_placeholder {
                filled.push('@');
            }
            filled.push_str(part);
        }
        previous_was_placeholder = is_name;
    }
    filled
}

fn yaml_text_findings(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for document in Rendered::parse(&fill_placeholders(text)).objects {
        yaml_findings(&document, "", &mut found);
    }
    found
}

// ---- Rust ----

fn rust_findings(source: &str) -> Vec<String> {
    fn walk(tokens: TokenStream, found: &mut Vec<String>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    let name = ident.to_string();
                    if RUST_VERIFICATION_OFF.contains(&name.as_str()) {
                        found.push(name);
                    }
                }
                TokenTree::Group(group) => walk(group.stream(), found),
                TokenTree::Punct(_) | TokenTree::Literal(_) => {}
            }
        }
    }
    let tokens: TokenStream = source.parse().unwrap_or_else(|e| panic!("not Rust: {e:?}"));
    let mut found = Vec::new();
    walk(tokens, &mut found);
    found
}

// ---- shell ----

/// Words that end one command and start another.
fn ends_command(word: &str) -> bool {
    matches!(word, ";" | "&&" | "||" | "|" | "&" | "(" | ")" | "{" | "}")
        || word.ends_with(';')
        || word.ends_with('|')
        || word.ends_with('&')
}

/// curl's short options that take an argument: in a cluster such as `-so`,
/// what follows one of them is its argument, not more options.
const CURL_SHORT_WITH_ARGUMENT: &str = "ACDEFHKOPQTUXYbcdeHmoruwxyz";

/// The program a word names: `/usr/bin/curl` and `$(curl` name curl, and so
/// does `code=$(curl`, a command substitution in an assignment.
fn program_name(word: &str) -> &str {
    let word = word.rsplit("$(").next().unwrap_or(word);
    word.trim_start_matches(['(', '`'])
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// What one command (program name first) does to verification.
fn command_findings(words: &[String]) -> Vec<String> {
    let Some(program) = words.first() else {
        return Vec::new();
    };
    let program = program_name(program);
    let arguments = &words[1..];
    let flagged = |word: &String| -> bool {
        let word = word.as_str();
        match program {
            "curl" => {
                word == "--insecure"
                    || word == "--proxy-insecure"
                    || (word.starts_with('-')
                        && !word.starts_with("--")
                        && word[1..]
                            .chars()
                            .take_while(|c| !CURL_SHORT_WITH_ARGUMENT.contains(*c))
                            .any(|c| c == 'k'))
            }
            "wget" => word == "--no-check-certificate",
            "git" => word.eq_ignore_ascii_case("http.sslVerify=false"),
            _ => {
                word.contains("insecure-skip-tls-verify")
                    && !word.ends_with("=false")
                    && matches!(program, "kubectl" | "helm" | "oc")
            }
        }
    };
    arguments
        .iter()
        .filter(|w| flagged(w))
        .map(|w| format!("{program} {w}"))
        .collect()
}

/// Every command in `words`: a program starts after a command separator,
/// and also wherever curl, wget, git, kubectl or helm appear as a word
/// (`timeout 5 curl -k`, `xargs curl -k`, `$(curl -k ...)`).
fn argv_findings(words: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (start, word) in words.iter().enumerate() {
        let program = program_name(word);
        if matches!(program, "curl" | "wget" | "git" | "kubectl" | "helm" | "oc") {
            let end = words[start + 1..]
                .iter()
                .position(|w| ends_command(w))
                .map_or(words.len(), |i| start + 1 + i + 1);
            let mut command: Vec<String> = words[start..end].to_vec();
            if let Some(last) = command.last_mut() {
                *last = last.trim_end_matches([';', '|', '&', ')', '`']).to_owned();
            }
            found.extend(command_findings(&command));
        }
        if word == "NODE_TLS_REJECT_UNAUTHORIZED=0" || word.starts_with("GIT_SSL_NO_VERIFY=") {
            found.push(word.clone());
        }
    }
    found
}

/// The commands of a shell script, line by line (continuations joined,
/// comments dropped), split into words as the shell would.
fn shell_findings(script: &str) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = shlex::split(line)
            .unwrap_or_else(|| line.split_whitespace().map(str::to_owned).collect());
        let words: Vec<String> = words
            .into_iter()
            .take_while(|w| !w.starts_with('#'))
            .collect();
        found.extend(argv_findings(&words));
    }
    found
}

/// The shell in a Dockerfile's RUN instructions.
fn dockerfile_findings(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.trim().strip_prefix("RUN "))
        .flat_map(shell_findings)
        .collect()
}

/// The shell in a Markdown file's fenced blocks marked sh, bash, shell or
/// console (or unmarked).
fn markdown_findings(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut block, fence) {
            (None, Some(language)) => {
                if matches!(language.trim(), "" | "sh" | "bash" | "shell" | "console") {
                    block = Some(String::new());
                } else {
                    // Another language: skip to its closing fence.
                    block = Some("\u{0}".to_owned());
                }
            }
            (Some(code), Some(_)) => {
                if !code.starts_with('\u{0}') {
                    found.extend(shell_findings(code));
                }
                block = None;
            }
            (Some(code), None) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    found
}

// ---- the checks ----

#[test]
fn no_file_turns_certificate_verification_off() {
    let files = project_files();
    assert!(
        files.len() > 50,
        "found only {} files; wrong root?",
        files.len()
    );
    let root = repo_root();
    let mut offenders = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap_or(file);
        // Chart templates are checked rendered (below), not as source.
        let is_template = relative.components().any(|c| c.as_os_str() == "templates");
        let findings = if has_extension(file, &["yaml", "yml"]) && !is_template {
            yaml_text_findings(&read(file))
        } else if has_extension(file, &["rs"]) {
            rust_findings(&read(file))
        } else if has_extension(file, &["sh"]) || relative.starts_with(".ci") {
            shell_findings(&read(file))
        } else if has_extension(file, &["md"]) {
            markdown_findings(&read(file))
        } else if relative == Path::new("Dockerfile") {
            dockerfile_findings(&read(file))
        } else {
            continue;
        };
        checked += 1;
        offenders.extend(
            findings
                .into_iter()
                .map(|f| format!("{}: {f}", relative.display())),
        );
    }
    assert!(checked > 50, "checked only {checked} files");
    assert!(
        offenders.is_empty(),
        "TLS verification disabled:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_rendered_chart_turns_verification_off_or_sends_plaintext_outside_the_cluster() {
    let Some(charts) = Charts::find() else {
        return;
    };
    let sets = charts.value_sets();
    assert!(!sets.is_empty());
    let mut offenders = Vec::new();
    let mut plaintext_jaeger = 0;
    for set in &sets {
        let label = set.label();
        let rendered = charts.render(&label);
        for object in &rendered.objects {
            let mut found = Vec::new();
            yaml_findings(object, "", &mut found);
            offenders.extend(found.into_iter().map(|f| format!("{label}: {f}")));
            plaintext_jaeger += usize::from(object.to_string().contains(PLAINTEXT_EXPORTER));
        }
        let notes = charts.notes(&label);
        offenders.extend(
            shell_findings(&notes)
                .into_iter()
                .map(|f| format!("{label} NOTES.txt: {f}")),
        );
    }
    assert!(
        offenders.is_empty(),
        "TLS verification disabled:\n{}",
        offenders.join("\n")
    );
    // The walk reached the collector config inside the ConfigMap.
    assert!(
        plaintext_jaeger > 0,
        "no rendered value set has the zero-account Jaeger exporter"
    );
}

#[test]
fn each_detector_catches_a_planted_example() {
    let yaml_cases = [
        (
            "skip verify, YAML 1.1 yes",
            "exporters:\n  otlp_http:\n    endpoint: https://ingest.example.com\n    tls:\n      insecure_skip_verify: yes\n",
            1,
        ),
        (
            "skip verify, quoted",
            "exporters:\n  otlp_http:\n    tls:\n      insecure_skip_verify: \"true\"\n",
            1,
        ),
        (
            "plaintext to a remote host, inside a ConfigMap",
            "kind: ConfigMap\ndata:\n  config.yaml: |\n    exporters:\n      otlp_grpc:\n        endpoint: collector.example.com:4317\n        tls:\n          insecure: true\n",
            1,
        ),
        (
            "plaintext named like the Jaeger exporter, outside the cluster",
            "exporters:\n  otlp_grpc/jaeger:\n    endpoint: jaeger.example.com:4317\n    tls:\n      insecure: true\n",
            1,
        ),
        (
            "kubeconfig",
            "clusters:\n- cluster:\n    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true\n",
            1,
        ),
        (
            "a container running curl -k",
            "containers:\n- name: probe\n  command: [curl, -sk, https://example.com]\n",
            1,
        ),
        (
            "a container's shell script",
            "containers:\n- name: probe\n  command: [sh, -c]\n  args:\n  - |\n    set -eu\n    wget --no-check-certificate -qO- https://example.com\n",
            1,
        ),
        (
            "a workflow step",
            "jobs:\n  e2e:\n    steps:\n    - run: |\n        kubectl --insecure-skip-tls-verify get pods\n",
            1,
        ),
        (
            "allowed: the in-cluster Jaeger hop, loopback, verification on",
            "exporters:\n  otlp_grpc/jaeger:\n    endpoint: ${env:JAEGER:-jaeger.observability.svc.cluster.local:4317}\n    tls:\n      insecure: true\n  otlp_grpc/local:\n    endpoint: http://127.0.0.1:4317\n    tls:\n      insecure: true\n  otlp_http:\n    tls:\n      insecure_skip_verify: false\n",
            0,
        ),
    ];
    assert_eq!(
        fill_placeholders("image: @IMAGE@\nemail: a@b.c\n"),
        "image: placeholder\nemail: a@b.c\n"
    );
    for (what, yaml, expected) in yaml_cases {
        let found = yaml_text_findings(yaml);
        assert_eq!(found.len(), expected, "{what}: {found:?}");
    }

    let rust_cases = [
        (
            "reqwest",
            "fn c() { reqwest::Client::builder().danger_accept_invalid_certs(true).build(); }",
            1,
        ),
        (
            "sentry",
            "fn o() -> sentry::ClientOptions { sentry::ClientOptions { accept_invalid_certs: true, ..Default::default() } }",
            1,
        ),
        (
            "rustls",
            "fn r(c: &mut rustls::ClientConfig) { c.dangerous().set_certificate_verifier(v()); }",
            1,
        ),
        (
            "allowed: comments and strings",
            "// never danger_accept_invalid_certs\nconst S: &str = \"accept_invalid_certs\";",
            0,
        ),
    ];
    for (what, source, expected) in rust_cases {
        let found = rust_findings(source);
        assert_eq!(found.len(), expected, "{what}: {found:?}");
    }

    let shell_cases = [
        ("curl -k", "curl -k https://example.com", 1),
        (
            "a short-option cluster",
            "curl -fsSLk https://example.com | sh",
            1,
        ),
        (
            "curl --insecure, continued",
            "curl --silent \\\n  --insecure https://x",
            1,
        ),
        (
            "in a substitution",
            "code=$(curl -sk -o /dev/null https://x)",
            1,
        ),
        (
            "after a separator",
            "cd /tmp && timeout 5 curl -k https://x",
            1,
        ),
        ("wget", "wget --no-check-certificate https://x", 1),
        (
            "kubectl",
            "kubectl --insecure-skip-tls-verify=true get pods",
            1,
        ),
        ("git", "git -c http.sslVerify=false clone https://x", 1),
        ("node", "NODE_TLS_REJECT_UNAUTHORIZED=0 node app.js", 1),
        (
            "allowed: -k as an option's argument, a header, a comment",
            "curl -fsS -o k https://x\ncurl -H 'k: v' https://x\ncurl -sok https://x\n# curl -k in a comment\nwget -q https://x",
            0,
        ),
    ];
    for (what, script, expected) in shell_cases {
        let found = shell_findings(script);
        assert_eq!(found.len(), expected, "{what}: {found:?}");
    }

    assert_eq!(
        dockerfile_findings("FROM x\nRUN apt-get update && \\\n    curl -k https://x | sh\n").len(),
        1
    );
    assert_eq!(
        markdown_findings(
            "text curl -k\n```sh\ncurl --insecure https://x\n```\n```rust\ncurl -k\n```\n"
        )
        .len(),
        1
    );
}
