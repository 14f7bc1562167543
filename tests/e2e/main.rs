//! End to end: sample events through the real handlers and the real SDK clients, against a
//! local AWS emulator that each test starts and stops.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod accounts;
mod application;
mod cli;
mod closed_loop;
mod concurrency;
mod crashes;
mod data;
mod detection;
mod ebs_healing;
mod ec2_deferrals;
mod ec2_healing;
mod faults;
mod function_process;
mod genuine;
mod governor;
mod hostile;
mod incidents;
mod infrastructure;
mod load;
mod network;
mod notifications;
mod overlap;
mod platform;
mod policy_coverage;
mod rejected_events;
mod requests;
mod restart_document;
mod security;
mod startup;
mod template;
