//! A fault-injecting HTTP proxy in front of the loopback S3 server: the SDK talks to it as to
//! S3, and a plan decides, request by request, whether to pass it through or to answer 503
//! SlowDown, reset the connection in the middle of the body, apply a request and then fail it,
//! or cut a response's body short. Each client connection carries one request (the proxy asks
//! the server to close after it), so every request meets the plan exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the plan sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Requests through this proxy so far, this one included (1-based).
    pub n: usize,
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The `X-Amz-Target` header of JSON-protocol services (`secretsmanager.GetSecretValue`).
    pub amz_target: String,
}

impl Request {
    /// An `UploadPart` (PUT with `partNumber`) or a single `PutObject`.
    pub fn is_upload(&self) -> bool {
        self.method == "PUT"
    }

    /// Secrets Manager's `GetSecretValue`.
    pub fn is_get_secret(&self) -> bool {
        self.amz_target == "secretsmanager.GetSecretValue"
    }

    /// `CompleteMultipartUpload`: POST with `uploadId`.
    pub fn is_complete(&self) -> bool {
        self.method == "POST" && self.target.contains("uploadId=")
    }

    /// `DeleteObject` or `DeleteObjects` (POST `?delete`).
    pub fn is_delete(&self) -> bool {
        self.method == "DELETE" || (self.method == "POST" && self.target.contains("?delete"))
    }

    /// A `GetObject` of a backup's manifest.
    pub fn is_manifest_read(&self) -> bool {
        self.is_get_object() && self.target.contains(".manifest.json")
    }

    /// A `GetObject` (not a listing: those carry `list-type` or `uploads`).
    pub fn is_get_object(&self) -> bool {
        self.method == "GET" && !self.target.contains("list-type=") && !self.target.contains("uploads")
    }
}

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// 503 SlowDown before the body is read (the SDK retries it).
    SlowDown,
    /// 400 ThrottlingException of the JSON protocols (Secrets Manager, SNS's query errors aside).
    Throttle,
    /// The connection is reset after this many bytes of the request body went upstream.
    ResetAfter(usize),
    /// The request reaches the server and is applied; the client gets a 500 instead of its answer.
    ApplyThenFail,
    /// The response's body is cut after this many bytes (headers promise more).
    TruncateBody(usize),
}

type Plan = dyn Fn(&Request) -> Fault + Send + Sync;

/// A running proxy; dropped, it stops accepting.
pub struct FaultProxy {
    pub url: String,
    /// Every request and what was done with it.
    pub log: Arc<Mutex<Vec<(Request, Fault)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) with `plan`.
    pub async fn start(upstream: &str, plan: impl Fn(&Request) -> Fault + Send + Sync + 'static) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let plan: Arc<Plan> = Arc::new(plan);
        let count = Arc::new(AtomicUsize::new(0));
        let task = {
            let log = log.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (upstream, plan, log, count) =
                        (upstream.clone(), plan.clone(), log.clone(), count.clone());
                    tokio::spawn(async move {
                        let _ = serve(client, &upstream, plan.as_ref(), &log, &count).await;
                    });
                }
            })
        };
        FaultProxy { url, log, task }
    }

    /// The faults injected so far, by kind.
    pub fn injected(&self) -> Vec<Fault> {
        self.log.lock().expect("log").iter().map(|(_, f)| *f).filter(|f| *f != Fault::Pass).collect()
    }
}

/// Reads up to the end of the request head; returns the head and any body bytes read with it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too long"));
        }
    }
}

/// The head with `Connection: close` in place of any connection header.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    plan: &Plan,
    log: &Mutex<Vec<(Request, Fault)>>,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    let Some((head, early_body)) = read_head(&mut client).await? else { return Ok(()) };
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or_default().to_owned();
    let mut words = first.split(' ');
    let amz_target = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-amz-target")))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let request = Request {
        n: count.fetch_add(1, Ordering::SeqCst) + 1,
        method: words.next().unwrap_or_default().to_owned(),
        target: words.next().unwrap_or_default().to_owned(),
        amz_target,
    };
    let fault = plan(&request);
    log.lock().expect("log").push((request, fault));

    let refusal = match fault {
        Fault::SlowDown => Some((
            "503 Slow Down",
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        )),
        Fault::Throttle => Some((
            "400 Bad Request",
            "application/x-amz-json-1.1",
            "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}",
        )),
        _ => None,
    };
    if let Some((status, content_type, body)) = refusal {
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(response.as_bytes()).await?;
        return client.shutdown().await;
    }

    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&closing(&head)).await?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();

    // The request body, client to server (all of it, or up to the reset).
    let limit = match fault {
        Fault::ResetAfter(n) => Some(n),
        _ => None,
    };
    let upload = async move {
        let mut sent = 0usize;
        let mut pending = early_body;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if !pending.is_empty() {
                let take = limit.map_or(pending.len(), |l| pending.len().min(l.saturating_sub(sent)));
                server_write.write_all(&pending[..take]).await?;
                sent += take;
                if limit.is_some_and(|l| sent >= l) {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            let n = client_read.read(&mut chunk).await?;
            if n == 0 {
                return Ok(false);
            }
            pending = chunk[..n].to_vec();
        }
    };

    if limit.is_some() {
        // Reset: part of the body went up, then both sides are dropped mid-request.
        let _ = upload.await;
        return Ok(());
    }
    let uploader = tokio::spawn(upload);
    if fault == Fault::Pass {
        // Streamed, so that an interim `100 Continue` reaches the client at once.
        let copied = tokio::io::copy(&mut server_read, &mut client_write).await;
        uploader.abort();
        copied?;
        return client_write.shutdown().await;
    }
    let mut response = Vec::new();
    server_read.read_to_end(&mut response).await?;
    uploader.abort();
    match fault {
        Fault::ApplyThenFail => {
            let body = "<Error><Code>InternalError</Code><Message>injected after apply</Message></Error>";
            let out = format!(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client_write.write_all(out.as_bytes()).await?;
        }
        Fault::TruncateBody(n) => {
            let body_start =
                response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
            let end = (body_start + n).min(response.len());
            client_write.write_all(&response[..end]).await?;
        }
        _ => client_write.write_all(&response).await?,
    }
    client_write.shutdown().await
}
