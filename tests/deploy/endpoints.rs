//! The files outside `src/` that name the service's endpoints, checked
//! against the one catalogue of them (`src/routes/catalog.rs`), so that a
//! renamed route or a changed status fails here instead of in a cluster:
//! - the chart's `helm test` calls: each is a catalogued example request,
//!   expecting the catalogued status;
//! - the chart's `loadgen.mix` schema: only catalogued names;
//! - the scripts' requests to the service: only catalogued routes;
//! - the README's Endpoints table: exactly the catalogued endpoints.

use std::path::Path;

use somework::routes::catalog::{Endpoint, Spec};
use somework_testkit::helm::chart_dir;
use somework_testkit::tools::repo_root;

use crate::helpers::read;

/// The catalogued endpoint that serves `path` (query aside): its route with
/// each `{param}` standing for one segment.
fn routed(path: &str) -> Option<&'static Spec> {
    let path = path.split('?').next().unwrap_or(path);
    Endpoint::ALL.into_iter().map(Endpoint::spec).find(|spec| {
        let route: Vec<&str> = spec.route.split('/').collect();
        let asked: Vec<&str> = path.split('/').collect();
        route.len() == asked.len()
            && route.iter().zip(&asked).all(|(route, asked)| {
                route == asked || (route.starts_with('{') && !asked.is_empty())
            })
    })
}

/// The `expect PATH STATUS` calls of the helm test pod's script.
fn helm_test_calls(template: &str) -> Vec<(String, u16)> {
    template
        .lines()
        .filter_map(|line| shlex::split(line.trim()))
        .filter(|words| words.len() == 3 && words[0] == "expect")
        .map(|words| {
            let status = words[2]
                .parse()
                .unwrap_or_else(|e| panic!("status {} of {}: {e}", words[2], words[1]));
            (words[1].clone(), status)
        })
        .collect()
}

#[test]
fn the_helm_test_calls_catalogued_examples_expecting_their_status() {
    let path = chart_dir("somework").join("templates/tests/test-endpoints.yaml");
    let calls = helm_test_calls(&read(&path));
    assert!(
        calls.len() >= 3,
        "too few calls found in {}: {calls:?}",
        path.display()
    );
    let mut wrong = Vec::new();
    for (example, status) in &calls {
        let spec = Endpoint::ALL
            .into_iter()
            .map(Endpoint::spec)
            .find(|spec| spec.example == example);
        match spec {
            None => wrong.push(format!(
                "{example}: not an example request of the catalogue"
            )),
            Some(spec) if spec.status.as_u16() != *status => wrong.push(format!(
                "{example}: expects {status}, the catalogue says {}",
                spec.status.as_u16()
            )),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagrees with src/routes/catalog.rs:\n{}",
        path.display(),
        wrong.join("\n")
    );
}

#[test]
fn the_loadgen_mix_schema_names_catalogued_endpoints_only() {
    let path = chart_dir("somework").join("values.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pattern = schema["properties"]["loadgen"]["properties"]["mix"]["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no loadgen.mix pattern", path.display()));
    // ^(somework|errorwork|...)=[0-9]{1,7}(,(somework|...)=[0-9]{1,7})*$
    let names = pattern
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(names, _)| names.split('|').collect::<Vec<_>>())
        .unwrap_or_else(|| panic!("no endpoint names in {pattern}"));
    assert!(names.len() >= 4, "too few names in {pattern}");
    let unknown: Vec<_> = names
        .iter()
        .filter(|name| Endpoint::from_name(name).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "loadgen.mix allows endpoints the catalogue does not know: {unknown:?} (expected some of {})",
        Endpoint::names()
    );
}

/// The paths a script sends to the service: what follows `$SERVICE_URL`
/// (`${SERVICE_URL}`), and the elements of a `paths=(...)` array.
fn service_paths(script: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for marker in ["$SERVICE_URL", "${SERVICE_URL}"] {
        for (at, _) in script.match_indices(marker) {
            let path: String = script[at + marker.len()..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | '$'))
                .collect();
            if !path.is_empty() {
                paths.push(path);
            }
        }
    }
    for line in script.lines() {
        let Some(array) = line.trim().strip_prefix("paths=(") else {
            continue;
        };
        let words = shlex::split(array.trim_end().trim_end_matches(')'))
            .unwrap_or_else(|| panic!("a paths array shell cannot split: {line}"));
        paths.extend(words);
    }
    paths
}

#[test]
fn scripts_request_catalogued_routes_only() {
    // The reader itself, on the forms the scripts use.
    let sample = "paths=(/somework '/chain?hops=2')\ncurl \"$SERVICE_URL/readyz\"\n\
                  curl \"${SERVICE_URL}/nowhere?x=1\" \"$SERVICE_URL$path\"";
    assert_eq!(
        service_paths(sample),
        ["/readyz", "/nowhere?x=1", "/somework", "/chain?hops=2"]
    );
    assert!(routed("/users/7").is_some() && routed("/nowhere").is_none());

    let dir = repo_root().join("scripts");
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().is_none_or(|ext| ext != "sh") {
            continue;
        }
        for asked in service_paths(&read(&path)) {
            if routed(&asked).is_none() {
                wrong.push(format!("{}: {asked}", name(&path)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "scripts request routes that src/routes/catalog.rs does not have:\n{}",
        wrong.join("\n")
    );
}

fn name(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn the_readme_endpoints_table_lists_the_catalogue() {
    let readme = read(&repo_root().join("README.md"));
    let table = readme
        .split_once("\n## Endpoints\n")
        .and_then(|(_, section)| section.split("\n## ").next())
        .unwrap_or_else(|| panic!("README.md has no Endpoints section"));
    // Rows such as | `GET /users/{id}` | ... | or | `GET /chain?hops=N` | ... |
    let documented: Vec<&str> = table
        .lines()
        .filter_map(|row| row.strip_prefix("| `")?.split_once('`'))
        .map(|(endpoint, _)| endpoint.split('?').next().unwrap_or(endpoint))
        .collect();
    let catalogued: Vec<String> = Endpoint::ALL
        .into_iter()
        .map(Endpoint::spec)
        .map(|spec| format!("{} {}", spec.method, spec.route))
        .collect();
    assert_eq!(
        documented, catalogued,
        "README.md's Endpoints table and src/routes/catalog.rs list different endpoints (or orders)"
    );
}
