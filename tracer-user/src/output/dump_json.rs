//! `gtrace dump --json`: one JSON object, written as it is produced (constant memory per
//! goroutine). The format is documented in docs/json/dump.schema.json.

use std::io::{self, Write};

use serde::Serialize;

use crate::goroutines::{DumpStats, Goroutine, group::Group, unwind::ShownFrame};

use super::traceback::func_name_for_print;

#[derive(Serialize)]
struct Frame<'a> {
    function: String,
    file: &'a str,
    line: u32,
    inlined: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pc_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<String>,
}

#[derive(Serialize)]
struct Created<'a> {
    function: String,
    file: &'a str,
    line: u32,
}

#[derive(Serialize)]
#[allow(clippy::struct_excessive_bools)] // mirrors the documented JSON fields
struct Gor<'a> {
    goid: u64,
    status: &'a str,
    wait_reason: Option<&'a str>,
    state: String,
    wait_minutes: Option<i64>,
    wait_seconds: Option<f64>,
    locked_to_thread: bool,
    created_by: Option<Created<'a>>,
    parent_goid: Option<u64>,
    frames: Vec<Frame<'a>>,
    elided_frames: Option<usize>,
    running: bool,
    thread: Option<u64>,
    system: bool,
    torn: bool,
    error: Option<&'a str>,
}

fn frames<'a>(fs: impl Iterator<Item = &'a ShownFrame>, minor: u32) -> Vec<Frame<'a>> {
    fs.map(|f| Frame {
        function: func_name_for_print(&f.src.function, minor),
        file: &f.src.file,
        line: f.src.line,
        inlined: f.src.inlined,
        pc_offset: f.offset,
        args: f.args.as_ref().map(|a| {
            let mut s = String::new();
            a.render(&mut s);
            s
        }),
    })
    .collect()
}

fn gor(g: &Goroutine, minor: u32) -> Gor<'_> {
    Gor {
        goid: g.goid,
        status: g.status,
        wait_reason: g.wait_reason.as_deref(),
        state: g.state_text(),
        wait_minutes: g.wait_minutes(),
        wait_seconds: g.wait_ns.map(|ns| ns as f64 / 1e9),
        locked_to_thread: g.locked_to_thread,
        created_by: g.created_by.as_ref().map(|c| Created {
            function: if minor >= 21 {
                func_name_for_print(&c.function, minor)
            } else {
                c.function.to_string()
            },
            file: &c.file,
            line: c.line,
        }),
        parent_goid: g.parent_goid,
        frames: frames(g.stack.frames.iter().chain(&g.stack.tail), minor),
        elided_frames: g.stack.elided,
        running: g.running,
        thread: g.thread,
        system: g.system,
        torn: g.torn,
        error: g.error.as_deref(),
    }
}

/// Streams `{"pid":…,"go_version":…,"goroutines":[…],"stats":{…}}`.
#[derive(Debug)]
pub struct JsonDumpWriter<W: Write> {
    w: W,
    minor: u32,
    first: bool,
}

impl<W: Write> JsonDumpWriter<W> {
    /// Writes the opening of the object.
    pub fn start(mut w: W, pid: i32, go_version: &str, minor: u32) -> io::Result<Self> {
        write!(
            w,
            "{{\"pid\":{pid},\"go_version\":{},\"goroutines\":[",
            serde_json::to_string(go_version)?
        )?;
        Ok(Self {
            w,
            minor,
            first: true,
        })
    }

    /// Appends one goroutine.
    pub fn goroutine(&mut self, g: &Goroutine) -> io::Result<()> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.w, &gor(g, self.minor))?;
        Ok(())
    }

    /// Closes the object with the totals.
    pub fn finish(mut self, stats: &DumpStats) -> io::Result<W> {
        write!(self.w, "],\"stats\":{}}}", serde_json::to_string(stats)?)?;
        writeln!(self.w)?;
        Ok(self.w)
    }
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    count: usize,
    goids: &'a [u64],
    wait_seconds_min: Option<f64>,
    wait_seconds_max: Option<f64>,
    #[serde(flatten)]
    example: Gor<'a>,
}

/// `--group --json`: `{"pid":…,"go_version":…,"groups":[…],"stats":{…}}`; each group carries
/// the fields of its first goroutine plus `count`, `goids` and the wait range.
pub fn write_groups(
    mut w: impl Write,
    pid: i32,
    go_version: &str,
    minor: u32,
    groups: &[Group],
    stats: &DumpStats,
) -> io::Result<()> {
    let gs: Vec<JsonGroup<'_>> = groups
        .iter()
        .map(|g| JsonGroup {
            count: g.count(),
            goids: &g.goids,
            wait_seconds_min: g.wait_ns_range.map(|r| r.0 as f64 / 1e9),
            wait_seconds_max: g.wait_ns_range.map(|r| r.1 as f64 / 1e9),
            example: gor(&g.example, minor),
        })
        .collect();
    serde_json::to_writer(
        &mut w,
        &serde_json::json!({"pid": pid, "go_version": go_version, "groups": gs, "stats": stats}),
    )?;
    writeln!(w)
}
