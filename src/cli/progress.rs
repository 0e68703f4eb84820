//! Progress on a terminal (indicatif bars and spinners), plain lines when not a TTY or in CI.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::run::Progress;

fn fancy() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// A counted task (events generated).
pub struct Bar {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
}

impl Bar {
    pub fn new(total: u64, what: &str) -> Self {
        let bar = fancy().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(what.to_string());
            b
        });
        if bar.is_none() {
            eprintln!("{what}: {total} ...");
        }
        Bar {
            bar,
            what: what.to_string(),
            total,
        }
    }

    pub fn set(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    pub fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => eprintln!("{}: done ({})", self.what, self.total),
        }
    }
}

/// Stages of a run: a spinner per stage on a terminal, a line per stage otherwise.
pub struct Stages {
    spinner: Option<ProgressBar>,
}

impl Stages {
    pub fn new() -> Self {
        Stages {
            spinner: fancy().then(|| {
                let s = ProgressBar::new_spinner();
                s.enable_steady_tick(Duration::from_millis(120));
                s
            }),
        }
    }

    pub fn finish(&self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}

impl Progress for Stages {
    fn stage_started(&self, stage: &str) {
        match &self.spinner {
            Some(s) => s.set_message(format!("{stage} ...")),
            None => eprintln!("stage {stage} ..."),
        }
    }

    fn stage_finished(&self, stage: &str, elapsed: Duration) {
        let line = format!("stage {stage} done in {:.2}s", elapsed.as_secs_f64());
        match &self.spinner {
            Some(s) => s.println(line),
            None => eprintln!("{line}"),
        }
    }
}
