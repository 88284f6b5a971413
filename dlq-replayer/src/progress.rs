//! Progress of a replay or purge: a bar on a terminal, a plain line every tenth otherwise
//! (logs of a CI job or `script`), nothing with `--output json`. Always on standard error.

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub enum Progress {
    Hidden,
    /// A terminal: the bar appears at [`Progress::start`], after any confirmation prompt.
    Terminal {
        verb: &'static str,
    },
    Bar(ProgressBar),
    Lines {
        to: Box<dyn Write + Send>,
        verb: &'static str,
        total: u64,
        done: u64,
        next_line: u64,
    },
}

impl Progress {
    /// A bar when `terminal`, else plain lines to `to`.
    pub fn new(terminal: bool, verb: &'static str, to: Box<dyn Write + Send>) -> Self {
        if terminal {
            Progress::Terminal { verb }
        } else {
            Progress::Lines {
                to,
                verb,
                total: 0,
                done: 0,
                next_line: 0,
            }
        }
    }

    pub fn start(&mut self, total: u64) {
        match self {
            Progress::Hidden => {}
            Progress::Terminal { verb } => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(*verb);
                *self = Progress::Bar(bar);
            }
            Progress::Bar(bar) => bar.set_length(total),
            Progress::Lines {
                total: t,
                next_line,
                ..
            } => {
                *t = total;
                *next_line = step(total);
            }
        }
    }

    pub fn inc(&mut self, n: u64) {
        match self {
            Progress::Hidden | Progress::Terminal { .. } => {}
            Progress::Bar(bar) => bar.inc(n),
            Progress::Lines {
                to,
                verb,
                total,
                done,
                next_line,
            } => {
                *done += n;
                if *done >= *next_line {
                    let _ = writeln!(to, "dlq-replay: {verb} {done} of about {total}");
                    *next_line = *done + step(*total);
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn step(total: u64) -> u64 {
    (total / 10).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_every_tenth() {
        let out = Shared::default();
        let mut p = Progress::new(false, "moved", Box::new(out.clone()));
        p.start(100);
        for _ in 0..10 {
            p.inc(10);
        }
        p.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10, "{text}");
        assert_eq!(lines[0], "dlq-replay: moved 10 of about 100");
        assert_eq!(lines[9], "dlq-replay: moved 100 of about 100");
    }
}
