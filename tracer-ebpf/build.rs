//! Emits `bpf_target_arch` so `goabi.rs` can pick the register layout of the traced arch.
fn main() -> aya_build::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()
}
