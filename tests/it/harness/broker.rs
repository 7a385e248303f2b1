//! `rabbitmqctl` helpers that find exactly one process's broker connection (tests run in
//! parallel against one broker, and every daemon names its connection alike).

use super::DEADLINE;

/// Runs `rabbitmqctl` of the broker on this machine (found on PATH or in /usr/sbin; Debian's lets
/// only root and the rabbitmq user run it); returns stdout.
pub async fn rabbitmqctl(args: &[&str]) -> String {
    let path = format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default());
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new("rabbitmqctl")
            .args(args)
            .env("PATH", path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("rabbitmqctl {args:?} did not end within {DEADLINE:?}"))
    .expect("rabbitmqctl runs: these tests need the broker on this machine and its rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The local ports of the process's established TCP connections to `server_port`.
pub async fn local_ports_to(pid: u32, server_port: u16) -> Vec<u16> {
    let out = tokio::process::Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .await
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let marker = format!("pid={pid},");
    text.lines()
        .filter(|l| l.contains(&marker))
        .filter_map(|l| {
            // Recv-Q Send-Q Local:Port Peer:Port users:(...)
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local = cols.get(2)?;
            let peer = cols.get(3)?;
            let peer_port: u16 = peer.rsplit(':').next()?.parse().ok()?;
            (peer_port == server_port).then(|| local.rsplit(':').next()?.parse().ok())?
        })
        .collect()
}

/// The broker's pid (as `rabbitmqctl` prints it) of the connection that comes from local
/// port `port`, and its client-provided connection name.
pub async fn connection_from_port(port: u16) -> Option<(String, String)> {
    let out = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "peer_port",
        "client_properties",
    ])
    .await;
    out.lines().find_map(|l| {
        let mut cols = l.splitn(3, '\t');
        let pid = cols.next()?.trim().to_owned();
        let peer_port: u16 = cols.next()?.trim().parse().ok()?;
        let props = cols.next().unwrap_or_default().to_owned();
        (peer_port == port).then_some((pid, props))
    })
}
