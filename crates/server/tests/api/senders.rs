//! The real senders against real peers on 127.0.0.1: SMTP (a minimal SMTP
//! server here) and the SMS HTTP gateway.

use crate::helpers::{Engine, Spawn, acme_seed, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_delivery::{ReqwestSender, SmsGateway, SmsSender};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal SMTP server: accepts every message and keeps its DATA.
async fn smtp_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let messages = Arc::new(Mutex::new(Vec::new()));
    let store = messages.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 localhost ESMTP test\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 localhost\r\n",
                        "DATA" => {
                            let _ = write.write_all(b"354 end with .\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            store.lock().unwrap().push(data);
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, messages)
}

async fn email_subscriptions_go_out_over_smtp(engine: Engine) {
    let (smtp_url, messages) = smtp_server().await;
    let delivery = polyclinic::config::Delivery {
        smtp_url: Some(smtp_url),
        mail_from: "Polyclinic <noreply@polyclinic.test>".into(),
        ..Default::default()
    };
    let app = spawn_app_with(engine, Spawn { test_clock: true, delivery: Some(delivery), ..Default::default() }).await;
    app.seed(&acme_seed("acme")).await;
    let s = crate::booking::seeded(&app, "acme").await;
    let r = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Subscription", "status": "requested", "criteria": "x/SubscriptionTopic/1",
                      "channel": {"type": "email", "endpoint": "mailto:integrations@acme.test", "payload": "application/fhir+json"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let a = crate::booking::book(
        &app,
        s.tenant,
        crate::booking::draft(&s, s.ann, None, "2031-01-05T09:00:00Z", "2031-01-05T09:15:00Z"),
    )
    .await
    .unwrap();
    app.run_due().await;
    let d: Vec<Value> = app.deliveries("acme").await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    let sent = messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert!(m.contains("To: integrations@acme.test"), "{m}");
    assert!(m.contains("From: Polyclinic <noreply@polyclinic.test>"), "{m}");
    assert!(m.contains("Subject: Subscription"), "{m}");
    assert!(m.contains(&format!("/embassy/Appointment/{}", a.id)), "the bundle is the body: {m}");
    app.stop().await;
}

on_both_engines!(email_subscriptions_go_out_over_smtp);

#[tokio::test]
async fn the_sms_gateway_posts_json_and_reports_refusals() {
    let rx = Receiver::start().await;
    let gateway =
        SmsGateway { url: rx.url.clone(), http: Arc::new(ReqwestSender::new(std::time::Duration::from_secs(5))) };
    assert_eq!(gateway.send("+46701234567", "Your visit starts in 15 minutes").await, Ok(None));
    let got = rx.received();
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].json(), json!({"to": "+46701234567", "body": "Your visit starts in 15 minutes"}));
    rx.respond_with(502);
    assert_eq!(gateway.send("+46701234567", "x").await, Ok(Some(502)), "a refusal is reported with its status");
}
