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
    let health: serde_json::Value = client.get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // Plain HTTP on the TLS port does not get an answer.
    let plain = reqwest::Client::new().get(format!("{}/health", s.base)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    s.stop().await;
}
