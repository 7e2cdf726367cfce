//! Whole `polyclinic` processes: a crash (`kill -9`) mid-delivery loses
//! nothing, and two nodes on one PostgreSQL database deliver each event once.

use crate::helpers::{Engine, acme_seed, fresh_database, postgres_url};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_core::appointment::Appointment;
use polyclinic_store::{Store, StoreOptions, appointments};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The admin token of every node these tests start.
pub const ADMIN: &str = "node-admin-token";
const KEY: &str = "4f1c6d1e2b3a49588796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// A running `polyclinic serve` process (stopped when dropped, unless
/// already stopped or killed).
pub struct Node {
    child: Child,
    pub base: String,
    ended: bool,
}

impl Node {
    /// A node on `database` with the delivery settings of these tests.
    fn start(database: &str) -> Node {
        Node::start_with(database, &["--delivery-timeout-seconds", "1", "--delivery-lease-seconds", "6"])
    }

    /// A node on `database` with the admin token [`ADMIN`], a shared
    /// secret key, JSON logs, private delivery targets allowed (receivers
    /// listen on 127.0.0.1, and there is no test clock here), and `extra`
    /// arguments; answers once it reports its address.
    pub fn start_with(database: &str, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_polyclinic"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--admin-token", ADMIN])
            .args(["--secret-key", KEY, "--log-format", "json", "--delivery-allow-private"])
            .args(extra)
            .env("POLYCLINIC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start polyclinic");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Read the log (it must be drained anyway) and report the listen URL.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "polyclinic started"
                {
                    let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let base = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the node reports its address");
        Node { child, base, ended: false }
    }

    fn kill_9(mut self) {
        self.ended = true;
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        self.ended = true;
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful stop: {status:?}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.ended {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

async fn seed_and_subscribe(node: &Node, receiver: &Receiver) -> Value {
    let client = crate::helpers::http_client();
    let ids: Value = client
        .post(format!("{}/admin/seed", node.base))
        .bearer_auth(ADMIN)
        .json(&acme_seed("acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = client
        .post(format!("{}/embassy/Subscription", node.base))
        .header("X-Visiba-Care-API-Key", "emb-acme-1")
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Subscription", "status": "requested", "reason": "nodes",
            "criteria": "http://example.com/SubscriptionTopic/1",
            "channel": {"type": "rest-hook", "endpoint": receiver.url, "payload": "application/fhir+json"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 201);
    ids
}

/// Books `n` appointments of Ann on consecutive days from an in-process store
/// on the same database (the events reach the nodes through the outbox).
async fn book_many(database: &str, ids: &Value, first_day: i64, n: i64) {
    let store = Store::open(StoreOptions::new(database)).await.unwrap();
    let t = &ids["tenants"]["acme"];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    let s = crate::booking::Seeded {
        tenant: polyclinic_core::TenantId(id(&t["id"])),
        ann: polyclinic_core::PractitionerId(id(&t["practitioners"]["ann"])),
        gp: polyclinic_core::HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: polyclinic_core::AddressId(id(&t["addresses"]["obrzezna"])),
    };
    for day in first_day..first_day + n {
        let start = (jiff::civil::date(2031, 1, 1) + jiff::Span::new().days(day))
            .at(9, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        let a: Appointment = crate::booking::draft(
            &s,
            s.ann,
            None,
            &start.to_string(),
            &(start + jiff::SignedDuration::from_mins(15)).to_string(),
        );
        let tenant = s.tenant;
        store
            .write(move |c| {
                Box::pin(async move {
                    let mut a = a;
                    a.id = appointments::new_id(c).await?;
                    appointments::create(c, tenant, a, jiff::Timestamp::now()).await
                })
            })
            .await
            .unwrap();
    }
    store.close().await;
}

fn event_numbers(received: &[crate::receiver::Received]) -> Vec<i64> {
    received
        .iter()
        .filter(|r| r.json()["entry"][0]["resource"]["type"] == "event-notification")
        .map(|r| {
            r.json()["entry"][0]["resource"]["notificationEvent"][0]["eventNumber"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

async fn a_kill_9_mid_delivery_loses_nothing(engine: Engine) {
    let database = fresh_database(engine).await;
    let receiver = Receiver::start().await;
    let node = Node::start(&database);
    let ids = seed_and_subscribe(&node, &receiver).await;
    receiver.delay(150);
    book_many(&database, &ids, 0, 20).await;
    // Kill while notifications are being sent (handshake + a few received).
    receiver.wait_for(4).await;
    node.kill_9();
    let before = event_numbers(&receiver.received()).len();
    assert!(before < 20, "the kill came mid-flight ({before} of 20 delivered)");
    let restarted = Node::start(&database);
    let mut all = BTreeSet::new();
    let mut n = receiver.received().len();
    while all.len() < 20 {
        n += 1;
        let got = receiver.wait_for(n).await;
        all = event_numbers(&got).into_iter().collect();
    }
    assert_eq!(all, (1..=20).collect::<BTreeSet<i64>>(), "every event delivered at least once");
    // In order per target: first arrivals are 1, 2, 3, ...
    let mut first_seen = Vec::new();
    for e in event_numbers(&receiver.received()) {
        if !first_seen.contains(&e) {
            first_seen.push(e);
        }
    }
    assert_eq!(first_seen, (1..=20).collect::<Vec<i64>>());
    restarted.stop();
}

on_both_engines!(a_kill_9_mid_delivery_loses_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_deliver_each_event_once_and_survive_one_dying() {
    if postgres_url().is_none() {
        return;
    }
    let database = fresh_database(Engine::Postgres).await;
    let receiver = Receiver::start().await;
    let a = Node::start(&database);
    let b = Node::start(&database);
    let ids = seed_and_subscribe(&a, &receiver).await;
    book_many(&database, &ids, 0, 30).await;
    let got = receiver.wait_for(31).await;
    let numbers = event_numbers(&got);
    assert_eq!(numbers.len(), 30, "no duplicates between the two nodes");
    assert_eq!(numbers.iter().copied().collect::<BTreeSet<i64>>(), (1..=30).collect::<BTreeSet<i64>>());
    // The receiver answers before the sender records the attempt: wait until
    // every delivery's outcome is recorded, then look at the attempts.
    let mut deliveries: Vec<Value> = Vec::new();
    for _ in 0..500 {
        deliveries = crate::helpers::http_client()
            .get(format!("{}/admin/deliveries?tenant=acme", b.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let settled =
            deliveries.iter().filter(|d| d["event"] == "AppointmentCreated" && d["state"] != "pending").count();
        if settled == 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let events: Vec<&Value> = deliveries.iter().filter(|d| d["event"] == "AppointmentCreated").collect();
    assert_eq!(events.len(), 30);
    assert!(events.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 1), "each sent exactly once");
    // One node dies; the other carries on.
    a.kill_9();
    book_many(&database, &ids, 100, 10).await;
    let got = receiver.wait_for(41).await;
    assert_eq!(event_numbers(&got).into_iter().collect::<BTreeSet<i64>>(), (1..=40).collect::<BTreeSet<i64>>());
    b.stop();
}
