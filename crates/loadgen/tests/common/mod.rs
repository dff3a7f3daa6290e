//! What the load tool's tests share: the server binary and one run's JSON report.
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// The atome binary beside loadgen: `cargo test --workspace` builds it; a lone
/// `cargo test -p loadgen` may not have.
pub fn atome_bin() -> PathBuf {
    let atome = std::path::Path::new(env!("CARGO_BIN_EXE_loadgen")).with_file_name("atome");
    if !atome.exists() {
        let status = Command::new(env!("CARGO")).args(["build", "-p", "atome"]).status().expect("cargo build");
        assert!(status.success());
    }
    atome
}

/// Runs loadgen with `args` and `--json --atome-bin <atome>`; its report, once it succeeded
/// (a failure shows its stderr).
pub fn report<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--json")
        .arg("--atome-bin")
        .arg(atome_bin())
        .output()
        .expect("loadgen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
