//! Folded stacks (`root;caller;callee count`, one line per distinct stack), the input of
//! flame graph tools, and an SVG flame graph drawn from them by inferno.

use std::{collections::BTreeMap, io};

use crate::analysis::stacks::StackCount;

/// Folded lines, root first, identical function paths merged, sorted (inferno's input).
pub fn lines(stacks: &[StackCount]) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for s in stacks {
        let path = s
            .frames
            .iter()
            .rev()
            // `;` separates frames and ` ` the count: keep them out of names.
            .map(|f| f.function.replace([';', ' '], "_"))
            .collect::<Vec<_>>()
            .join(";");
        *merged.entry(path).or_default() += s.count;
    }
    merged
        .into_iter()
        .map(|(path, n)| format!("{path} {n}"))
        .collect()
}

/// Writes folded stacks.
pub fn write(mut w: impl io::Write, stacks: &[StackCount]) -> io::Result<()> {
    for l in lines(stacks) {
        writeln!(w, "{l}")?;
    }
    Ok(())
}

/// Writes an SVG flame graph of the goroutines (width = goroutine count).
pub fn write_svg(w: impl io::Write, stacks: &[StackCount], title: &str) -> io::Result<()> {
    let folded = lines(stacks);
    let mut opts = inferno::flamegraph::Options::default();
    title.clone_into(&mut opts.title);
    "goroutines".clone_into(&mut opts.count_name);
    inferno::flamegraph::from_lines(&mut opts, folded.iter().map(String::as_str), w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::stacks::tests::frame;

    #[test]
    fn folds_root_first_and_merges_lines() {
        let s = [
            StackCount {
                frames: vec![frame("runtime.gopark", 1, 1), frame("main.a", 5, 2)],
                count: 2,
            },
            StackCount {
                frames: vec![frame("runtime.gopark", 1, 1), frame("main.a", 6, 3)],
                count: 3,
            },
            StackCount {
                frames: vec![frame("main.b c;d", 1, 4)],
                count: 1,
            },
        ];
        assert_eq!(lines(&s), ["main.a;runtime.gopark 5", "main.b_c_d 1"]);
        let mut svg = Vec::new();
        write_svg(&mut svg, &s, "t").unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("main.a"));
    }
}
