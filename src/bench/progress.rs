//! The live progress line (indicatif): about once a second, as each
//! second's ticks from every thread are merged, it shows the run, elapsed
//! seconds, ops/s, errors and the p99 of that second.
//!
//! Quiet when stdout is not a terminal (scripts, CI, tests), so piped
//! output holds only the report. Single-threaded: only the coordinating
//! thread draws.

use std::cell::RefCell;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    tty: bool,
    /// The line of the run in progress; a new one per run.
    bar: RefCell<Option<ProgressBar>>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress { tty: std::io::stdout().is_terminal(), bar: RefCell::new(None) }
    }

    /// Replaces the line (one call per merged second).
    pub fn set(&self, msg: String) {
        if !self.tty {
            return;
        }
        let mut bar = self.bar.borrow_mut();
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                b.set_style(style);
            }
            b
        });
        b.set_message(msg);
        b.tick();
    }

    /// Removes the line before a report is printed.
    pub fn clear(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}
