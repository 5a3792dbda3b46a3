//! Stdio sessions: a child process spoken to with newline-delimited JSON-RPC.

use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_hub_protocol::{Message, RawValue};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{Reply, is_reply_to, request_bytes};
use crate::error::LoadgenError;

/// A child process spoken to over its stdin/stdout.
#[derive(Debug)]
pub(crate) struct StdioSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: i64,
}

impl StdioSession {
    pub(crate) fn spawn(cmd: &[String]) -> Result<StdioSession, LoadgenError> {
        let (prog, args) = cmd
            .split_first()
            .ok_or_else(|| LoadgenError::Usage("stdio needs a command".into()))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| LoadgenError::Process(format!("spawning {prog}: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(LoadgenError::Process("child without pipes".into()));
        };
        Ok(StdioSession {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            line: String::new(),
            next_id: 1,
        })
    }

    pub(super) async fn write(&mut self, mut body: Vec<u8>) -> Result<(), LoadgenError> {
        body.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| LoadgenError::Process("stdin closed".into()))?;
        stdin.write_all(&body).await?;
        stdin.flush().await?;
        Ok(())
    }

    pub(super) async fn request(
        &mut self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Reply, LoadgenError> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(request_bytes(id, method, params)).await?;
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line).await? == 0 {
                return Err(LoadgenError::Process(format!(
                    "{method}: the child closed stdout"
                )));
            }
            let at = Instant::now();
            // Servers may print notifications or requests of their own in between.
            if let Ok(msg) = Message::from_str(self.line.trim_end())
                && is_reply_to(&msg, id)
            {
                return Ok(Reply { msg, at });
            }
        }
    }

    /// The child and its pipes, for a caller that goes on speaking to it its own way after the
    /// handshake (what the stdout reader already buffered stays in it).
    pub(crate) fn into_parts(
        mut self,
    ) -> Result<(Child, ChildStdin, BufReader<ChildStdout>), LoadgenError> {
        let stdin = self
            .stdin
            .take()
            .ok_or_else(|| LoadgenError::Process("stdin closed".into()))?;
        Ok((self.child, stdin, self.stdout))
    }

    /// Closes stdin (MCP servers exit on EOF) and reaps the child, killing it after a second.
    pub(crate) async fn shutdown(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
