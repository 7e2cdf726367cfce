//! The server in a child process of its own (`--server-process`, and
//! always for `soak`): this binary started again with `--child-database`,
//! so that the server's memory and descriptors are measured apart from the
//! load generator's.
//!
//! The child builds the same [`polyclinic::Application`] as the in-process
//! server, writes `port <N>` on its standard output once it listens, and
//! serves until its standard input closes: when the bench stops it, or when
//! the bench dies.

use crate::{Args, Synchronous, init_server_log, server_config};
use anyhow::Context;
use polyclinic::Application;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that hands the admin token to the child (not
/// its command line, which any user of the machine can read).
const TOKEN_ENV: &str = "POLYCLINIC_BENCH_CHILD_ADMIN_TOKEN";
/// A command (with its arguments) that runs the server's process in its
/// stead, e.g. `heaptrack -o /tmp/soak`; the measured process is then the
/// wrapper's first child.
pub const WRAPPER_ENV: &str = "POLYCLINIC_BENCH_SERVER_WRAPPER";
/// How long a stopping child may take to finish its requests and exit.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Starts the child server on `database`; answers it with its port.
pub fn start(args: &Args, database: &str, admin_token: &str, key_file: &Path) -> anyhow::Result<(Child, u16)> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    // A profiler that runs the server as its own child (e.g. `heaptrack -o
    // FILE`), for a heap profile of a scenario.
    let wrapper = std::env::var(WRAPPER_ENV).unwrap_or_default();
    let mut wrapper = wrapper.split_whitespace();
    let mut command = match wrapper.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(wrapper).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command
        .arg("--child-database")
        .arg(database)
        .arg("--child-key-file")
        .arg(key_file)
        .arg("--synchronous")
        .arg(match args.synchronous {
            Synchronous::Full => "full",
            Synchronous::Normal => "normal",
        })
        .env(TOKEN_ENV, admin_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(threads) = args.server_threads {
        command.arg("--server-threads").arg(threads.to_string());
    }
    if let Some(log) = &args.server_log {
        command.arg("--server-log").arg(log);
    }
    let mut child = command.spawn().context("starting the server's process")?;
    let stdout = child.stdout.take().context("the server process's output")?;
    // The first line that names the port (a wrapper may write lines of its
    // own before).
    let mut lines = BufReader::new(stdout).lines();
    let mut line = String::new();
    let port = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(port) = l.trim().strip_prefix("port ") {
                    break port.parse::<u16>().ok();
                }
                line = l;
            }
            _ => break None,
        }
    };
    match port {
        Some(port) => Ok((child, port)),
        None => {
            stop(&mut child);
            anyhow::bail!("the server's process did not start (it said {:?})", line.trim())
        }
    }
}

/// The server's process for the child `pid`: the child itself, or under a
/// wrapper ([`WRAPPER_ENV`]) the wrapper's child that runs this binary (a
/// profiler may start helpers of its own).
pub fn server_pid(pid: u32) -> u32 {
    if std::env::var_os(WRAPPER_ENV).is_none() {
        return pid;
    }
    let exe = std::env::current_exe().ok();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|c| std::fs::read_link(format!("/proc/{c}/exe")).ok() == exe)
        .unwrap_or(pid)
}

/// Stops the child: closes its standard input, then waits for it to exit
/// (killing it after [`STOP_GRACE`]).
pub fn stop(child: &mut Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => break,
        }
    }
    eprintln!("note: the server's process did not stop within {} s; killed", STOP_GRACE.as_secs());
    let _ = child.kill();
    let _ = child.wait();
}

/// The child's side: serves on `database` until standard input closes.
pub async fn serve(args: &Args, database: &str) -> anyhow::Result<()> {
    init_server_log(args)?;
    let admin_token = std::env::var(TOKEN_ENV).with_context(|| format!("{TOKEN_ENV} is not set"))?;
    let key_file = args.child_key_file.clone().context("--child-database needs --child-key-file")?;
    let config = server_config(args, database, &admin_token, &key_file);
    let app = Application::build(&config).await.context("starting Polyclinic")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "port {}", app.port())?;
        out.flush()?;
    }
    app.run_until(async {
        // Standard input is the bench's pipe: it closes when the bench stops
        // this server or exits.
        let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())).await;
    })
    .await
}
