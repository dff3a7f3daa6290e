//! Configuration rules and HTTPS with rustls.
mod common;

use atome::{App, AppError, Config};
use common::TestServer;

#[tokio::test]
async fn plain_http_on_a_public_address_needs_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf());
    config.listen = "0.0.0.0:0".parse().unwrap();
    match App::build(config.clone()).await {
        Err(AppError::Config(msg)) => assert!(msg.contains("--insecure-http"), "{msg}"),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error, got a server"),
    }
    config.insecure_http = true;
    let app = App::build(config).await.expect("allowed with --insecure-http");
    assert!(app.local_addr().port() > 0);
}

#[tokio::test]
async fn rtc_listen_on_any_needs_an_announced_ip() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf());
    config.rtc_listen_ip = "0.0.0.0".parse().unwrap();
    assert!(matches!(App::build(config.clone()).await, Err(AppError::Config(_))));
    config.rtc_announced_ip = Some("127.0.0.1".parse().unwrap());
    assert!(App::build(config).await.is_ok());
}

#[test]
fn flags_and_environment_variables_fill_the_config() {
    use clap::Parser;
    let c = Config::try_parse_from(["atome", "--listen", "127.0.0.1:9999", "--dev-auth", "--rtc-port", "0"]).unwrap();
    assert_eq!(c.listen.port(), 9999);
    assert!(c.dev_auth);
    assert_eq!(c.rtc_port, 0);
    let c = Config::try_parse_from(["atome"]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
    assert_eq!(c.data_dir, std::path::PathBuf::from("./data"));
    assert!(!c.dev_auth);
    assert_eq!(c.rtc_port, 40000);
    assert_eq!(c.phone_region, "FR");
    assert!(Config::try_parse_from(["atome", "--tls-cert", "x.pem"]).is_err(), "cert without key");
    assert!(Config::try_parse_from(["atome", "--sms-sender", "pigeon"]).is_err());
}

#[tokio::test]
async fn https_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let s = TestServer::start_in(&data, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    let url = s.base.replace("http://", "https://").replace("127.0.0.1", "localhost");
    let client = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap());
    let client = client.build().unwrap();
    let response = client.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(response.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()), Some("max-age=31536000"));
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // Errors carry it too, those of fallbacks included.
    let response = client.get(format!("{url}/no/such/route")).send().await.unwrap();
    assert!(response.headers().contains_key("strict-transport-security"));
    let response = client.delete(format!("{url}/health")).send().await.unwrap();
    assert!(response.status().is_client_error() && response.headers().contains_key("strict-transport-security"));
    // Plain HTTP on the TLS port does not get an answer.
    let plain = reqwest::Client::new().get(format!("{}/health", s.base)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    s.stop().await;
}

#[tokio::test]
async fn plain_http_sends_no_hsts() {
    let s = TestServer::start().await;
    let response = s.http.get(format!("{}/health", s.base)).send().await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn data_dir_database_files_and_secret_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new").join("data");
    let s = TestServer::start_in(&data, |_| {}).await;
    s.dev_login("+33611111111", "A").await; // a write, so the WAL files exist
    let mut modes = vec![("data dir".to_string(), mode(&data), 0o700u32)];
    for file in ["atome.db", "atome.db-wal", "atome.db-shm", "secret"] {
        modes.push((file.to_string(), mode(&data.join(file)), 0o600));
    }
    s.stop().await;
    // Files an older version left readable are tightened at start.
    std::fs::set_permissions(data.join("atome.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = TestServer::start_in(&data, |_| {}).await;
    modes.push(("atome.db after a restart".into(), mode(&data.join("atome.db")), 0o600));
    s.stop().await;
    let wrong: Vec<String> =
        modes.iter().filter(|(_, got, want)| got != want).map(|(f, got, want)| format!("{f} {got:o} (not {want:o})")).collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(std::fs::read(data.join("secret")).unwrap().len(), 32);
}

#[tokio::test]
async fn a_secret_file_others_may_read_or_of_the_wrong_length_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    for (file_mode, len, expected) in [(0o644, 32, "mode 0644"), (0o640, 32, "mode 0640"), (0o600, 31, "31 bytes")] {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, vec![1u8; len]).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(file_mode)).unwrap();
        match App::build(Config::for_tests(dir.path().to_path_buf())).await {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(expected) && msg.contains(&secret.display().to_string()), "{msg}");
            }
            Ok(_) => panic!("started with a secret file of mode {file_mode:o} and {len} bytes"),
        }
    }
}

#[tokio::test]
async fn the_secret_file_can_live_outside_the_data_dir() {
    use clap::Parser;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("etc-secret");
    let parsed = Config::try_parse_from(["atome", "--secret-file", path.to_str().unwrap()]).expect("--secret-file");
    let s = TestServer::start_in(&tmp.path().join("data"), |c| c.secret_file = parsed.secret_file.clone()).await;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read(&path).unwrap().len(), 32);
    assert!(!s.data_dir.join("secret").exists());
    s.stop().await;
}

/// Runs the real binary with `args` until it listens (or exits) and returns what it logged.
fn startup_log(args: &[&str]) -> String {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atome"))
        .args(["--data-dir", dir.path().join("data").to_str().unwrap(), "--listen", "127.0.0.1:0", "--rtc-port", "0", "--workers", "1"])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the atome binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
        log += &line;
        log.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    log + &stderr + &format!("(exit: {status})")
}

/// Issue 12, item 3: the server says at start how one-time codes go: off (`none`), once; or, with
/// the development sender `log` that writes them to the log, a loud warning.
#[test]
fn start_up_log_says_how_codes_are_sent() {
    let log = startup_log(&["--sms-sender", "none"]);
    assert_eq!(log.matches("one-time codes are off").count(), 1, "{log}");
    assert!(log.contains("listening on"), "{log}");
    let log = startup_log(&["--sms-sender", "log"]);
    let warning = log.lines().find(|l| l.contains("WARN") && l.contains("one-time codes are written to this log"));
    assert!(warning.is_some_and(|w| w.contains("never in production")), "{log}");
    let log = startup_log(&["--sms-sender", "file"]);
    // (Other warnings may be there: without a built web client the start says so.)
    assert!(!log.lines().any(|l| l.contains("WARN") && l.contains("code")), "{log}");
}
