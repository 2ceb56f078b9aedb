//! The client of the inference service (`fhe-ml serve`): fetches a model's client spec,
//! uploads the client's evaluation key, and sends ciphertexts for inference. Quantization,
//! encryption, decryption and the secret key stay in the local `Client`; this type only moves
//! blobs. Blocking (ureq), over HTTP or HTTPS (rustls; webpki roots, or the CA given in
//! [`RemoteOptions`]), with the tenant's API token when the service asks for one.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use crate::error::{Error, Result};
use crate::fhe::wire::{self, Kind};
use crate::fhe::EvaluationKey;
use crate::protocol::ClientSpec;
use crate::protocol::{EncryptedInput, EncryptedOutput};
use crate::protocol::{Health, KeyReceipt, ModelInfo};

/// Largest response read (an output batch of a thousand ten-class rows).
const RESPONSE_LIMIT: u64 = 300 << 20;

/// How to reach a service: the tenant's API token, and the CA certificate (PEM) that signed an
/// HTTPS service's certificate when it is not a public one. `Debug` hides the token.
#[derive(Clone, Default)]
pub struct RemoteOptions {
    /// Sent as `Authorization: Bearer TOKEN` on every request.
    pub token: Option<String>,
    /// Trusted instead of the webpki roots, PEM.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

/// A remote inference service. `Debug` hides the token.
#[derive(Clone)]
pub struct RemoteServer {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("base", &self.base)
            .field("token", &self.authorization.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

/// Sends a request, once more if the connection died under it (a reset, an early EOF or a
/// broken pipe, with no answer): ureq reuses pooled connections, and one the service has closed
/// (it closes after refusing an oversized body, or when idle) fails the next request though the
/// service never saw it. The answer is the same either way: inference is a pure function of its
/// input, and a key upload stores the same key under the same id. The cost, when the service
/// did read the request before the connection died (it crashed, or the network failed during
/// its answer): the work runs twice, and a tenant's query budget counts it twice. An oversized
/// body the service cut off is sent twice before its error is returned.
fn retry_stale<T>(
    mut send: impl FnMut() -> std::result::Result<T, ureq::Error>,
) -> std::result::Result<T, ureq::Error> {
    match send() {
        Err(ureq::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            send()
        }
        other => other,
    }
}

fn remote<E: std::fmt::Display>(url: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Remote(format!("{url}: {e}"))
}

/// A failed call, classified for [`crate::batch`]'s retries: the HTTP status and error
/// variant when the service answered, none when it could not be reached.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The HTTP status of an answer; `None` when the connection failed or was cut.
    pub status: Option<u16>,
    /// The service's error variant (`UnknownKey`, ...).
    pub variant: Option<String>,
    /// A 429's or 503's `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// The error the public API returns.
    pub error: Error,
}

impl Failure {
    fn of(error: Error) -> Self {
        Self {
            status: None,
            variant: None,
            retry_after_s: None,
            error,
        }
    }

    /// Whether the same request may succeed later: the service (or the load balancer before
    /// it) could not be reached, cut the connection, was busy, draining or over a rate.
    pub fn transient(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => matches!(status, 408 | 429 | 502 | 503 | 504),
        }
    }

    /// Whether the service does not hold the client's evaluation key (upload it again).
    pub fn unknown_key(&self) -> bool {
        self.variant.as_deref() == Some("UnknownKey")
    }
}

/// Whether a transport error can heal: a refused, reset or timed-out connection (a replica
/// restarting), not a bad URL or certificate.
fn transport_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

impl RemoteServer {
    /// A client for the service at `url` (e.g. `http://127.0.0.1:8080`); requests time out
    /// after 600 s.
    ///
    /// # Errors
    /// `Error::Input` when `url` does not start with `http://` or `https://`.
    pub fn new(url: &str) -> Result<Self> {
        Self::connect(url, &RemoteOptions::default())
    }

    /// A client for the service at `url` with a token and, for HTTPS with a private CA, that
    /// CA's certificate; requests time out after 600 s.
    ///
    /// # Errors
    /// `Error::Input` when `url` does not start with `http://` or `https://`, or the CA PEM
    /// holds no certificate.
    pub fn connect(url: &str, options: &RemoteOptions) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(Error::Input(format!(
                "server URL {url:?} must start with http:// or https://"
            )));
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &options.ca_pem {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c.to_owned())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Input(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Input(
                    "CA certificate: no certificate in the PEM".into(),
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self {
            base,
            agent,
            authorization: options.token.as_ref().map(|t| format!("Bearer {t}")),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Reads a response: the body on success, the service's JSON error otherwise.
    fn finish(
        &self,
        url: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let transport = |e: ureq::Error| {
            let transient = transport_transient(&e);
            Failure {
                // A permanent transport error reads as a client error: no retry.
                status: (!transient).then_some(400),
                ..Failure::of(remote(url)(e))
            }
        };
        let mut response = response.map_err(transport)?;
        let status = response.status();
        let retry_after_s = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let bytes = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_LIMIT)
            .read_to_vec()
            .map_err(transport)?;
        if status.is_success() {
            return Ok(bytes);
        }
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let field = |key: &str| {
            json.as_ref()
                .and_then(|v| v.get(key).and_then(|e| e.as_str()).map(String::from))
        };
        let message =
            field("error").unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let variant = field("variant");
        let shown = variant
            .as_ref()
            .map_or(String::new(), |v| format!(" ({v})"));
        Err(Failure {
            status: Some(status.as_u16()),
            variant,
            retry_after_s,
            error: Error::Remote(format!("{url}: {status}{shown}: {message}")),
        })
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let url = self.url(path);
        let response = retry_stale(|| {
            let mut request = self.agent.get(&url);
            if let Some(auth) = &self.authorization {
                request = request.header("authorization", auth);
            }
            request.call()
        });
        self.finish(&url, response).map_err(|f| f.error)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>> {
        self.post_classified(path, body).map_err(|f| f.error)
    }

    pub(crate) fn post_classified(
        &self,
        path: &str,
        body: &[u8],
    ) -> std::result::Result<Vec<u8>, Failure> {
        let url = self.url(path);
        let response = retry_stale(|| {
            let mut request = self
                .agent
                .post(&url)
                .header("content-type", "application/octet-stream");
            if let Some(auth) = &self.authorization {
                request = request.header("authorization", auth);
            }
            request.send(body)
        });
        self.finish(&url, response)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(&self.get(path)?)
            .map_err(|e| Error::Remote(format!("{}: unexpected answer: {e}", self.url(path))))
    }

    /// `GET /v1/health`: the service's status, model count and keys held.
    ///
    /// # Errors
    /// `Error::Remote` when the service cannot be reached, answers with an error (its status
    /// and variant in the message), or sends unexpected JSON.
    pub fn health(&self) -> Result<Health> {
        self.json("/v1/health")
    }

    /// `GET /v1/models`: every model the service offers.
    ///
    /// # Errors
    /// `Error::Remote` when the service cannot be reached, answers with an error (its status
    /// and variant in the message), or sends unexpected JSON.
    pub fn models(&self) -> Result<Vec<ModelInfo>> {
        self.json("/v1/models")
    }

    /// `GET /v1/models/{name}`: what a client needs to encrypt for one model.
    ///
    /// # Errors
    /// `Error::Remote` when the service cannot be reached, answers with an error (an unknown
    /// name: 404, `UnknownModel`), or sends unexpected JSON.
    pub fn model(&self, name: &str) -> Result<ModelInfo> {
        self.json(&format!("/v1/models/{name}"))
    }

    /// The model's client spec, checked (what `Client::new` takes).
    ///
    /// # Errors
    /// As [`RemoteServer::model`], and `Error::Remote` for a spec that is not base64; for the
    /// spec blob, the errors of [`ClientSpec::from_bytes`] (`Error::Wire`, ...).
    pub fn client_spec(&self, name: &str) -> Result<ClientSpec> {
        let info = self.model(name)?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(info.client_spec)
            .map_err(|e| Error::Remote(format!("client spec of {name}: {e}")))?;
        ClientSpec::from_bytes(&blob)
    }

    /// Uploads an evaluation key (`POST /v1/keys`, about 29 MiB); returns its id (hex).
    ///
    /// # Errors
    /// `Error::Wire` when the key does not serialize; `Error::Remote` when the service cannot
    /// be reached, refuses the key (its status and variant in the message), or sends an
    /// unexpected receipt.
    pub fn upload_key(&self, key: &EvaluationKey) -> Result<String> {
        self.upload_key_bytes(&key.to_bytes()?).map_err(|f| f.error)
    }

    /// [`RemoteServer::upload_key`] of a serialized key, its failure classified.
    pub(crate) fn upload_key_bytes(&self, blob: &[u8]) -> std::result::Result<String, Failure> {
        let bytes = self.post_classified("/v1/keys", blob)?;
        let receipt: KeyReceipt = serde_json::from_slice(&bytes).map_err(|e| Failure {
            status: Some(200),
            ..Failure::of(Error::Remote(format!("unexpected key receipt: {e}")))
        })?;
        Ok(receipt.key_id)
    }

    /// `POST /v1/models/{model}/predict`: runs the model on one encrypted row.
    ///
    /// # Errors
    /// `Error::Remote` when the service cannot be reached or answers with an error (its
    /// status and variant in the message: an unknown model, key or mismatched ciphertext);
    /// `Error::Wire` for an input that does not serialize, and `Error::Wire`,
    /// `Error::WrongKind` or `Error::TooLarge` for a malformed answer.
    pub fn predict(&self, model: &str, input: &EncryptedInput) -> Result<EncryptedOutput> {
        let bytes = self.post(&format!("/v1/models/{model}/predict"), &input.to_bytes()?)?;
        EncryptedOutput::from_bytes(&bytes)
    }

    /// Many rows in one request (the service runs them on all its cores); one result per
    /// row, in order. All rows must come from one client.
    ///
    /// # Errors
    /// As [`RemoteServer::predict`] (a batch over the service's limit: 413, `TooLarge`), and
    /// `Error::Remote` when the number of results is not the number of rows.
    pub fn predict_batch(
        &self,
        model: &str,
        inputs: &[EncryptedInput],
    ) -> Result<Vec<EncryptedOutput>> {
        let blob = wire::seal(Kind::InputBatch, &inputs)?;
        self.predict_batch_blob(model, &blob, inputs.len())
            .map_err(|f| f.error)
    }

    /// [`RemoteServer::predict_batch`] of a sealed input batch of `rows` rows, its failure
    /// classified.
    pub(crate) fn predict_batch_blob(
        &self,
        model: &str,
        blob: &[u8],
        rows: usize,
    ) -> std::result::Result<Vec<EncryptedOutput>, Failure> {
        let bytes = self.post_classified(&format!("/v1/models/{model}/predict-batch"), blob)?;
        let answered = |error: Error| Failure {
            status: Some(200),
            ..Failure::of(error)
        };
        let outputs: Vec<EncryptedOutput> =
            wire::open(Kind::OutputBatch, &bytes).map_err(answered)?;
        if outputs.len() != rows {
            return Err(answered(Error::Remote(format!(
                "{} results for {rows} rows",
                outputs.len()
            ))));
        }
        Ok(outputs)
    }

    /// Raw POST, for tests of the service's error handling.
    ///
    /// # Errors
    /// `Error::Remote` when the service cannot be reached or answers with an error (its
    /// status and variant in the message).
    #[doc(hidden)]
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Result<Vec<u8>> {
        self.post(path, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Reads one HTTP request's head (this test's requests have no body).
    fn read_head(reader: &mut BufReader<std::net::TcpStream>) {
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                return;
            }
        }
    }

    /// A service that answers the first request on a kept-alive connection, then closes that
    /// connection when the second request arrives on it (as the service does after refusing an
    /// oversized body): the client sends again on a new connection and gets its answer.
    #[test]
    fn a_request_on_a_connection_the_service_closed_is_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (first, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(first.try_clone().unwrap());
            read_head(&mut reader);
            let mut writer = first;
            writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
            read_head(&mut reader);
            drop(reader);
            drop(writer);
            let (second, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(second.try_clone().unwrap());
            read_head(&mut reader);
            let mut writer = second;
            writer
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                .unwrap();
        });
        let remote = RemoteServer::new(&format!("http://127.0.0.1:{port}")).unwrap();
        assert_eq!(remote.get("/v1/health").unwrap(), b"{}");
        assert_eq!(remote.get("/v1/models").unwrap(), b"[]");
        server.join().unwrap();
    }
}
