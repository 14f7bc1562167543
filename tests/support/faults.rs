//! A fault-injecting proxy on 127.0.0.1 between the SDK clients and the emulator.
//!
//! Every request is logged as `service:Operation` (the service from the request's SigV4
//! credential scope, the operation from its protocol: `X-Amz-Target`, the query `Action`, the
//! RPCv2 path, or the REST method and path). Chosen operations can be throttled in their
//! protocol's own words, answered with 500 or 503, have their connection reset, answer slowly,
//! or find the endpoint gone. Each connection carries one request (`Connection: close`), so a fault
//! never leaks into the next request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to a request that an injection matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error (`ThrottlingException`, EC2's `RequestLimitExceeded`, …).
    Throttle,
    /// `503 Service Unavailable` with no body.
    Unavailable,
    /// `500 Internal Server Error` with no body.
    InternalError,
    /// The request is read, then the connection is closed without an answer.
    Reset,
    /// The request is done at once; its answer comes after this delay.
    Slow(Duration),
    /// The connection is closed before the request is read: the endpoint is gone.
    Gone,
}

#[derive(Debug)]
struct Injection {
    pattern: String,
    fault: Fault,
    /// Matching requests let through before the fault starts.
    skip: u32,
    /// How many more requests it hits; `None`: every one until cleared.
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    injections: Vec<Injection>,
    /// Every request seen, in order, with the fault it met.
    log: Vec<(String, Option<Fault>)>,
    /// Once a request matching this has been answered, the endpoint goes away.
    gone_after: Option<String>,
    /// The endpoint is gone: every connection is closed unread.
    gone: bool,
}

/// The proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `pattern` names `operation`: exactly, or as a prefix ending in `*`
/// (`ec2:*`, `route53:POST *`, `*`).
fn matches(pattern: &str, operation: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => operation.starts_with(prefix),
        None => pattern == operation,
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    serve(client, &upstream, &state).await;
                });
            }
        });
        FaultProxy { port, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The SDK configuration the functions use (`autoheal_aws::sdk_config`: their retries and
    /// timeouts), pointed at this proxy.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        autoheal_aws::config::sdk_config(Some(&self.url())).await
    }

    /// The next `times` requests matching `pattern` meet `fault` (`None`: all of them).
    pub fn inject(&self, pattern: &str, fault: Fault, times: Option<u32>) {
        self.inject_after(pattern, 0, fault, times);
    }

    /// As [`Self::inject`], once `passed` matching requests have gone through untouched: the
    /// second of two similar calls fails, say.
    pub fn inject_after(&self, pattern: &str, passed: u32, fault: Fault, times: Option<u32>) {
        self.state
            .lock()
            .expect("state")
            .injections
            .push(Injection {
                pattern: pattern.to_owned(),
                fault,
                skip: passed,
                remaining: times,
            });
    }

    /// The endpoint goes away (every later connection closed unread) once a request matching
    /// `pattern` has been answered: an outage in the middle of an action.
    pub fn go_away_after(&self, pattern: &str) {
        self.state.lock().expect("state").gone_after = Some(pattern.to_owned());
    }

    /// No more faults: the endpoint is back and nothing is injected.
    pub fn heal(&self) {
        let mut state = self.state.lock().expect("state");
        state.injections.clear();
        state.gone_after = None;
        state.gone = false;
    }

    /// Every request so far, as `service:Operation`.
    pub fn requests(&self) -> Vec<String> {
        let state = self.state.lock().expect("state");
        state.log.iter().map(|(op, _)| op.clone()).collect()
    }

    /// How many requests matched `pattern` (faulted or not).
    pub fn count(&self, pattern: &str) -> usize {
        self.requests()
            .iter()
            .filter(|op| matches(pattern, op))
            .count()
    }

    /// How many requests met a fault.
    pub fn faulted(&self) -> usize {
        let state = self.state.lock().expect("state");
        state
            .log
            .iter()
            .filter(|(_, fault)| fault.is_some())
            .count()
    }

    /// Forgets the requests seen so far.
    pub fn clear_log(&self) {
        self.state.lock().expect("state").log.clear();
    }
}

fn fault_for(state: &Mutex<State>, operation: &str) -> Option<Fault> {
    let mut state = state.lock().expect("state");
    let mut chosen = None;
    for injection in &mut state.injections {
        if injection.remaining == Some(0) || !matches(&injection.pattern, operation) {
            continue;
        }
        if injection.skip > 0 {
            injection.skip -= 1;
            continue;
        }
        if let Some(left) = injection.remaining.as_mut() {
            *left -= 1;
        }
        chosen = Some(injection.fault);
        break;
    }
    state.log.push((operation.to_owned(), chosen));
    chosen
}

/// One request as read from the client.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn method_and_path(&self) -> (&str, &str) {
        let mut words = self.head.lines().next().unwrap_or("").split(' ');
        let method = words.next().unwrap_or("");
        let path = words.next().unwrap_or("");
        (method, path.split('?').next().unwrap_or(path))
    }

    /// The service, from the SigV4 scope `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(3))
            .unwrap_or("unsigned")
            .to_owned()
    }

    fn operation(&self) -> String {
        let service = self.service();
        if let Some(target) = self.header("x-amz-target") {
            let name = target.rsplit('.').next().unwrap_or(target);
            return format!("{service}:{name}");
        }
        let (method, path) = self.method_and_path();
        if let Some((_, name)) = path.split_once("/operation/") {
            return format!("{service}:{name}");
        }
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            let body = String::from_utf8_lossy(&self.body);
            if let Some(action) = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
            {
                return format!("{service}:{action}");
            }
        }
        format!("{service}:{method} {path}")
    }

    fn protocol(&self) -> Protocol {
        let content_type = self.header("content-type").unwrap_or("");
        if content_type.starts_with("application/x-amz-json") {
            Protocol::Json
        } else if content_type.starts_with("application/cbor") {
            Protocol::Cbor
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            if self.service() == "ec2" {
                Protocol::Ec2Query
            } else {
                Protocol::Query
            }
        } else if self.service() == "route53" {
            Protocol::RestXml
        } else {
            Protocol::RestJson
        }
    }
}

enum Protocol {
    Json,
    RestJson,
    Query,
    Ec2Query,
    RestXml,
    Cbor,
}

/// The service's throttling error, in its protocol.
fn throttling(protocol: Protocol) -> Vec<u8> {
    let (status, headers, body): (&str, &str, Vec<u8>) = match protocol {
        Protocol::Json | Protocol::RestJson => (
            "400 Bad Request",
            "Content-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: ThrottlingException\r\n",
            br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_vec(),
        ),
        Protocol::Ec2Query => (
            "503 Service Unavailable",
            "Content-Type: text/xml\r\n",
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault</RequestID></Response>".to_vec(),
        ),
        Protocol::Query | Protocol::RestXml => (
            "400 Bad Request",
            "Content-Type: text/xml\r\n",
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault</RequestId></ErrorResponse>".to_vec(),
        ),
        Protocol::Cbor => {
            // {"__type": "ThrottlingException", "message": "Rate exceeded"} in CBOR.
            let mut body = vec![0xa2, 0x66];
            body.extend_from_slice(b"__type");
            body.push(0x73);
            body.extend_from_slice(b"ThrottlingException");
            body.push(0x67);
            body.extend_from_slice(b"message");
            body.push(0x6d);
            body.extend_from_slice(b"Rate exceeded");
            (
                "400 Bad Request",
                "Content-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n",
                body,
            )
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut request = Request {
        head,
        body: buffer[head_end..].to_vec(),
    };
    assert!(
        request.header("transfer-encoding").is_none(),
        "the proxy reads bodies by Content-Length only: {}",
        request.head
    );
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let read = client.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        request.body.extend_from_slice(&chunk[..read]);
    }
    Some(request)
}

/// The request's head with `Connection: close`, so the upstream answers and closes.
fn closing_head(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|line| {
            !line
                .split(':')
                .next()
                .is_some_and(|key| key.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

async fn forward(request: &Request, upstream: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await.ok()?;
    stream
        .write_all(closing_head(&request.head).as_bytes())
        .await
        .ok()?;
    stream.write_all(&request.body).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    // The client must not reuse a connection this proxy closes.
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let mut rewritten = closing_head(&head).into_bytes();
    rewritten.extend_from_slice(&response[head_end..]);
    Some(rewritten)
}

async fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) {
    {
        let mut state = state.lock().expect("state");
        if state.gone {
            state.log.push(("*:gone".to_owned(), Some(Fault::Gone)));
            return; // dropped unread: the endpoint is gone
        }
    }
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let operation = request.operation();
    let response = match fault_for(state, &operation) {
        Some(Fault::Reset | Fault::Gone) => return,
        Some(Fault::Unavailable) => {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        }
        Some(Fault::InternalError) => {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        }
        Some(Fault::Throttle) => throttling(request.protocol()),
        Some(Fault::Slow(delay)) => {
            // Done at once, answered late: what a client sees of an overloaded service.
            let Some(response) = forward(&request, upstream).await else {
                return;
            };
            tokio::time::sleep(delay).await;
            response
        }
        None => {
            let Some(response) = forward(&request, upstream).await else {
                return;
            };
            response
        }
    };
    {
        let mut state = state.lock().expect("state");
        if state
            .gone_after
            .as_deref()
            .is_some_and(|pattern| matches(pattern, &operation))
        {
            state.gone = true;
        }
    }
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}
