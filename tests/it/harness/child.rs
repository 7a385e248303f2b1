//! The real binary as a child process with extra settings, its log lines kept for assertions.

use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{DEADLINE, Env};

/// A `cross-postback run` child process; killed when dropped.
pub struct Daemon {
    pub child: Child,
    lines: UnboundedReceiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts `cross-postback run` with the env's variables plus `extra` (name, value).
    pub fn spawn(env: &Env, extra: &[(&str, &str)]) -> Daemon {
        use std::io::BufRead;
        let mut cmd = env.command();
        cmd.envs(extra.iter().map(|(k, v)| (*k, *v)));
        let mut child = cmd
            .arg("run")
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line (after the ones already returned by this call) that contains every
    /// needle; returns it.
    pub async fn wait_for_line(&mut self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!(
                    "the daemon exited before a log line with {needles:?}; its log:\n{}",
                    self.seen.join("\n")
                ),
                Err(_) => panic!(
                    "no log line with {needles:?} within {DEADLINE:?}; its log:\n{}",
                    self.seen.join("\n")
                ),
            };
            self.seen.push(line.clone());
            if needles.iter().all(|n| line.contains(n)) {
                return line;
            }
        }
    }

    /// SIGTERM, as an operator stops it; returns how it exited.
    pub async fn terminate(mut self) -> ExitStatus {
        terminate(&mut self.child).await
    }

    /// Kills the process (SIGKILL) and returns every line it wrote.
    pub async fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread ends at EOF, which closes the channel.
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

/// Sends SIGTERM and waits for the exit, with a deadline; after it, SIGKILL (and the test sees a
/// status that is not success).
pub async fn terminate(child: &mut Child) -> ExitStatus {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("killed daemon reaped");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
