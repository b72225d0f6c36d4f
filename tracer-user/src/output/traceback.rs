//! Goroutines as Go's own traceback text, so tools that read Go dumps (panicparse, humans
//! used to `SIGQUIT` output) read ours.
//!
//! Mirrors runtime/traceback.go of the target's version: `goroutineheader` (`goroutine N
//! [state, M minutes, locked to thread]:`), `printFuncName` (generic shapes shown as `[...]`
//! from 1.21, `runtime.gopanic` as `panic`), frame lines `name(args)` + `\tfile:line +0xoff`,
//! the elision marks, and `created by F in goroutine N`. Arguments are printed as
//! `printArgs` does (`FUNCDATA_ArgInfo` words read from the stack, `?` for a register
//! argument's spill slot not yet written at the PC); inlined frames show `(...)`.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

use crate::goroutines::{Goroutine, group::Group, unwind::ShownFrame};

/// `funcNamePiecesForPrint` + `printFuncName` for Go 1.`minor` (before 1.21 names are printed
/// raw except `runtime.gopanic`).
pub fn func_name_for_print(name: &str, minor: u32) -> String {
    if name == "runtime.gopanic" {
        return "panic".to_owned();
    }
    if minor < 21 {
        return name.to_owned();
    }
    let (Some(i), Some(j)) = (name.find('['), name.rfind(']')) else {
        return name.to_owned();
    };
    if j <= i {
        return name.to_owned();
    }
    let interior = &name[i + 1..j];
    if !interior.contains('[') || minor < 27 {
        return format!("{}[...]{}", &name[..i], &name[j + 1..]);
    }
    // 1.27: a generic method of a generic type, `T[...].M[...]`.
    let mut depth = 1i32;
    let (mut rbr, mut lbr) = (None, None);
    for (k, c) in interior.char_indices() {
        if c == '[' {
            depth += 1;
            if depth == 1 {
                lbr = Some(k);
                break;
            }
        } else if c == ']' {
            depth -= 1;
            if depth < 0 {
                break;
            }
            if depth == 0 {
                rbr = Some(k);
            }
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                return format!(
                    "{}[...]{}[...]{}",
                    &name[..i],
                    &interior[r + 1..l],
                    &name[j + 1..]
                );
            }
            (None, None) => return format!("{}[...]{}", &name[..i], &name[j + 1..]),
            _ => {}
        }
    }
    name.to_owned()
}

/// The header line without the trailing newline, e.g. `goroutine 18 [chan receive, 5 minutes]:`.
pub fn header(g: &Goroutine) -> String {
    let mut s = format!("goroutine {} [{}", g.goid, g.state_text());
    if let Some(m) = g.wait_minutes()
        && m >= 1
    {
        let _ = write!(s, ", {m} minutes");
    }
    if g.locked_to_thread {
        s.push_str(", locked to thread");
    }
    s.push_str("]:");
    s
}

fn frame(w: &mut dyn Write, f: &ShownFrame, minor: u32) -> io::Result<()> {
    let mut args = String::new();
    match &f.args {
        Some(a) => a.render(&mut args),
        None => args.push_str("..."),
    }
    writeln!(w, "{}({args})", func_name_for_print(&f.src.function, minor))?;
    write!(w, "\t{}:{}", f.src.file, f.src.line)?;
    if let Some(off) = f.offset {
        write!(w, " +{off:#x}")?;
    }
    writeln!(w)
}

/// The stack and `created by` lines of one goroutine (everything after the header).
pub fn write_body(w: &mut dyn Write, g: &Goroutine, minor: u32) -> io::Result<()> {
    if g.running {
        writeln!(w, "\tgoroutine running on other thread; stack unavailable")?;
    }
    for f in &g.stack.frames {
        frame(w, f, minor)?;
    }
    if let Some(n) = g.stack.elided {
        writeln!(w, "...{n} frames elided...")?;
    }
    for f in &g.stack.tail {
        frame(w, f, minor)?;
    }
    if g.stack.truncated {
        writeln!(w, "...additional frames elided...")?;
    }
    if let Some(c) = &g.created_by {
        let name = if minor >= 21 {
            func_name_for_print(&c.function, minor)
        } else {
            c.function.to_string()
        };
        write!(w, "created by {name}")?;
        if let Some(p) = g.parent_goid {
            write!(w, " in goroutine {p}")?;
        }
        write!(w, "\n\t{}:{}", c.file, c.line)?;
        if let Some(off) = c.offset {
            write!(w, " +{off:#x}")?;
        }
        writeln!(w)?;
    }
    if let Some(e) = &g.error {
        // Not Go syntax, but the runtime prints its own unwinding problems inline too.
        writeln!(w, "\tgtrace: {e}")?;
    }
    Ok(())
}

/// One goroutine: header, frames, creator, and the blank line Go puts between goroutines.
pub fn write_goroutine(w: &mut dyn Write, g: &Goroutine, minor: u32) -> io::Result<()> {
    writeln!(w, "{}", header(g))?;
    write_body(w, g, minor)?;
    writeln!(w)
}

/// Goids listed on a `--group` header line before `… (N more)`.
const SHOWN_IDS: usize = 64;

/// `--group`: `N goroutines [state, lo-hi minutes]: goid goid …` then the shared stack.
pub fn write_group(w: &mut dyn Write, grp: &Group, minor: u32) -> io::Result<()> {
    let g = &grp.example;
    let n = grp.count();
    write!(
        w,
        "{n} goroutine{} [{}",
        if n == 1 { "" } else { "s" },
        g.state_text()
    )?;
    if let Some((lo, hi)) = grp.wait_ns_range {
        let (lo, hi) = (lo / 60_000_000_000, hi / 60_000_000_000);
        if hi >= 1 {
            if lo == hi {
                write!(w, ", {hi} minutes")?;
            } else {
                write!(w, ", {lo}-{hi} minutes")?;
            }
        }
    }
    if g.locked_to_thread {
        write!(w, ", locked to thread")?;
    }
    write!(w, "]:")?;
    for id in grp.goids.iter().take(SHOWN_IDS) {
        write!(w, " {id}")?;
    }
    if n > SHOWN_IDS {
        write!(w, " … ({} more)", n - SHOWN_IDS)?;
    }
    writeln!(w)?;
    write_body(w, g, minor)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_names() {
        assert_eq!(
            func_name_for_print("main.f[go.shape.int]", 22),
            "main.f[...]"
        );
        assert_eq!(
            func_name_for_print("main.f[go.shape.int]", 19),
            "main.f[go.shape.int]"
        );
        assert_eq!(func_name_for_print("runtime.gopanic", 19), "panic");
        assert_eq!(
            func_name_for_print("main.(*T[go.shape.int]).M[go.shape.string]", 27),
            "main.(*T[...]).M[...]"
        );
        assert_eq!(
            func_name_for_print("main.(*T[go.shape.int]).M[go.shape.string]", 26),
            "main.(*T[...]"
        );
        assert_eq!(func_name_for_print("main.g[[]int]", 27), "main.g[...]");
        assert_eq!(func_name_for_print("main.plain", 27), "main.plain");
    }
}
