//! Goroutine creation.
//!
//! `newproc1` runs on the system stack (g0 in R14) and returns the new `g`. Return probes are
//! off limits on Go code, so the creation event comes from a uprobe on the instruction right
//! after each `CALL runtime.newproc1` (in `runtime.newproc.func1`, and `newcoro`/synctest
//! closures where they exist): RAX holds the new g, fully initialised (goid, gopc, startpc,
//! parentGoid). The entry probe only counts (used by `gtrace doctor`).

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use tracer_common::{
    event::{EventKind, GoCreate},
    probe::ProbeId,
};

use super::emit;
use crate::{goabi, maps};

#[uprobe]
pub fn newproc1(_ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::Newproc1);
    0
}

#[uprobe]
pub fn newproc_ret(ctx: ProbeContext) -> u32 {
    maps::hit(ProbeId::NewprocReturn);
    if try_newproc_ret(&ctx).is_none() {
        maps::error(ProbeId::NewprocReturn);
    }
    0
}

#[inline(always)]
fn try_newproc_ret(ctx: &ProbeContext) -> Option<()> {
    let (tgid, tid) = maps::current();
    if tgid != maps::target_tgid() {
        return Some(());
    }
    // Never sampled by the governor (creations stay exact); `gtrace`'s empty-probe
    // benchmark switches it off to measure the bare cost of the site.
    if maps::sampled_out(ProbeId::NewprocReturn) {
        return Some(());
    }
    let cfg = maps::config();
    let newg = goabi::arg(ctx, 0)?;
    let goid = goabi::goid(&cfg, newg)?;
    let parent_goid = if cfg.g_parent_goid != 0 {
        goabi::read_u64(newg + u64::from(cfg.g_parent_goid))?
    } else {
        // Before Go 1.21: the creator is the goroutine this g0 runs for.
        match goabi::curg(ctx, &cfg)? {
            0 => 0,
            g => goabi::goid(&cfg, g)?,
        }
    };
    let gopc = goabi::read_u64(newg + u64::from(cfg.g_gopc))?;
    let startpc = goabi::read_u64(newg + u64::from(cfg.g_startpc))?;
    emit::send(
        ProbeId::NewprocReturn,
        GoCreate {
            header: emit::header(EventKind::Create, tid),
            goid,
            parent_goid,
            gopc,
            startpc,
        },
    );
    Some(())
}
