//! The one-line progress display of the commands that run for a while (`record`, `latency`):
//! rewritten in place on a terminal, one line per update otherwise (logs stay readable), and
//! cleared before any other message so the two never mix on one line.

/// Shows `line` as the current progress.
pub fn update(tty: bool, line: &str) {
    if tty {
        eprint!("\r{line}\x1b[K");
    } else {
        eprintln!("{line}");
    }
}

/// Prints a message on its own line, clearing the progress line first.
pub fn message(tty: bool, line: &str) {
    if tty {
        eprint!("\r\x1b[K");
    }
    eprintln!("{line}");
}
