//! Runs inputs (files, or every file of directories) through a target, in order, on one
//! thread: how a crash is read, and how the committed regressions run outside libFuzzer.
//!
//!     cargo run --release --example replay -- <signaling|ortc|datagram|headers> <file or directory>...
//!
//! `ATOME_FUZZ_PASSES=n` runs the list n times (one long-lived datagram world, as in a fuzzing
//! run); any single allocation over 128 MB prints its backtrace and aborts, and the resident
//! memory is watched after each input (a report above 400 MB).
#[global_allocator]
static GUARD: atome_fuzz::guard::Guard = atome_fuzz::guard::Guard;

fn rss_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    (statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096) >> 20
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("a target: signaling, ortc, datagram or headers");
    let mut files = Vec::new();
    for path in args.map(std::path::PathBuf::from) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path).expect("a directory").map(|e| e.expect("an entry").path()).collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path);
        }
    }
    let passes: usize = std::env::var("ATOME_FUZZ_PASSES").ok().and_then(|p| p.parse().ok()).unwrap_or(1);
    let files: Vec<_> = std::iter::repeat_n(files, passes).flatten().collect();
    let t = std::time::Instant::now();
    for (n, f) in files.iter().enumerate() {
        if rss_mb() > 400 {
            eprintln!("resident memory {} MB before input {n} ({})", rss_mb(), f.display());
            std::process::exit(3);
        }
        let data = std::fs::read(f).expect("a readable input");
        if std::env::var_os("ATOME_FUZZ_DEBUG").is_some() {
            eprintln!("{}", f.display());
        }
        match target.as_str() {
            "ortc" => atome_fuzz::ortc::run(&data),
            "datagram" => atome_fuzz::datagram_target(&data),
            "headers" => atome_fuzz::headers::run(&data),
            "signaling" => atome_fuzz::signaling::run(&data),
            "ortc-json" => println!("{}", atome_fuzz::ortc::structured_to_json(&data)),
            other => panic!("unknown target {other}"),
        }
    }
    eprintln!("{} inputs in {:?}", files.len(), t.elapsed());
}
