//! Parser for the Go runtime's own goroutine dumps: the ground truth gtrace is compared with.
//!
//! The text is what `runtime.traceback` prints on a fatal panic or on SIGQUIT, for Go 1.19 …
//! 1.27 (see `goroutineheader`, `traceback2`/`printFuncName`, `printcreatedby1` and
//! `tracebackothers` in each version's `runtime/traceback.go`):
//!
//! ```text
//! goroutine 7 [chan receive, 3 minutes, locked to thread]:          <- header
//! goroutine 7 gp=0xc0000071e0 m=nil [chan receive]:                 <- 1.22+, level >= 2
//! main.inner(...)                                                   <- inlined frame
//! \t/src/main.go:12
//! main.outer(0xc000012345, {0x4b5e20?, 0x1})                        <- real frame + args
//! \t/src/main.go:20 +0x45 fp=0xc… sp=0xc… pc=0x4a…                   <- fp/sp/pc: level >= 2
//! ...8 frames elided...                                             <- 1.21+: middle cut
//! ...additional frames elided...                                    <- before 1.21: tail cut
//! created by main.main in goroutine 1                               <- "in goroutine" 1.21+
//! \t/src/main.go:30 +0x1a5
//! ```
//!
//! # What Go shows (checked on recorded dumps of 1.19 and 1.21 … 1.27)
//!
//! What a dump contains depends on the traceback *level* (`runtime.gotraceback`):
//!
//! - **SIGQUIT** (any `GOTRACEBACK` but `none`): the signal handler sets `m.throwing =
//!   throwTypeRuntime`, which forces level 2 (`system`) in every supported version. The dump
//!   starts with `SIGQUIT: quit` / `PC=… m=… sigcode=…` and ends with a register dump; it
//!   lists **every** goroutine, system ones included (`force gc (idle)`, `GC sweep wait`,
//!   `GC scavenge wait`, `finalizer wait`, 1.25+ `cleanup wait`, idle GC workers…), shows
//!   **all** runtime frames (`runtime.gopark`, `runtime.chanrecv`, …, down to
//!   `runtime.goexit`), prints ` fp=… sp=… pc=…` after each real frame's location, and from
//!   1.22 adds `gp=0x… m=N|nil mp=0x…` to every header. The goroutine of the thread that took
//!   the signal comes first; from 1.21 this is often `goroutine 0 [idle]` (an M's g0).
//!   Goroutines running on other threads may print `goroutine running on other thread; stack
//!   unavailable` instead of frames.
//! - **Fatal panic with `GOTRACEBACK=all`** (level 1): only user goroutines
//!   (`isSystemGoroutine`: start function in package runtime, except `runtime.main`, is
//!   hidden), and only frames whose function is outside package runtime or an exported
//!   runtime function (`runtime.Goexit`); `runtime.gopanic` is shown as `panic(…)` when it is
//!   not the first frame (a panic inside a deferred call). The panicking goroutine's stack
//!   starts at the caller of `gopanic`. No `gp=`, no `fp=`. The default `GOTRACEBACK=single`
//!   prints only the panicking goroutine.
//! - `created by` is omitted for goroutine 1 and when the creating function is hidden at the
//!   current level. It names the *physical* function containing the `go` statement (an
//!   inlined callee that contains it is not named). `go f(x)` starts the goroutine in a
//!   wrapper: `F.gowrap1` since 1.22, `F.func1` before.
//! - Deep stacks: 1.21+ print the first 50 and last 50 frames with `...N frames elided...`
//!   between; 1.19 prints the first 100 frames (hidden ones count) and then stops without a
//!   marker; `...additional frames elided...` appears in ancestor tracebacks.
//! - Wait reasons differ between versions: a blocked `sync.Mutex.Lock`, `RWMutex.RLock` and
//!   `RWMutex.Lock` show as `semacquire` in 1.19 (own reasons since 1.20), and
//!   `WaitGroup.Wait` as `semacquire` until 1.23 (`sync.WaitGroup.Wait` since 1.24). A re-panicked value is marked `[recovered]` plus a second `panic:` line before
//!   1.25, and `[recovered, repanicked]` on one line since 1.25.
//!
//! The parser reads whole dumps embedded in other output (e.g. `panic: …` lines, `SIGQUIT:
//! quit`, register dumps, a `runtime stack:` section): any line outside a goroutine block is
//! kept in [`Dump::other_lines`]. Inside a goroutine block it is strict: a line it does not
//! understand is an error, so a format change between Go versions cannot go unnoticed.

use serde::Serialize;

/// A parse failure, with the 1-based line number where it happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line starting with `goroutine ` could not be read as a goroutine header.
    #[error("line {line}: malformed goroutine header: {text:?}")]
    BadHeader {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A function line was not followed by a `\tfile:line` line.
    #[error("line {line}: expected a tab-indented file:line after {function:?}, found {text:?}")]
    MissingLocation {
        /// 1-based line number.
        line: usize,
        /// The function whose location is missing.
        function: String,
        /// What was found instead (empty at end of input).
        text: String,
    },
    /// A `\tfile:line` line could not be read.
    #[error("line {line}: malformed source location: {text:?}")]
    BadLocation {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A line inside a goroutine block that is not a frame, `created by`, or elision marker.
    #[error("line {line}: unexpected line in the stack of goroutine {goid}: {text:?}")]
    UnexpectedLine {
        /// 1-based line number.
        line: usize,
        /// The goroutine being parsed.
        goid: u64,
        /// The offending line.
        text: String,
    },
}

/// A parsed dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dump {
    /// Goroutines in the order printed (the current goroutine first).
    pub goroutines: Vec<Goroutine>,
    /// Lines outside goroutine blocks (signal/panic messages, registers, blank lines excluded).
    pub other_lines: Vec<String>,
}

impl Dump {
    /// Goroutines that are not system goroutines: those Go would also list at level 1
    /// (`GOTRACEBACK=all` on a panic). See [`Goroutine::is_system`].
    pub fn user_goroutines(&self) -> impl Iterator<Item = &Goroutine> {
        self.goroutines.iter().filter(|g| !g.is_system())
    }

    /// The `panic: …` lines of a fatal panic, outermost (first raised) first.
    pub fn panics(&self) -> Vec<PanicLine> {
        self.other_lines
            .iter()
            .filter_map(|l| {
                let (nested, rest) = match l.strip_prefix('\t') {
                    Some(r) => (true, r),
                    None => (false, l.as_str()),
                };
                let value = rest.strip_prefix("panic: ")?;
                let (value, recovered, repanicked) =
                    if let Some(v) = value.strip_suffix(" [recovered, repanicked]") {
                        (v, true, true)
                    } else if let Some(v) = value.strip_suffix(" [recovered]") {
                        (v, true, false)
                    } else {
                        (value, false, false)
                    };
                Some(PanicLine {
                    value: value.to_owned(),
                    recovered,
                    repanicked,
                    nested,
                })
            })
            .collect()
    }

    /// The message of a `fatal error: …` line (runtime throws such as deadlocks).
    pub fn fatal_error(&self) -> Option<&str> {
        self.other_lines
            .iter()
            .find_map(|l| l.strip_prefix("fatal error: "))
    }

    /// The goroutine with id `goid`, if printed.
    pub fn goroutine(&self, goid: u64) -> Option<&Goroutine> {
        self.goroutines.iter().find(|g| g.goid == goid)
    }

    /// Goroutines whose stack contains a frame of `function` (exact name).
    pub fn with_frame<'a>(&'a self, function: &'a str) -> impl Iterator<Item = &'a Goroutine> {
        self.goroutines
            .iter()
            .filter(move |g| g.has_frame(function))
    }
}

/// One `panic: VALUE[ [recovered][, repanicked]]` line (Go's `printpanics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PanicLine {
    /// The value as Go printed it (`printpanicval`: strings verbatim, errors via `Error()`,
    /// other types as `(T) 0xADDR` or `T(v)`).
    pub value: String,
    /// ` [recovered]`: this panic was recovered and a later one is fatal.
    pub recovered: bool,
    /// ` [recovered, repanicked]` (1.25+): recovered and re-raised with the same value; Go
    /// then prints no separate line for the re-raise.
    pub repanicked: bool,
    /// Tab-indented: raised while the previous line's panic was in progress.
    pub nested: bool,
}

/// One goroutine of a dump.
// The flags mirror independent markers Go prints; an enum would not fit them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Goroutine {
    /// Goroutine id (0 for an M's g0 in crash dumps).
    pub goid: u64,
    /// Status or wait reason as printed, e.g. `"chan receive"`, `"running"`, `"syscall"`,
    /// `"select (no cases)"`, `"sync.Mutex.Lock"` (without the flags below).
    pub status: String,
    /// `N minutes` blocked, when Go printed it (only from 1 minute on).
    pub wait_minutes: Option<u64>,
    /// `, locked to thread`.
    pub locked_to_thread: bool,
    /// ` (scan)`: the GC was scanning the stack.
    pub scan: bool,
    /// ` (leaked)` (Go 1.26+ goroutine leak detection).
    pub leaked: bool,
    /// `, synctest group N` (1.24) / `, synctest bubble N` (1.25+).
    pub synctest: Option<u64>,
    /// Goroutine labels ` {k: v, …}` (1.26+ with `GODEBUG=tracebacklabels=1`), raw.
    pub labels: Option<String>,
    /// `gp=0x…` (1.22+ at traceback level 2, or the crashing goroutine).
    pub gp: Option<u64>,
    /// `m=N` / `m=nil`: `Some(Some(n))`, `Some(None)` for nil, `None` if not printed.
    pub m: Option<Option<u64>>,
    /// Frames, innermost first (inlined frames included, as Go prints them).
    pub frames: Vec<Frame>,
    /// Where frames were elided: `...N frames elided...` (count known) after `frames[at]`, or
    /// `...additional frames elided...` (count unknown) at the end.
    pub elided: Vec<Elision>,
    /// `created by …` (absent for goroutine 1 and goroutines made by hidden runtime code).
    pub created_by: Option<Location>,
    /// `in goroutine N` of the `created by` line (Go 1.21+).
    pub parent_goid: Option<u64>,
    /// `goroutine running on other thread; stack unavailable`.
    pub stack_unavailable: bool,
    /// `[originating from goroutine N]:` sections (`GODEBUG=tracebackancestors=N`).
    pub ancestors: Vec<Ancestor>,
}

impl Goroutine {
    /// True if some frame is exactly `function`.
    pub fn has_frame(&self, function: &str) -> bool {
        self.frames.iter().any(|f| f.function == function)
    }

    /// The function the goroutine started in, as far as the printed frames show: the
    /// outermost frame that is not `runtime.goexit` (a `go f(x)` wrapper such as
    /// `main.spawn.gowrap1` counts as the start function, as it does for Go).
    pub fn start_function(&self) -> Option<&str> {
        self.frames
            .iter()
            .rev()
            .map(|f| f.function.as_str())
            .find(|f| *f != "runtime.goexit")
    }

    /// Go's `isSystemGoroutine` judged from the text: the start function is in package
    /// runtime and is not `runtime.main`. (Go also counts the finalizer and cleanup
    /// goroutines as user goroutines while they run user code; a dump cannot tell.)
    /// Goroutine 0 (an M's g0) is always a system goroutine.
    pub fn is_system(&self) -> bool {
        self.goid == 0
            || self
                .start_function()
                .is_some_and(|f| f.starts_with("runtime.") && f != "runtime.main")
    }

    /// The frames Go prints at level 1 (`GOTRACEBACK=all`, no runtime throw): a level-2
    /// (SIGQUIT) stack filtered by Go's `showfuncinfo` rules: runtime-internal functions
    /// are dropped, exported runtime functions (`runtime.Goexit`) kept, `panic` kept unless
    /// it is the first frame shown, and autogenerated wrappers dropped unless they called
    /// `panic` or `runtime.sigpanic`. Applying it to a level-1 stack changes nothing.
    pub fn level1_frames(&self) -> Vec<&Frame> {
        let mut out: Vec<&Frame> = Vec::new();
        let mut callee: Option<&str> = None;
        for f in &self.frames {
            let name = f.function.as_str();
            let show = if f.file == "<autogenerated>" && !f.inlined {
                matches!(
                    callee,
                    Some("panic" | "runtime.sigpanic" | "runtime.panicwrap")
                )
            } else if name == "panic" {
                !out.is_empty()
            } else {
                name.contains('.') && (!name.starts_with("runtime.") || is_exported_runtime(name))
            };
            if show {
                out.push(f);
            }
            callee = Some(name);
        }
        out
    }

    /// Function names of the frames, innermost first.
    pub fn functions(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.function.as_str()).collect()
    }
}

/// A stack frame as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Function name, e.g. `main.(*T).M`, `main.spawn.gowrap1`, `panic`.
    pub function: String,
    /// The argument text between the parentheses, e.g. `0xc000012345, {0x4b5e20?, 0x1}`.
    pub args: String,
    /// Printed as `f(...)` without a `+0x…` offset: a frame that exists only through
    /// inlining. (In `[originating from goroutine N]` sections Go prints every frame as
    /// `f(...)` with an offset, inlined or not; there it is always `false`.)
    pub inlined: bool,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
    /// ` +0x…`: PC offset from the function entry (absent for inlined frames and at entry).
    pub pc_offset: Option<u64>,
    /// ` fp=0x…` (traceback level 2).
    pub fp: Option<u64>,
    /// ` sp=0x…` (traceback level 2).
    pub sp: Option<u64>,
    /// ` pc=0x…` (traceback level 2).
    pub pc: Option<u64>,
}

/// The creation site of a goroutine (`created by`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Function containing the `go` statement (outermost function, not an inlined callee).
    pub function: String,
    /// Source file of the `go` statement.
    pub file: String,
    /// Source line of the `go` statement.
    pub line: u32,
    /// ` +0x…`: offset of the return PC of the `newproc` call from the function entry.
    pub pc_offset: Option<u64>,
}

/// A `...frames elided...` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Elision {
    /// Number of frames printed before the marker.
    pub after: usize,
    /// `Some(n)` for `...n frames elided...` (1.21+), `None` for `...additional frames
    /// elided...`.
    pub count: Option<u64>,
}

/// A `[originating from goroutine N]:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ancestor {
    /// The ancestor's goroutine id.
    pub goid: u64,
    /// Its frames when it created the next goroutine.
    pub frames: Vec<Frame>,
    /// Its own creation site.
    pub created_by: Option<Location>,
    /// Whether frames were cut.
    pub elided: Vec<Elision>,
}

/// Parses a whole dump.
pub fn parse(text: &str) -> Result<Dump, ParseError> {
    let mut dump = Dump::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("goroutine ") && line.ends_with(':') {
            let mut g = parse_header(line).ok_or_else(|| ParseError::BadHeader {
                line: i + 1,
                text: line.to_owned(),
            })?;
            i = parse_stack(&lines, i + 1, &mut g)?;
            dump.goroutines.push(g);
        } else {
            if !line.trim().is_empty() {
                dump.other_lines.push(line.to_owned());
            }
            i += 1;
        }
    }
    Ok(dump)
}

/// Parses `goroutine N [gp=… m=… mp=…] [status…] [{labels}]:`.
fn parse_header(line: &str) -> Option<Goroutine> {
    let rest = line.strip_prefix("goroutine ")?.strip_suffix(':')?;
    let (goid, rest) = rest.split_once(' ')?;
    let mut g = Goroutine {
        goid: goid.parse().ok()?,
        ..Goroutine::default()
    };
    let open = rest.find('[')?;
    for field in rest[..open].split_whitespace() {
        let (key, value) = field.split_once('=')?;
        match key {
            "gp" => g.gp = Some(parse_hex(value)?),
            "m" => {
                g.m = Some(if value == "nil" {
                    None
                } else {
                    Some(value.parse().ok()?)
                });
            }
            "mp" => {
                parse_hex(value)?;
            }
            _ => return None,
        }
    }
    let close = open + rest[open..].find(']')?;
    let labels = rest[close + 1..].trim();
    if !labels.is_empty() {
        if !(labels.starts_with('{') && labels.ends_with('}')) {
            return None;
        }
        g.labels = Some(labels.to_owned());
    }
    let mut parts = rest[open + 1..close].split(", ");
    let mut status = parts.next()?;
    loop {
        if let Some(s) = status.strip_suffix(" (scan)") {
            g.scan = true;
            status = s;
        } else if let Some(s) = status.strip_suffix(" (leaked)") {
            g.leaked = true;
            status = s;
        } else {
            break;
        }
    }
    status.clone_into(&mut g.status);
    for part in parts {
        if let Some(n) = part.strip_suffix(" minutes") {
            g.wait_minutes = Some(n.parse().ok()?);
        } else if part == "locked to thread" {
            g.locked_to_thread = true;
        } else if let Some(n) = part
            .strip_prefix("synctest bubble ")
            .or_else(|| part.strip_prefix("synctest group "))
        {
            g.synctest = Some(n.parse().ok()?);
        } else {
            return None;
        }
    }
    Some(g)
}

/// Go's `isExportedRuntime`: `runtime.F` or `runtime.(*T).F` / `runtime.T.F` with `F` (and
/// `T`) exported.
fn is_exported_runtime(name: &str) -> bool {
    let Some(name) = name.strip_prefix("runtime.") else {
        return false;
    };
    let (rcvr, func) = match name.rfind('.') {
        Some(i) => {
            let rcvr = &name[..i];
            let rcvr = rcvr
                .strip_prefix("(*")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(rcvr);
            (rcvr, &name[i + 1..])
        }
        None => ("", name),
    };
    let upper = |s: &str| s.as_bytes().first().is_some_and(u8::is_ascii_uppercase);
    upper(func) && (rcvr.is_empty() || upper(rcvr))
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Parses the frames of one goroutine starting at `lines[i]`; returns the index after its
/// block (the blank line ending it, or the end of input).
fn parse_stack(lines: &[&str], mut i: usize, g: &mut Goroutine) -> Result<usize, ParseError> {
    // Which list frames currently go to: the goroutine or its latest ancestor.
    let mut in_ancestor = false;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            return Ok(i + 1);
        }
        if line == "\tgoroutine running on other thread; stack unavailable" {
            g.stack_unavailable = true;
            i += 1;
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("[originating from goroutine ")
            .and_then(|r| r.strip_suffix("]:"))
        {
            let goid = rest.parse().map_err(|_| unexpected(i, g.goid, line))?;
            g.ancestors.push(Ancestor {
                goid,
                ..Ancestor::default()
            });
            in_ancestor = true;
            i += 1;
            continue;
        }
        let (frames, elided) = match (in_ancestor, g.ancestors.last_mut()) {
            (true, Some(a)) => (&mut a.frames, &mut a.elided),
            _ => (&mut g.frames, &mut g.elided),
        };
        if let Some(rest) = line.strip_prefix("...").and_then(|r| r.strip_suffix("...")) {
            let count = if rest == "additional frames elided" {
                None
            } else {
                let n = rest
                    .strip_suffix(" frames elided")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| unexpected(i, g.goid, line))?;
                Some(n)
            };
            elided.push(Elision {
                after: frames.len(),
                count,
            });
            i += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("created by ") {
            let (function, parent) = match rest.rsplit_once(" in goroutine ") {
                Some((f, p)) => (f, Some(p.parse().map_err(|_| unexpected(i, g.goid, line))?)),
                None => (rest, None),
            };
            let loc_line = lines.get(i + 1).copied().unwrap_or_default();
            let loc = parse_location(loc_line).ok_or_else(|| ParseError::MissingLocation {
                line: i + 2,
                function: function.to_owned(),
                text: loc_line.to_owned(),
            })?;
            let created = Location {
                function: function.to_owned(),
                file: loc.file,
                line: loc.line,
                pc_offset: loc.pc_offset,
            };
            if let (true, Some(a)) = (in_ancestor, g.ancestors.last_mut()) {
                a.created_by = Some(created);
            } else {
                g.created_by = Some(created);
                g.parent_goid = parent;
            }
            i += 2;
            continue;
        }
        if line.starts_with('\t') || !line.ends_with(')') {
            return Err(unexpected(i, g.goid, line));
        }
        let open = line.rfind('(').ok_or_else(|| unexpected(i, g.goid, line))?;
        let function = &line[..open];
        let args = &line[open + 1..line.len() - 1];
        if function.is_empty() {
            return Err(unexpected(i, g.goid, line));
        }
        let loc_line = lines.get(i + 1).copied().unwrap_or_default();
        if !loc_line.starts_with('\t') {
            return Err(ParseError::MissingLocation {
                line: i + 2,
                function: function.to_owned(),
                text: loc_line.to_owned(),
            });
        }
        let loc = parse_location(loc_line).ok_or_else(|| ParseError::BadLocation {
            line: i + 2,
            text: loc_line.to_owned(),
        })?;
        frames.push(Frame {
            function: function.to_owned(),
            args: args.to_owned(),
            // Ancestor sections print every frame as `f(...)`, real ones with `+0x…`.
            inlined: args == "..." && loc.pc_offset.is_none(),
            ..loc
        });
        i += 2;
    }
    Ok(i)
}

fn unexpected(i: usize, goid: u64, line: &str) -> ParseError {
    ParseError::UnexpectedLine {
        line: i + 1,
        goid,
        text: line.to_owned(),
    }
}

/// Parses `\tfile:line[ +0x…][ fp=0x… sp=0x… pc=0x…]` into a [`Frame`] without function.
fn parse_location(line: &str) -> Option<Frame> {
    let mut rest = line.strip_prefix('\t')?;
    let mut frame = Frame::default();
    // Optional trailing fields, parsed from the right so file names may contain spaces.
    while let Some((head, last)) = rest.rsplit_once(' ') {
        if let Some(v) = last.strip_prefix("pc=") {
            frame.pc = Some(parse_hex(v)?);
        } else if let Some(v) = last.strip_prefix("sp=") {
            frame.sp = Some(parse_hex(v)?);
        } else if let Some(v) = last.strip_prefix("fp=") {
            frame.fp = Some(parse_hex(v)?);
        } else if let Some(v) = last.strip_prefix('+') {
            frame.pc_offset = Some(parse_hex(v)?);
        } else {
            break;
        }
        rest = head;
    }
    let (file, line_no) = rest.rsplit_once(':')?;
    if file.is_empty() {
        return None;
    }
    file.clone_into(&mut frame.file);
    frame.line = line_no.parse().ok()?;
    Some(frame)
}

#[cfg(test)]
mod tests;
