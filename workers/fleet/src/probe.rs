//! `fleet probe URL`: the container health check. Runtime images carry the fleet's binaries and
//! no curl, so the check is a plain HTTP/1.1 GET to the worker's own health endpoint
//! (`/health/live`) that passes on a 2xx status line.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `url` (`http://HOST:PORT/PATH`) and return the status code.
pub async fn get_status(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are probed (the health endpoint is plain HTTP)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    anyhow::ensure!(!authority.is_empty(), "no host in {url}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // The status line is all that is needed; read a bounded prefix.
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|_| line.starts_with("HTTP/"))
            .context("the answer is not an HTTP status line")?;
        anyhow::Ok(status)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {authority} within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /health/live HTTP/1.1\r\n"));
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/health/live")
    }

    #[tokio::test]
    async fn reads_the_status_of_the_answer() {
        let url = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        assert_eq!(get_status(&url, Duration::from_secs(5)).await.unwrap(), 200);
        let url = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(get_status(&url, Duration::from_secs(5)).await.unwrap(), 503);
        let url = serve_once("hello\r\n").await;
        assert!(get_status(&url, Duration::from_secs(5)).await.is_err());
        assert!(
            get_status("https://127.0.0.1:1/", Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
