//! A local Lambda Runtime API on 127.0.0.1, to run a function's own binary the way Lambda runs
//! it: the process polls `GET /2018-06-01/runtime/invocation/next`, is handed an event, and
//! posts its result (`/response`) or error (`/error`). Each event is handed out once; a poll
//! with no event left waits until the test ends. The part of the API a runtime client uses
//! (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), over HTTP/1.1 with
//! keep-alive as Lambda's endpoint.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function posted for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    Error(Value),
    /// The function could not start (`/init/error`).
    InitError(Value),
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<(String, Value)>,
    answers: Vec<(String, Answer)>,
}

/// The Runtime API; `address` is what the process finds in `AWS_LAMBDA_RUNTIME_API`.
#[derive(Debug)]
pub struct RuntimeApi {
    pub address: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl RuntimeApi {
    /// Serves `events` (request id, payload), in order.
    pub fn start(events: Vec<(String, Value)>) -> Self {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .expect("bind the runtime API");
        let address = listener.local_addr().expect("its address").to_string();
        let state = Arc::new((
            Mutex::new(State {
                pending: events.into(),
                answers: Vec::new(),
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        RuntimeApi { address, state }
    }

    /// Waits for the answer to `request_id`.
    pub fn answer(&self, request_id: &str, timeout: Duration) -> Option<Answer> {
        let (lock, changed) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((_, answer)) = state
                .answers
                .iter()
                .find(|(id, answer)| id == request_id || matches!(answer, Answer::InitError(_)))
            {
                return Some(answer.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

fn reply(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message).is_ok()
}

fn serve(stream: TcpStream, state: &(Mutex<State>, Condvar)) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let (lock, changed) = state;
    while let Some(request) = read_request(&mut reader) {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let accepted = br#"{"status":"OK"}"#;
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", path) if path == format!("{PREFIX}/invocation/next") => {
                let next = lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .pop_front();
                let Some((request_id, event)) = next else {
                    // Nothing more to hand out: the poll waits, as Lambda's does between
                    // events, until the test kills the process.
                    std::thread::sleep(Duration::from_secs(3600));
                    return;
                };
                let deadline = chrono::Utc::now().timestamp_millis() + 300_000;
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", request_id),
                    ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:autoheal".to_owned(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                    ),
                ];
                let payload = serde_json::to_vec(&event).expect("an event serializes");
                if !reply(&mut writer, "200 OK", &headers, &payload) {
                    return;
                }
            }
            ("POST", path) => {
                let answer = match path.strip_prefix(PREFIX) {
                    Some("/init/error") => Some((String::new(), Answer::InitError(body))),
                    Some(rest) => rest
                        .strip_prefix("/invocation/")
                        .and_then(|rest| rest.split_once('/'))
                        .and_then(|(id, kind)| match kind {
                            "response" => Some((id.to_owned(), Answer::Response(body))),
                            "error" => Some((id.to_owned(), Answer::Error(body))),
                            _ => None,
                        }),
                    None => None,
                };
                let Some(answer) = answer else {
                    reply(&mut writer, "404 Not Found", &[], b"{}");
                    continue;
                };
                lock.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .answers
                    .push(answer);
                changed.notify_all();
                if !reply(&mut writer, "202 Accepted", &[], accepted) {
                    return;
                }
            }
            _ => {
                if !reply(&mut writer, "404 Not Found", &[], b"{}") {
                    return;
                }
            }
        }
    }
}
