//! Folded stacks (`root;caller;callee count`, one line per distinct stack), the input of
//! flame graph tools, and an SVG flame graph drawn from them by inferno.

use std::{collections::BTreeMap, io};

use crate::analysis::{
    block::BlockStack,
    stacks::{Frame, StackCount},
};

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
    write_svg_counting(w, stacks, title, "goroutines")
}

/// Writes an SVG flame graph; `count_name` says what the widths count (`goroutines`, `ns`).
pub fn write_svg_counting(
    w: impl io::Write,
    stacks: &[StackCount],
    title: &str,
    count_name: &str,
) -> io::Result<()> {
    let folded = lines(stacks);
    let mut opts = inferno::flamegraph::Options::default();
    title.clone_into(&mut opts.title);
    count_name.clone_into(&mut opts.count_name);
    inferno::flamegraph::from_lines(&mut opts, folded.iter().map(String::as_str), w)
}

/// Block-profile stacks as folded input: the wait reason becomes the leaf pseudo-frame
/// `[chan receive]` (folded stacks have no labels), the value is the parked time in ns.
pub fn block_stacks(stacks: &[BlockStack]) -> Vec<StackCount> {
    stacks
        .iter()
        .map(|s| {
            let mut frames = Vec::with_capacity(s.frames.len() + 1);
            frames.push(Frame {
                function: format!("[{}]", s.reason).into(),
                file: "".into(),
                line: 0,
                pc: 0,
            });
            frames.extend(s.frames.iter().cloned());
            StackCount {
                frames,
                count: s.delay_ns,
            }
        })
        .collect()
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

    #[test]
    fn block_stacks_end_in_the_wait_reason() {
        let b = [BlockStack {
            frames: vec![frame("runtime.chanrecv", 1, 1), frame("main.a", 5, 2)],
            reason: "chan receive".into(),
            count: 3,
            delay_ns: 1500,
        }];
        let s = block_stacks(&b);
        assert_eq!(lines(&s), ["main.a;runtime.chanrecv;[chan_receive] 1500"]);
    }
}
