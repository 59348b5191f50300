//! What `verify` is doing now, for the timeout message, and as progress
//! lines when stderr is a terminal (logs and scripts get only the result).

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Step(Arc<Mutex<String>>);

impl Step {
    pub fn set(&self, doing: impl Into<String>) {
        let doing = doing.into();
        if std::io::stderr().is_terminal() {
            eprintln!("verify: {doing}...");
        }
        if let Ok(mut current) = self.0.lock() {
            *current = doing;
        }
    }

    pub fn current(&self) -> String {
        self.0
            .lock()
            .map(|current| current.clone())
            .unwrap_or_default()
    }
}
