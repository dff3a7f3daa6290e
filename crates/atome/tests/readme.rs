//! The README tells the truth about the flags and documents it names (issue 15, item 6).
use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `--flag` written in `text`.
fn flags_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let before = start.checked_sub(1).map(|j| bytes[j]);
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'-') {
            end += 1;
        }
        let name = &text[start..end];
        // A flag starts a word (not `a--b` or a `---` rule) and has letters after its dashes.
        if name.len() > 2 && bytes[start + 2].is_ascii_lowercase() && !matches!(before, Some(b) if b.is_ascii_alphanumeric() || b == b'-') {
            out.insert(name.trim_end_matches('-').to_string());
        }
        i = end.max(start + 2);
    }
    out
}

/// The server's flags, from its clap definition.
fn server_flags() -> BTreeSet<String> {
    let mut cmd = atome::Config::command();
    cmd.build();
    cmd.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect()
}

/// A shell script's options: its `case` branches (`--name)` or `--name|...)`).
fn script_flags(path: &str) -> BTreeSet<String> {
    let text = read(path);
    flags_in(&text).into_iter().filter(|f| text.contains(&format!("{f})")) || text.contains(&format!("{f}|"))).collect()
}

/// The installer's options.
fn installer_flags() -> BTreeSet<String> {
    script_flags("install_full.sh")
}

/// The load tool's options: its clap fields (`#[arg(long ...)]` then `name: type`).
fn loadgen_flags() -> BTreeSet<String> {
    let text = read("crates/loadgen/src/main.rs");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("#[arg(long") {
            if let Some(field) = lines[i + 1..].iter().find(|l| !l.trim_start().starts_with("#[") && !l.trim_start().starts_with("///")) {
                let name = field.trim().trim_start_matches("pub ").split(':').next().unwrap_or("").trim();
                out.insert(format!("--{}", name.replace('_', "-")));
            }
        }
    }
    out
}

#[test]
fn every_flag_the_readme_names_exists() {
    let server = server_flags();
    let installer = installer_flags();
    let loadgen = loadgen_flags();
    assert!(server.contains("--web-dir") && installer.contains("--binary") && loadgen.contains("--rooms"), "the parsers work");
    // Flags of other tools the README's commands use (cargo), and clap's own.
    let tools: BTreeSet<String> =
        ["--release", "--example", "--help", "--locked", "--workspace", "--all", "--check"].map(String::from).into();
    let fuzz = script_flags("scripts/fuzz.sh");
    assert!(fuzz.contains("--long"), "the fuzz script's parser works");
    let unknown: Vec<String> = flags_in(&read("README.md"))
        .into_iter()
        .filter(|f| ![&server, &installer, &loadgen, &fuzz, &tools].iter().any(|known| known.contains(f)))
        .collect();
    assert!(unknown.is_empty(), "the README names flags that exist nowhere: {unknown:?}");
}

#[test]
fn the_flag_finder_finds_flags_and_nothing_else() {
    let found = flags_in("run `atome --otp-per-number 5 --listen=x` -- then a---b and --9 --- `--web-dir`");
    assert_eq!(found, ["--listen", "--otp-per-number", "--web-dir"].map(String::from).into());
    // The name the issue found in an older README is not the server's.
    assert!(!server_flags().contains("--otp-per-number"));
}

#[test]
fn every_document_the_readme_links_exists() {
    let readme = read("README.md");
    let mut missing = Vec::new();
    for part in readme.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or("").split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !repo().join(target).exists() {
            missing.push(target.to_string());
        }
    }
    // Paths in backquotes that name a file of the repository (`docs/...`, `scripts/...`).
    for part in readme.split('`').skip(1).step_by(2) {
        let looks_like_file = (part.starts_with("docs/") || part.starts_with("scripts/") || part.starts_with("tests/"))
            && !part.contains(' ')
            && !part.contains('*');
        if looks_like_file && !repo().join(part).exists() {
            missing.push(part.to_string());
        }
    }
    assert!(missing.is_empty(), "the README names files that are not in the repository: {missing:?}");
}
