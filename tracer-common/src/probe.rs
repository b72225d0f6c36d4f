//! Identifiers of the probes gtrace attaches, shared so that counters and events name them
//! the same way on both sides.

/// One attached program. The discriminant indexes the per-CPU `HITS` / `ERRORS` arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ProbeId {
    /// uprobe on `runtime.newproc1`: a goroutine is being created.
    Newproc1 = 0,
    /// uprobe on `runtime.gopark`: a goroutine parks.
    Gopark = 1,
    /// tracepoint `sched:sched_switch` on a thread of the target.
    SchedSwitch = 2,
}

impl ProbeId {
    /// Every probe, in discriminant order.
    pub const ALL: [ProbeId; 3] = [ProbeId::Newproc1, ProbeId::Gopark, ProbeId::SchedSwitch];
    /// Number of probe ids; the size of the counter arrays.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The name used for the eBPF program and in user-facing output.
    pub const fn name(self) -> &'static str {
        match self {
            ProbeId::Newproc1 => "runtime.newproc1",
            ProbeId::Gopark => "runtime.gopark",
            ProbeId::SchedSwitch => "sched:sched_switch",
        }
    }
}

/// Raised when a `u32` read from the kernel is not a known [`ProbeId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownProbeId(pub u32);

impl TryFrom<u32> for ProbeId {
    type Error = UnknownProbeId;

    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| *p as u32 == v)
            .ok_or(UnknownProbeId(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in ProbeId::ALL {
            assert_eq!(ProbeId::try_from(p as u32), Ok(p));
        }
        assert_eq!(
            ProbeId::try_from(ProbeId::COUNT),
            Err(UnknownProbeId(ProbeId::COUNT))
        );
    }
}
