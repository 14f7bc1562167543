//! A fault-injecting proxy on 127.0.0.1 between the SDK clients and the emulator.
//!
//! Every request is logged as `service:Operation` (the service from the request's SigV4
//! credential scope, the operation from its protocol: `X-Amz-Target`, the query `Action`, the
//! RPCv2 path, or the REST method and path). Chosen operations (and of those, optionally, only
//! the requests whose body says something: one role's `AssumeRole`, say) can be throttled or
//! denied in their protocol's own words, answered with 500 or 503, have their connection reset,
//! answer slowly, or find the endpoint gone. Each connection carries one request
//! (`Connection: close`), so a fault never leaks into the next request.

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
    /// The service's access denied error (`AccessDenied`, `AccessDeniedException`, EC2's
    /// `UnauthorizedOperation`): what a policy, a trust or an SCP that does not allow the
    /// request answers.
    Denied,
}

#[derive(Debug)]
struct Injection {
    pattern: String,
    /// Only requests whose body, as sent or percent-decoded, contains this.
    body: Option<String>,
    fault: Fault,
    /// Matching requests let through before the fault starts.
    skip: u32,
    /// How many more requests it hits; `None`: every one until cleared.
    remaining: Option<u32>,
}

/// One request as the log keeps it.
#[derive(Debug)]
struct Seen {
    /// `service:Operation`.
    operation: String,
    /// Its body, percent-decoded.
    body: String,
    fault: Option<Fault>,
}

#[derive(Debug, Default)]
struct State {
    injections: Vec<Injection>,
    /// Every request seen, in order, with the fault it met.
    log: Vec<Seen>,
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
        self.push(pattern, None, passed, fault, times);
    }

    /// As [`Self::inject`], for the requests matching `pattern` whose body contains `body`
    /// (as sent, or percent-decoded: `RoleArn=arn:aws:iam::111111111111:role/x` finds one
    /// account's `AssumeRole`).
    pub fn inject_when(&self, pattern: &str, body: &str, fault: Fault, times: Option<u32>) {
        self.push(pattern, Some(body), 0, fault, times);
    }

    fn push(
        &self,
        pattern: &str,
        body: Option<&str>,
        passed: u32,
        fault: Fault,
        times: Option<u32>,
    ) {
        self.state
            .lock()
            .expect("state")
            .injections
            .push(Injection {
                pattern: pattern.to_owned(),
                body: body.map(str::to_owned),
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
        state
            .log
            .iter()
            .map(|seen| seen.operation.clone())
            .collect()
    }

    /// The percent-decoded bodies of the requests so far that matched `pattern`, in order.
    pub fn bodies(&self, pattern: &str) -> Vec<String> {
        let state = self.state.lock().expect("state");
        state
            .log
            .iter()
            .filter(|seen| matches(pattern, &seen.operation))
            .map(|seen| seen.body.clone())
            .collect()
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
        state.log.iter().filter(|seen| seen.fault.is_some()).count()
    }

    /// Forgets the requests seen so far.
    pub fn clear_log(&self) {
        self.state.lock().expect("state").log.clear();
    }
}

fn fault_for(state: &Mutex<State>, operation: &str, body: &[u8]) -> Option<Fault> {
    let raw = String::from_utf8_lossy(body);
    let decoded = percent_decoded(&raw);
    let mut state = state.lock().expect("state");
    let mut chosen = None;
    for injection in &mut state.injections {
        if injection.remaining == Some(0) || !matches(&injection.pattern, operation) {
            continue;
        }
        if let Some(wanted) = &injection.body
            && !raw.contains(wanted.as_str())
            && !decoded.contains(wanted.as_str())
        {
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
    state.log.push(Seen {
        operation: operation.to_owned(),
        body: decoded,
        fault: chosen,
    });
    chosen
}

/// A form-encoded body as text: `+` a space, `%XX` its byte.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(u8::try_from(byte).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// An HTTP response that closes its connection.
fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// A CBOR text string (major type 3).
fn cbor_text(text: &str) -> Vec<u8> {
    let length = text.len();
    let mut out = match u8::try_from(length) {
        Ok(short) if short < 24 => vec![0x60 | short],
        Ok(byte) => vec![0x78, byte],
        Err(_) => {
            let two = u16::try_from(length).expect("a short message");
            let [high, low] = two.to_be_bytes();
            vec![0x79, high, low]
        }
    };
    out.extend_from_slice(text.as_bytes());
    out
}

/// `{"__type": kind, "message": message}` in CBOR, as an RPCv2 CBOR service answers an error.
fn cbor_error(kind: &str, message: &str) -> Vec<u8> {
    let mut body = vec![0xa2];
    body.extend(cbor_text("__type"));
    body.extend(cbor_text(kind));
    body.extend(cbor_text("message"));
    body.extend(cbor_text(message));
    body
}

const CBOR_HEADERS: &str = "Content-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n";

/// The service's throttling error, in its protocol.
fn throttling(protocol: Protocol) -> Vec<u8> {
    match protocol {
        Protocol::Json | Protocol::RestJson => response(
            "400 Bad Request",
            "Content-Type: application/x-amz-json-1.0\r\nx-amzn-ErrorType: ThrottlingException\r\n",
            br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        Protocol::Ec2Query => response(
            "503 Service Unavailable",
            "Content-Type: text/xml\r\n",
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault</RequestID></Response>",
        ),
        Protocol::Query | Protocol::RestXml => response(
            "400 Bad Request",
            "Content-Type: text/xml\r\n",
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault</RequestId></ErrorResponse>",
        ),
        Protocol::Cbor => response(
            "400 Bad Request",
            CBOR_HEADERS,
            &cbor_error("ThrottlingException", "Rate exceeded"),
        ),
    }
}

/// The service's access denied error for `operation` (`service:Operation`), in its protocol:
/// the code each protocol's services answer (query and REST XML `AccessDenied`, EC2
/// `UnauthorizedOperation`, JSON and CBOR `AccessDeniedException`) and IAM's wording.
fn denied(protocol: Protocol, operation: &str) -> Vec<u8> {
    let message = format!(
        "User: arn:aws:sts::123456789012:assumed-role/fault/proxy is not authorized to perform: {operation}"
    );
    match protocol {
        Protocol::Json => response(
            "400 Bad Request",
            "Content-Type: application/x-amz-json-1.0\r\n",
            serde_json::json!({"__type": "AccessDeniedException", "message": message})
                .to_string()
                .as_bytes(),
        ),
        Protocol::RestJson => response(
            "403 Forbidden",
            "Content-Type: application/json\r\nx-amzn-ErrorType: AccessDeniedException\r\n",
            serde_json::json!({"message": message}).to_string().as_bytes(),
        ),
        Protocol::Ec2Query => response(
            "403 Forbidden",
            "Content-Type: text/xml\r\n",
            format!("<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. {message}</Message></Error></Errors><RequestID>fault</RequestID></Response>").as_bytes(),
        ),
        Protocol::Query | Protocol::RestXml => response(
            "403 Forbidden",
            "Content-Type: text/xml\r\n",
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>").as_bytes(),
        ),
        Protocol::Cbor => response(
            "400 Bad Request",
            CBOR_HEADERS,
            &cbor_error("AccessDeniedException", &message),
        ),
    }
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
            state.log.push(Seen {
                operation: "*:gone".to_owned(),
                body: String::new(),
                fault: Some(Fault::Gone),
            });
            return; // dropped unread: the endpoint is gone
        }
    }
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let operation = request.operation();
    let response = match fault_for(state, &operation, &request.body) {
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
        Some(Fault::Denied) => denied(request.protocol(), &operation),
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
