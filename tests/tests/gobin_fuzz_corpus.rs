//! The fuzz target bodies (`tracer_user::gobin::fuzzing`, run by `cargo +nightly fuzz` from
//! `fuzz/`) over truncated and mutated real Go binaries, on stable, so CI exercises them:
//! none may panic. Needs the Go toolchains (`cargo xtask go-toolchains`).

use gtrace_tests::{
    fixture::{self, Variant},
    go,
};
use object::{Object as _, ObjectSection as _};
use tracer_user::gobin::fuzzing;

/// Deterministic xorshift for mutation positions and values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn section(bytes: &[u8], name: &str) -> Vec<u8> {
    let elf = object::File::parse(bytes).unwrap();
    elf.section_by_name(name)
        .and_then(|s| s.data().ok())
        .unwrap_or_else(|| panic!("{name}"))
        .to_vec()
}

/// Cut points: every byte of the first 256, then evenly spread ones.
fn cuts(len: usize, spread: usize) -> impl Iterator<Item = usize> {
    (0..len.min(256)).chain((1..spread).map(move |i| i * len / spread))
}

fn mutate(rng: &mut Rng, base: &[u8], count: usize) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..count {
        let r = rng.next();
        let pos = (r % m.len() as u64) as usize;
        m[pos] = match r >> 60 {
            0 => 0,
            1 => 0xff,
            _ => (r >> 32) as u8,
        };
    }
    m
}

#[test]
fn fuzz_bodies_survive_truncated_and_mutated_binaries() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let toolchains = [go::by_version("1.19").unwrap(), go::newest().unwrap()];
    for tc in &toolchains {
        for v in [Variant::Default, Variant::Pie] {
            let path = fixture::build("inline", tc, v).unwrap_or_else(|e| panic!("{e:#}"));
            let bytes = std::fs::read(&path).unwrap();
            fuzzing::elf(&bytes);
            for n in cuts(bytes.len(), 16).filter(|n| n % 4 == 0) {
                fuzzing::elf(&bytes[..n]);
            }
            for _ in 0..16 {
                fuzzing::elf(&mutate(&mut rng, &bytes, 64));
            }
            let pcln_name = if v == Variant::Pie && !tc.at_least(1, 21) {
                ".data.rel.ro.gopclntab"
            } else {
                ".gopclntab"
            };
            let pcln = section(&bytes, pcln_name);
            for n in cuts(pcln.len(), 100) {
                fuzzing::pclntab(&pcln[..n]);
            }
            for _ in 0..100 {
                fuzzing::pclntab(&mutate(&mut rng, &pcln, 16));
            }
            let info = section(&bytes, ".go.buildinfo");
            for n in 0..info.len().min(4096) {
                fuzzing::buildinfo(&info[..n]);
            }
            for _ in 0..2000 {
                fuzzing::buildinfo(&mutate(&mut rng, &info[..info.len().min(4096)], 4));
            }
        }
    }
}
