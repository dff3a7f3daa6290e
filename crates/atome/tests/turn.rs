//! TURN credentials in the signaling: `iceServers` in `roomJoined` and `iceRestarted` when the
//! server has TURN, absent when it has none; the server refuses a TURN configuration it cannot
//! use, saying why.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

use atome::{App, AppError, Config};
use common::{join, room_for_two, TestServer, Ws};
use serde_json::json;

const URLS: [&str; 2] = ["turn:198.18.0.1:3478?transport=udp", "turn:198.18.0.1:3478?transport=tcp"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_joined_and_ice_restarted_carry_turn_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "north\n").unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = TestServer::start_with(|c| {
        c.turn_urls = URLS.iter().map(|u| u.to_string()).collect();
        c.turn_secret_file = Some(secret_file.clone());
        c.turn_ttl = 3600;
    })
    .await;
    let (a, _b, room_id) = room_for_two(&s).await;
    let (_, me) = s.get("/auth/me", Some(&a)).await;
    let user_id = me["user"]["user_id"].as_str().unwrap().to_string();
    let mut wa = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    let servers = joined["iceServers"].as_array().expect("iceServers in roomJoined");
    assert_eq!(servers.len(), 1, "{joined}");
    assert_eq!(servers[0]["urls"], json!(URLS));
    let username = servers[0]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, user_id);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 3590..=now + 3600).contains(&expiry), "expiry {expiry}, now {now}: --turn-ttl 3600");
    assert_eq!(servers[0]["credential"], atome::turn::credential(b"north", username));

    let created = wa.request("createTransport", json!({"direction": "recv"})).await;
    let r = wa.request("restartIce", json!({"transport_id": created["transportOptions"]["id"]})).await;
    assert_eq!(r["type"], "iceRestarted", "{r}");
    let again = &r["iceServers"][0];
    assert_eq!(again["urls"], json!(URLS), "{r}");
    assert!(again["username"].as_str().unwrap().ends_with(&format!(":{user_id}")));
    assert_eq!(again["credential"], atome::turn::credential(b"north", again["username"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_turn_there_are_no_ice_servers() {
    let s = TestServer::start().await;
    let (a, _b, room_id) = room_for_two(&s).await;
    let mut wa = Ws::auth(&s, &a).await;
    let joined = join(&s, &mut wa, &a, &room_id).await;
    assert!(joined.get("iceServers").is_none(), "{joined}");
    let created = wa.request("createTransport", json!({"direction": "recv"})).await;
    let r = wa.request("restartIce", json!({"transport_id": created["transportOptions"]["id"]})).await;
    assert_eq!(r["type"], "iceRestarted", "{r}");
    assert!(r.get("iceServers").is_none(), "{r}");
}

#[tokio::test]
async fn a_turn_configuration_the_server_cannot_use_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |tweak: &dyn Fn(&mut Config)| {
        let mut config = Config::for_tests(dir.path().join("data"));
        tweak(&mut config);
        async move {
            match App::build(config).await {
                Err(AppError::Config(msg)) => msg,
                Err(other) => panic!("expected a configuration error, got {other}"),
                Ok(_) => panic!("expected a configuration error, got a server"),
            }
        }
    };
    let msg = refused(&|c| c.turn_urls = vec![URLS[0].into()]).await;
    assert!(msg.contains("--turn-secret-file"), "{msg}");
    let open = dir.path().join("open-secret");
    std::fs::write(&open, "north").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = refused(&|c| {
        c.turn_urls = vec![URLS[0].into()];
        c.turn_secret_file = Some(open.clone());
    })
    .await;
    assert!(msg.contains("other users may read it"), "{msg}");
    let msg = refused(&|c| {
        c.turn_urls = vec!["stun:198.18.0.1".into()];
        c.turn_secret = Some("north".parse().unwrap());
    })
    .await;
    assert!(msg.contains("not a TURN URL"), "{msg}");
}
