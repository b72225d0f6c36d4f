//! A ≥ 100 MB stripped Go binary for `cargo xtask bench gobin`, generated and built once with
//! the newest toolchain and cached under the gtrace cache (its name holds the generator
//! version and the Go version, so a change to either builds a new one).
//!
//! No real Go program of that size is at hand, so this one is generated with the shape of a
//! large service: many packages of ordinary functions (loops, switches, calls into `strings`
//! and `strconv` that get inlined, calls between functions), all reachable from `main` so the
//! linker keeps them. Its density, about 1.3 KB of file per function, is that of the Go
//! toolchain's own `compile`, so the function count (which the probe-site path scans) is
//! realistic for the size.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use gtrace_tests::go::{self, Toolchain};

/// Bump when the generated program changes.
const GENERATOR: u32 = 1;
/// Packages × functions per package.
const PACKAGES: usize = 64;
const FUNCS: usize = 1300;

fn function(out: &mut String, p: usize, f: usize) {
    let next = (f + 1) % FUNCS;
    let _ = write!(
        out,
        r#"
//go:noinline
func F{f}(x int, s string) int {{
	n := x*{m} + len(s)
	for i := 0; i < x%{k}; i++ {{
		n += i * {pf}
		if strings.HasPrefix(s, "k{f}") {{
			n -= {f}
		}}
	}}
	switch n % 4 {{
	case 0:
		n += len(strconv.Itoa(n)) + {f3}
	case 1:
		n ^= len(strings.Repeat("ab", n%3+1)) * {f7}
	case 2:
		if n > {f11} {{
			n = F{next}(n%5, s[:len(s)/2])
		}}
	default:
		sink += n
	}}
	if strings.Contains(s, "{p}.{f}") {{
		n += strings.Index(s, "x") * {pf}
	}}
	for _, r := range s {{
		if r == 'k' {{
			n += {m}
		}} else if r > 'z' {{
			n -= len(strconv.Quote(s))
		}}
	}}
	return n + len(s)
}}
"#,
        m = f + 1,
        k = f % 7 + 2,
        pf = p + f,
        f3 = f * 3,
        f7 = f + 7,
        f11 = f * 11,
    );
}

/// Writes the program's sources under `dir`.
fn generate(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("go.mod"), "module big\n\ngo 1.21\n")?;
    for p in 0..PACKAGES {
        let pkg = dir.join(format!("p{p:03}"));
        std::fs::create_dir_all(&pkg)?;
        let mut src = format!(
            "package p{p:03}\n\nimport (\n\t\"strconv\"\n\t\"strings\"\n)\n\nvar sink int\n"
        );
        for f in 0..FUNCS {
            function(&mut src, p, f);
        }
        src.push_str("\nvar Funcs = []func(int, string) int{");
        for f in 0..FUNCS {
            let _ = write!(src, "F{f}, ");
        }
        src.push_str("}\n");
        std::fs::write(pkg.join("p.go"), src)?;
    }
    let mut main = String::from("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n");
    for p in 0..PACKAGES {
        let _ = writeln!(main, "\t\"big/p{p:03}\"");
    }
    main.push_str(")\n\nvar all = [][]func(int, string) int{");
    for p in 0..PACKAGES {
        let _ = write!(main, "p{p:03}.Funcs, ");
    }
    main.push_str(
        "}\n\nfunc main() {\n\tt := 0\n\tfor _, fs := range all {\n\t\tfor i, f := range fs {\n\
         \t\t\tt += f(i+len(os.Args), \"key\")\n\t\t}\n\t}\n\tfmt.Println(t)\n}\n",
    );
    std::fs::write(dir.join("main.go"), main)?;
    Ok(())
}

/// The cached binary, built (several minutes on two cores) when missing.
pub(crate) fn stripped(tc: &Toolchain) -> anyhow::Result<PathBuf> {
    let dir = go::cache_dir()
        .join("bench")
        .join(format!("bigbin-v{GENERATOR}-go{}", tc.version));
    let bin = dir.join("big.stripped");
    if bin.is_file() {
        return Ok(bin);
    }
    let src = dir.join("src");
    println!(
        "generating and building a large Go program ({} functions) in {} (once; minutes)",
        PACKAGES * FUNCS,
        src.display()
    );
    generate(&src)?;
    let tmp = dir.join("big.tmp");
    let status = tc
        .command()
        .current_dir(&src)
        .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
        .arg(&tmp)
        .arg(".")
        .status()
        .context("running go build")?;
    if !status.success() {
        bail!("building the large Go program failed ({status})");
    }
    std::fs::rename(&tmp, &bin)?;
    std::fs::remove_dir_all(&src)?;
    Ok(bin)
}
