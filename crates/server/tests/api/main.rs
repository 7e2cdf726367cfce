//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP,
//! on SQLite and on PostgreSQL. One binary; see `helpers.rs`.

mod helpers;
mod nodes;
mod receiver;

mod admin;
mod auth_throttle;
mod booking;
mod cli;
mod concurrency;
mod contract;
mod cross_dialect;
mod delivery_leases;
mod delivery_secrets;
mod delivery_targets;
mod docplanner;
mod docplanner_bookings;
mod docplanner_catalog;
mod docplanner_conformance;
mod docplanner_notifications;
mod docplanner_oauth;
mod docplanner_scenario;
mod dp;
mod emb;
mod embassy_communication;
mod embassy_resources;
mod embassy_scenario;
mod embassy_subscriptions;
mod extreme_inputs;
mod messaging;
mod naboto;
mod nb;
mod senders;
mod server;
mod time_rules;
