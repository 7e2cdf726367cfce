//! The `polyclinic` binary: `migrate`, `seed FILE`, `serve --demo`, and a
//! graceful stop on SIGTERM.

use crate::helpers::{Engine, fresh_database};
use crate::on_both_engines;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The binary, run in a fresh temporary directory: a key file it creates
/// (beside a SQLite file, or `polyclinic.key` for PostgreSQL) lands there,
/// never in the checkout.
fn polyclinic() -> Command {
    let dir = std::env::temp_dir().join(format!("polyclinic-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_polyclinic"));
    c.current_dir(dir).env_remove("POLYCLINIC_ADMIN_TOKEN").env("POLYCLINIC_LOG", "warn");
    c
}

async fn migrate_then_seed_from_a_file(engine: Engine) {
    let database = fresh_database(engine).await;
    let out = polyclinic().args(["migrate", "--database", &database]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = std::env::temp_dir().join(format!("seed-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, crate::helpers::acme_seed("acme").to_string()).unwrap();
    // The seed's PUSH URL is on 127.0.0.1: allowed explicitly (no test clock here).
    let run = || {
        polyclinic()
            .args(["seed", file.to_str().unwrap()])
            .env("POLYCLINIC_DATABASE", &database)
            .env("POLYCLINIC_DELIVERY_ALLOW_PRIVATE", "true")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let ids: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(ids["tenants"]["acme"]["practitioners"]["ann"].is_string(), "{ids}");
    let second = run();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&second.stdout).unwrap(), ids, "seeding is idempotent");
    let bad = polyclinic().args(["seed", "/no/such/file.json", "--database", &database]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/no/such/file.json"));
}

on_both_engines!(migrate_then_seed_from_a_file);

#[test]
fn the_demo_prints_only_commands_that_work() {
    let dir = std::env::temp_dir().join(format!("polyclinic-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = polyclinic()
        .current_dir(&dir)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.trim_start().starts_with("admin ") && line.contains("curl");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("admin token (generated"), "a generated admin token is printed once: {text}");
    let printed: Vec<&str> = text.lines().filter(|l| l.contains("curl ")).collect();
    for dialect in polyclinic::MOUNTED_DIALECTS.iter().map(|d| d.as_str()).chain(["admin"]) {
        assert!(printed.iter().any(|l| l.trim_start().starts_with(dialect)), "{dialect} line in {text}");
    }
    // Every printed line works as pasted into a shell: the real curl, a 2xx.
    for line in &printed {
        let command = line.trim_start().split_once(' ').map(|(_, c)| c.trim_start()).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{command} -o /dev/null -w '%{{http_code}}'"))
            .output()
            .expect("sh and curl run");
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(status.starts_with('2'), "`{command}` answered {status}");
    }
    // The printed admin line lists the demo tenants.
    let admin_line = seen.last().unwrap();
    let token = admin_line.split("Bearer ").nth(1).unwrap().split('\'').next().unwrap();
    let url = admin_line.rsplit('\'').nth(1).unwrap();
    let tenants: serde_json::Value =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            crate::helpers::http_client().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
        });
    assert_eq!(tenants.as_array().map(Vec::len), Some(2), "two demo tenants: {tenants}");
    // The embedded SQLite default was created in the working directory.
    assert!(dir.join("polyclinic.db").exists());
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends the server cleanly: {status:?}");
}
