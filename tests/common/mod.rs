//! Helpers shared by the CLI tests: running `fhe-ml`, and `fhe-ml serve` started on a free
//! loopback port.
// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};

/// Runs the CLI with `args`.
pub fn fhe_ml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhe-ml"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the CLI and requires success (its stderr is the failure message).
pub fn fhe_ml_ok(args: &[&str]) -> Output {
    let out = fhe_ml(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `fhe-ml serve --models DIR` process on a free loopback port; killed when dropped.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
}

impl Serve {
    /// Starts the service on `models` and waits (at most 15 s) until it accepts connections.
    pub fn start(models: &str) -> Self {
        Self::start_with(&["--models", models], Stdio::null())
    }

    /// Starts `fhe-ml serve` with `args` after its address, its log going to `stderr`, and
    /// waits (at most 15 s) until it accepts connections.
    pub fn start_with(args: &[&str], stderr: Stdio) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_fhe-ml"))
            .args(["serve", "--addr", &addr])
            .args(args)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let up = (0..150).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "the service did not start");
        Self {
            child,
            url: format!("http://{addr}"),
            port,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A shipped dataset's fhe-ml split: stratified for classifiers (seed 42, 20% test).
pub fn classification_split(dataset: &str) -> fhe_ml::data::Split<usize> {
    fhe_ml::data::load_csv(data_path(dataset))
        .unwrap()
        .split(0.2, 42)
        .unwrap()
}

/// A shipped dataset's regression split (seed 42, 20% test).
pub fn regression_split(dataset: &str) -> fhe_ml::data::Split<f64> {
    fhe_ml::data::load_csv(data_path(dataset))
        .unwrap()
        .split_regression(0.2, 42)
        .unwrap()
}

/// `data/{dataset}.csv` in this checkout.
pub fn data_path(dataset: &str) -> String {
    format!("{}/data/{dataset}.csv", env!("CARGO_MANIFEST_DIR"))
}

/// Writes `rows` data rows of the CSV `csv`, cycling through them, to `out` (its header
/// first); with `bad_at`, that data row's first cell becomes text (a row the model refuses).
#[allow(dead_code)]
pub fn replicate(csv: &str, rows: usize, out: &std::path::Path, bad_at: Option<usize>) {
    use std::io::Write;
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let data: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    writeln!(w, "{header}").unwrap();
    for i in 0..rows {
        let line = data[i % data.len()];
        if Some(i) == bad_at {
            let rest = line.split_once(',').unwrap().1;
            writeln!(w, "oops,{rest}").unwrap();
        } else {
            writeln!(w, "{line}").unwrap();
        }
    }
}
