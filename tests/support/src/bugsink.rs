//! A real Bugsink server, the self-hosted Sentry-compatible error tracker,
//! for tests that check what the service sends to Sentry.
//!
//! Each [`Bugsink`] is its own gunicorn process on a loopback port bound for it, with
//! its own sqlite databases in its own temporary directory, so tests can run
//! in parallel. Tests read what was stored through Bugsink's canonical API,
//! with the client `somework verify` uses (`somework::verify::backends::bugsink`).
//!
//! Migrating a fresh database takes about 5 s, so it happens once: the first
//! instance builds a migrated template (databases with the team, project and
//! API token already created) under the tools directory, and every instance
//! starts from a copy of it. `scripts/install-bugsink.sh` deletes the template
//! whenever it installs Bugsink, so a new version gets a new template.
//!
//! Bugsink answers 200 even for an event that it then fails to process; the
//! reason is only in its log. Every panic here therefore includes the log, and
//! [`Bugsink::server_log`] gives it to the tests' own assertion messages.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use somework::verify::backends::bugsink::{BugsinkApi, BugsinkError, Order};
use somework::verify::http::Direct;
use tempfile::TempDir;

use crate::tools;

const INSTALL_HINT: &str = "run scripts/install-bugsink.sh";
/// The template's name under the tools directory; install-bugsink.sh deletes it.
const TEMPLATE_DIR: &str = "bugsink-template";
const DATABASES: [&str; 2] = ["db.sqlite3", "snappea.sqlite3"];
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Creates the team and project the tests send to, and prints their ids.
const CREATE_PROJECT: &str = r#"
import json
from teams.models import Team
from projects.models import Project
team, _ = Team.objects.get_or_create(name="somework")
project, _ = Project.objects.get_or_create(team=team, name="somework")
print(json.dumps({"project_id": project.id, "sentry_key": project.sentry_key.hex}))
"#;

/// The ids every instance shares, because it starts from the same template.
#[derive(Debug, Clone)]
struct Template {
    dir: PathBuf,
    project_id: u64,
    sentry_key: String,
    token: String,
}

/// A running Bugsink; stopped (with its whole process group) when dropped.
#[derive(Debug)]
pub struct Bugsink {
    child: Child,
    port: u16,
    template: Template,
    http: reqwest::Client,
    /// The canonical API's server, for [`BugsinkApi`].
    api: Direct,
    /// Holds the databases and the log; deleted after the process is gone.
    dir: TempDir,
}

impl Bugsink {
    /// Starts a fresh, empty Bugsink with one project, `somework`.
    ///
    /// Returns `None` when Bugsink is not installed (outside CI), so the test
    /// can skip; see [`tools::require`].
    pub async fn start() -> Option<Self> {
        let manage = tools::require("bugsink-venv/bin/bugsink-manage", INSTALL_HINT)?;
        // Absolute, because Bugsink's commands run in other directories.
        let venv = manage
            .parent()
            .and_then(Path::parent)
            .and_then(|venv| fs::canonicalize(venv).ok())
            .unwrap_or_else(|| panic!("cannot resolve the venv of {}", manage.display()));
        let started = Instant::now();
        let (template, child, port, dir) = tokio::task::spawn_blocking(move || {
            let template = shared_template(&venv).clone();
            let (child, port, dir) = spawn_instance(&venv, &template);
            (template, child, port, dir)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let base = format!("http://127.0.0.1:{port}");
        let base = reqwest::Url::parse(&base).expect("a loopback URL");
        let bugsink = Self {
            child,
            port,
            template,
            http: reqwest::Client::new(),
            api: Direct::new(&base).expect("an HTTP client for Bugsink"),
            dir,
        };
        bugsink.wait_until_ready().await;
        eprintln!(
            "bugsink: ready on 127.0.0.1:{} in {:.2?}",
            bugsink.port,
            started.elapsed()
        );
        Some(bugsink)
    }

    /// The DSN to give a Sentry client, built as Bugsink's `Project.dsn` does:
    /// `http://{sentry_key}@{host}:{port}/{project_id}`.
    pub fn dsn(&self) -> String {
        format!(
            "http://{}@127.0.0.1:{}/{}",
            self.template.sentry_key, self.port, self.template.project_id
        )
    }

    pub fn project_id(&self) -> u64 {
        self.template.project_id
    }

    /// The API token (`bugsink-manage create_auth_token`), for a client
    /// under test that reads Bugsink's API itself.
    pub fn api_token(&self) -> &str {
        &self.template.token
    }

    /// The web UI and API root, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything gunicorn and Bugsink logged so far, requests included.
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log"))
            .unwrap_or_else(|e| format!("(cannot read the Bugsink log: {e})"))
    }

    fn api(&self) -> BugsinkApi<'_, Direct> {
        BugsinkApi::new(&self.api, &self.template.token)
    }

    /// Panics with what went wrong and the server log.
    fn failed(&self, error: &BugsinkError) -> ! {
        panic!("{error}\nBugsink log:\n{}", self.server_log())
    }

    /// The project's issues, oldest first.
    pub async fn issues(&self) -> Vec<Value> {
        let project = self.project_id().to_string();
        let issues = self.api().issues(&project, Order::OldestFirst).await;
        issues.unwrap_or_else(|error| self.failed(&error))
    }

    /// How many events the project has digested, summed over its issues:
    /// cheaper than [`Self::events`] when only the number matters.
    pub async fn digested_event_count(&self) -> u64 {
        self.issues()
            .await
            .iter()
            .filter_map(|issue| issue["digested_event_count"].as_u64())
            .sum()
    }

    /// The events of one issue (without their payload), oldest first.
    pub async fn issue_events(&self, issue_id: &str) -> Vec<Value> {
        let events = self.api().events(issue_id, Order::OldestFirst).await;
        events.unwrap_or_else(|error| self.failed(&error))
    }

    /// One event by Bugsink's id (the `id` of a listed event, not the Sentry
    /// `event_id`). The event as the client sent it is under `"data"`.
    pub async fn event(&self, id: &str) -> Value {
        let event = self.api().event(id).await;
        event.unwrap_or_else(|error| self.failed(&error))
    }

    /// Every event of the project with its payload, issue by issue.
    pub async fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for issue in self.issues().await {
            let issue_id = issue["id"].as_str().expect("issue id is a string");
            for listed in self.issue_events(issue_id).await {
                let id = listed["id"].as_str().expect("event id is a string");
                events.push(self.event(id).await);
            }
        }
        events
    }

    /// Polls until the project holds at least `count` events, and returns
    /// them all. Panics with the server log when `timeout` passes first.
    pub async fn wait_for_events(&self, count: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events().await;
            if events.len() >= count {
                return events;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Bugsink stored {} of {count} expected events within {timeout:?}: {events:#?}\n\
                     Bugsink log:\n{}",
                    events.len(),
                    self.server_log()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the API answers with the instance's token: the process
    /// listens, Django is loaded and the copied database is in place.
    async fn wait_until_ready(&self) {
        let url = format!(
            "{}/api/canonical/0/issues/?project={}",
            self.base_url(),
            self.project_id()
        );
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let response = self
                .http
                .get(&url)
                .bearer_auth(&self.template.token)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => panic!(
                    "Bugsink answered {} while starting\nBugsink log:\n{}",
                    response.status(),
                    self.server_log()
                ),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "Bugsink did not answer within {START_TIMEOUT:?}: {e}\nBugsink log:\n{}",
                    self.server_log()
                ),
            }
        }
    }
}

impl Drop for Bugsink {
    /// Kills the gunicorn master and its worker together: they run in their
    /// own process group, whose id is the master's pid.
    fn drop(&mut self) {
        crate::process::kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// The migrated template, built once per process (and reused across
/// processes through the tools directory).
fn shared_template(venv: &Path) -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = venv
            .parent()
            .expect("the venv sits in the tools directory")
            .join(TEMPLATE_DIR);
        if !dir.join("template.json").exists() {
            build_template(venv, &dir);
        }
        read_template(&dir)
    })
}

/// Migrates fresh databases and creates the project and an API token, in a
/// scratch directory that is then renamed into place, so concurrent test
/// processes never see half a template.
fn build_template(venv: &Path, dir: &Path) {
    let started = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("bugsink-template.tmp-")
        .tempdir_in(dir.parent().expect("the template has a parent"))
        .expect("cannot create a scratch directory for the Bugsink template");
    let path = scratch.path();
    // Never served: each instance writes its own settings with its own port.
    write_conf(path, 8000);
    manage(venv, path, &["migrate", "--no-input"]);
    manage(
        venv,
        path,
        &["migrate", "snappea", "--database=snappea", "--no-input"],
    );
    let project = manage(venv, path, &["shell", "--no-imports", "-c", CREATE_PROJECT]);
    let mut template: Value = serde_json::from_slice(&project.stdout).unwrap_or_else(|e| {
        panic!("unexpected output from creating the project: {e}: {project:?}")
    });
    let token = manage(venv, path, &["create_auth_token"]);
    template["token"] = String::from_utf8_lossy(&token.stdout).trim().into();
    fs::write(path.join("template.json"), template.to_string())
        .expect("cannot write template.json");

    let scratch = scratch.keep();
    if fs::rename(&scratch, dir).is_err() {
        // Another test process was faster; its template is as good as ours.
        let _ = fs::remove_dir_all(&scratch);
    }
    eprintln!(
        "bugsink: built the migrated template {} in {:.2?}",
        dir.display(),
        started.elapsed()
    );
}

fn read_template(dir: &Path) -> Template {
    let path = dir.join("template.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}); delete it", path.display()));
    let field = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("{} lacks {name}; delete it", path.display()))
            .to_owned()
    };
    Template {
        dir: dir.to_path_buf(),
        project_id: value["project_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{} lacks project_id; delete it", path.display())),
        sentry_key: field("sentry_key"),
        token: field("token"),
    }
}

/// Copies the template's databases into a new directory and starts gunicorn
/// there on a port bound for it.
fn spawn_instance(venv: &Path, template: &Template) -> (Child, u16, TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("somework-bugsink-")
        .tempdir()
        .expect("cannot create a directory for Bugsink");
    for database in DATABASES {
        fs::copy(template.dir.join(database), dir.path().join(database))
            .unwrap_or_else(|e| panic!("cannot copy the template's {database}: {e}"));
    }
    // Bound here and handed to gunicorn, so the port is this instance's from
    // the start: no other process, and no other instance, can take it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    let port = listener.local_addr().expect("a bound address").port();
    write_conf(dir.path(), port);
    let log = File::create(dir.path().join("server.log")).expect("cannot create server.log");
    let mut command = base_command(&venv.join("bin/gunicorn"), dir.path());
    let fd = crate::process::hand_over(&mut command, &listener);
    let child = command
        .args([
            "--bind",
            &format!("fd://{fd}"),
            "--workers",
            "1",
            // The default control socket is one fixed path in $HOME, which
            // parallel instances would fight over.
            "--no-control-socket",
            "--access-logfile",
            "-",
            "bugsink.wsgi",
        ])
        .stdout(log.try_clone().expect("cannot share server.log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("cannot start gunicorn");
    // gunicorn holds the port now.
    drop(listener);
    (child, port, dir)
}

/// Runs `bugsink-manage ARGS` in `dir`; panics with its output on failure.
fn manage(venv: &Path, dir: &Path, args: &[&str]) -> Output {
    let output = base_command(&venv.join("bin/bugsink-manage"), dir)
        .args(args)
        .output()
        .expect("cannot run bugsink-manage");
    assert!(
        output.status.success(),
        "bugsink-manage {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A command that runs with `dir`'s `bugsink_conf.py` and nothing from the
/// test machine's environment (Bugsink reads `DATABASE_PATH`, `PORT`, ...).
fn base_command(program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .env_clear()
        .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
        .env("PYTHONPATH", dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    command
}

/// Writes the instance's settings: those of `bugsink-create-conf
/// --template=local` (events are digested inline, so no `bugsink-runsnappea`
/// worker is needed), with every path inside `dir` and nothing sent out.
fn write_conf(dir: &Path, port: u16) {
    let path = |name: &str| Value::from(dir.join(name).to_string_lossy().into_owned());
    let conf = format!(
        r#"# Bugsink settings for one test instance, written by somework-testkit.
from bugsink.settings.default import *  # noqa: F403

SECRET_KEY = "somework-testkit: a throwaway instance on loopback"
TIME_ZONE = "UTC"
DATABASES["default"]["NAME"] = {db}  # noqa: F405
DATABASES["snappea"]["NAME"] = {snappea}  # noqa: F405
SNAPPEA = {{"TASK_ALWAYS_EAGER": True}}
EMAIL_BACKEND = "bugsink.email_backends.QuietConsoleEmailBackend"
BUGSINK = {{
    "BASE_URL": "http://127.0.0.1:{port}",
    "SINGLE_USER": True,
    "SINGLE_TEAM": True,
    "USER_REGISTRATION": "CB_NOBODY",
    "PHONEHOME": False,
    "INGEST_STORE_BASE_DIR": {ingestion},
}}
"#,
        db = path("db.sqlite3"),
        snappea = path("snappea.sqlite3"),
        ingestion = path("ingestion"),
    );
    fs::write(dir.join("bugsink_conf.py"), conf).expect("cannot write bugsink_conf.py");
}
