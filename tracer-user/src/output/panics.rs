//! Text and JSON output of [`PanicReport`]s.
//!
//! Text follows Go's own panic output (`panic: VALUE [recovered]`, then the goroutine's frames
//! and `created by`), with gtrace's additions on the goroutine line: the outcome, the
//! recovering function, nesting. JSON is one object per line (docs/json/panics.schema.json).

use std::io::{self, Write};

use crate::panics::{model::Outcome, report::PanicReport};

/// Writes one report as text.
pub fn write_text(out: &mut dyn Write, r: &PanicReport) -> io::Result<()> {
    let mut marks = Vec::new();
    if r.recovered && r.repanicked {
        marks.push("recovered, repanicked");
    } else if r.recovered {
        marks.push("recovered");
    }
    let marks = if marks.is_empty() {
        String::new()
    } else {
        format!(" [{}]", marks.join(", "))
    };
    if r.value_type == "fatal error" {
        writeln!(out, "fatal error: {}", r.value)?;
    } else {
        writeln!(out, "panic: {}{marks}", r.value.replace('\n', "\n\t"))?;
    }
    let mut what = vec![match r.outcome {
        Outcome::Recovered => "recovered".to_string(),
        Outcome::Fatal => "fatal".to_string(),
        Outcome::Aborted => "aborted by a panic in a deferred call".to_string(),
        Outcome::Unknown => "outcome unknown".to_string(),
    }];
    if let Some(by) = &r.recovered_by {
        what.push(format!("by {} at {}:{}", by.function, by.file, by.line));
    }
    if r.nested {
        what.push("nested".into());
    }
    what.push(format!("type {}", r.value_type));
    writeln!(out, "goroutine {} [{}]:", r.goid, what.join(", "))?;
    for f in &r.frames {
        let dots = if f.inlined { "(...)" } else { "()" };
        writeln!(out, "{}{dots}\n\t{}:{}", f.function, f.file, f.line)?;
    }
    // The creator chain: Go prints the first link; gtrace adds the ones above it.
    for a in &r.ancestry {
        match a.goid {
            Some(p) => writeln!(out, "created by {} in goroutine {p}", a.function)?,
            None => writeln!(out, "created by {}", a.function)?,
        }
        writeln!(out, "\t{}:{}", a.file, a.line)?;
    }
    if !r.defers_run.is_empty() {
        writeln!(out, "deferred calls run: {}", r.defers_run.join(", "))?;
    }
    writeln!(out)
}

/// Writes one report as a JSON line.
pub fn write_json(out: &mut dyn Write, r: &PanicReport) -> io::Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    writeln!(out)
}

/// Writes the panics stored in a capture (their JSON reports), one line each: goroutine,
/// value, outcome, where it happened and who recovered it.
pub fn write_capture_panics(out: &mut dyn Write, panics: &[String]) -> io::Result<()> {
    if panics.is_empty() {
        return Ok(());
    }
    writeln!(out, "\npanics ({}):", panics.len())?;
    for p in panics {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(p) else {
            writeln!(out, "  (unreadable panic record)")?;
            continue;
        };
        let at = v["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| {
                f["function"]
                    .as_str()
                    .is_some_and(|n| !n.starts_with("runtime."))
            })
            .map(|f| {
                format!(
                    " at {} ({}:{})",
                    f["function"].as_str().unwrap_or("?"),
                    f["file"].as_str().unwrap_or("?"),
                    f["line"]
                )
            })
            .unwrap_or_default();
        let by = v["recovered_by"]["function"]
            .as_str()
            .map(|f| format!(", recovered by {f}"))
            .unwrap_or_default();
        let nested = if v["nested"].as_bool() == Some(true) {
            ", nested"
        } else {
            ""
        };
        writeln!(
            out,
            "  goroutine {}: panic: {} [{}{by}{nested}]{at}",
            v["goid"],
            v["value"].as_str().unwrap_or("?").replace('\n', "\\n"),
            v["outcome"].as_str().unwrap_or("?"),
        )?;
    }
    Ok(())
}

/// The panics stored in a capture as JSON values (undecodable ones skipped).
pub fn capture_panics_json(panics: &[String]) -> Vec<serde_json::Value> {
    panics
        .iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect()
}
