//! What a newcomer meets at start (issue 15): the web client found from any working directory,
//! the log saying where it and the data are, and start errors that name the flag to change.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atome::{App, Config};

/// The real binary, started in `cwd` with `args`, until it says where it listens; returns the
/// process, its base URL and the log lines so far.
fn spawn_server(binary: &Path, cwd: &Path, args: &[&str]) -> (Child, String, Vec<String>) {
    let mut child = Command::new(binary)
        .current_dir(cwd)
        .args(["--listen", "127.0.0.1:0", "--rtc-port", "0", "--workers", "1", "--sms-sender", "file"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
        let base = line.split("listening on ").nth(1).map(|s| s.trim().to_string());
        lines.push(line);
        if let Some(base) = base {
            return (child, base, lines);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not say where it listens: {lines:#?}");
}

/// An install's layout (`<prefix>/bin/atome`, `<prefix>/web/index.html`), started from another
/// directory with no `--web-dir`: the client is served, and the log says from where.
#[tokio::test]
async fn the_web_client_is_found_beside_the_binary_from_any_directory() {
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    std::fs::create_dir_all(prefix.path().join("web")).unwrap();
    std::fs::write(prefix.path().join("web/index.html"), "<!doctype html><title>installed client</title>").unwrap();
    let binary = prefix.path().join("bin/atome");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_atome"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_atome"), &binary).unwrap();
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let data = elsewhere.path().join("data");
    let (mut child, base, lines) = spawn_server(&binary, elsewhere.path(), &["--data-dir", data.to_str().unwrap()]);
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    let status = page.status();
    let body = page.text().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "GET / from another directory: {body}");
    assert!(body.contains("installed client"), "{body}");
    let web = prefix.path().join("web").canonicalize().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("web client: serving") && l.contains(web.to_str().unwrap())),
        "the log names the web client's folder: {lines:#?}"
    );
    let data = data.canonicalize().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("data folder: ") && l.contains(data.to_str().unwrap())),
        "the log names the data folder: {lines:#?}"
    );
}

/// `--web-dir` naming a folder without a built client: the log says so and what to run.
#[tokio::test]
async fn a_web_dir_without_a_client_is_said_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_atome"));
    let args = ["--data-dir", data.to_str().unwrap(), "--web-dir", empty.to_str().unwrap(), "--dev-auth"];
    let (mut child, base, lines) = spawn_server(binary, dir.path(), &args);
    let status = reqwest::get(format!("{base}/")).await.unwrap().status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 404);
    assert!(
        lines.iter().any(|l| l.contains("web client NOT served") && l.contains("npm run build") && l.contains(empty.to_str().unwrap())),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("dev login is ON")), "the log says dev login is on: {lines:#?}");
}

fn config(dir: &Path) -> Config {
    Config::for_tests(dir.join("data"))
}

#[tokio::test]
async fn a_port_in_use_names_listen() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(dir.path());
    c.listen = taken.local_addr().unwrap();
    let e = App::build(c).await.err().expect("the port is taken").to_string();
    assert!(e.contains("already uses it") && e.contains("--listen"), "{e}");
}

#[tokio::test]
async fn a_media_port_in_use_names_rtc_port() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = config(dir.path());
    c.rtc_port = taken.local_addr().unwrap().port();
    c.workers = Some(1);
    let e = App::build(c).await.err().expect("the media port is taken").to_string();
    assert!(e.contains("already uses it") && e.contains("--rtc-port"), "{e}");
}

#[tokio::test]
async fn a_data_folder_that_cannot_be_made_names_data_dir_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let mut c = config(dir.path());
    c.data_dir = dir.path().join("file/data");
    let e = App::build(c).await.err().expect("not a directory").to_string();
    assert!(e.contains("--data-dir"), "{e}");
    // No permission: a folder this user cannot write (root may write anywhere but in sysfs).
    let mut c = config(dir.path());
    if is_root() {
        c.data_dir = "/sys/atome-test-data".into();
    } else {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        c.data_dir = locked.join("data");
    }
    let e = App::build(c).await.err().expect("no permission").to_string();
    assert!(e.contains("permission") && e.contains("--data-dir"), "{e}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
