//! `zmtp-compare`: runs the same workloads on libzmq, on zmtp and on the
//! Rust ZeroMQ stacks, interleaved run by run (A B C A B C …), and writes
//! the tables into `BENCHMARKS.md` (between its generated-section markers)
//! and the charts into `docs/bench/`.
//!
//! `bench/run` builds everything and runs it; by hand:
//!
//! ```text
//! cargo build --release -p zmtp-cli -p zmtp-bench
//! cargo build --release --manifest-path bench/peers/Cargo.toml
//! target/release/zmtp-compare [--runs N] [--quick] [--no-write]
//! ```
//!
//! Every measurement is a fresh process with two contexts (one per side),
//! each with one I/O thread (libzmq, zmtp) or one runtime worker (the tokio
//! stacks): libzmq through `zmtp-compare --libzmq …`, zmtp through `zmtp
//! bench --json`, the others through `bench/peers` (`rust-peers`).

mod libzmq;
#[path = "../../zmtp-cli/src/pin.rs"]
mod pin;
#[path = "../../zmtp-cli/src/probe.rs"]
mod probe;
mod svg;
#[path = "../../zmtp-cli/src/tally.rs"]
mod tally;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use svg::human;

/// The implementations, in column order.
const IMPLS: [(&str, &str); 5] = [
    ("libzmq", "libzmq"),
    ("zmtp", "zmtp"),
    ("zeromq", "zmq.rs"),
    ("rzmq", "rzmq"),
    ("omq", "OMQ"),
];

type Fields = BTreeMap<String, f64>;

/// Parses the flat `{"key": number, …}` line the drivers print.
fn parse(line: &str) -> Fields {
    let mut f = Fields::new();
    for part in line.trim().trim_matches(['{', '}']).split(", \"") {
        if let Some((k, v)) = part.split_once("\": ")
            && let Ok(v) = v.trim().parse::<f64>()
        {
            f.insert(k.trim_matches('"').to_owned(), v);
        }
    }
    f
}

#[derive(Clone, Debug)]
struct Work {
    pattern: &'static str,
    mechanism: &'static str,
    transport: &'static str,
    size: usize,
    count: u64,
    subscribers: usize,
}

impl Work {
    /// A NULL workload of 16-byte messages over tcp.
    fn tcp16(pattern: &'static str, count: u64, subscribers: usize) -> Work {
        Work {
            pattern,
            mechanism: "null",
            transport: "tcp",
            size: 16,
            count,
            subscribers,
        }
    }
}

struct Tools {
    zmtp: String,
    peers: Option<String>,
    me: String,
}

/// Why a measurement has no figures.
#[derive(Debug, PartialEq)]
enum Miss {
    /// The stack lacks the mechanism or transport.
    Unsupported,
    /// The run crashed, hung, or lost messages.
    Failed,
}

/// Runs one measurement in a fresh process.
fn measure(t: &Tools, imp: &str, w: &Work) -> Result<Fields, Miss> {
    // libzmq has no NOISE: its CURVE is the reference for NOISE rows.
    let mech = if imp == "libzmq" && w.mechanism.starts_with("noise") {
        "curve"
    } else {
        w.mechanism
    };
    let common = [
        w.pattern.to_owned(),
        mech.to_owned(),
        w.transport.to_owned(),
        w.size.to_string(),
        w.count.to_string(),
        w.subscribers.to_string(),
    ];
    let mut cmd = match imp {
        // `-io2`: two I/O threads per context.
        // `-together`, `-apart`: the busy threads pinned (see `pin.rs`).
        "libzmq" | "libzmq-io2" | "libzmq-together" | "libzmq-apart" => {
            let mut c = Command::new(&t.me);
            // The idle-remote peers are zmtp's, for both servers.
            c.env("ZMTP_BIN", &t.zmtp).arg("--libzmq").args(&common);
            match imp {
                "libzmq-io2" => c.arg("2"),
                "libzmq-together" => c.args(["1", "together"]),
                "libzmq-apart" => c.args(["1", "apart"]),
                _ => &mut c,
            };
            c
        }
        // zmtp with each body from a static buffer (`--payload static`),
        // with busy polling off, with two I/O threads per context.
        // zmtp with batch calls of 64 messages.
        "zmtp" | "zmtp-static" | "zmtp-nopoll" | "zmtp-io2" | "zmtp-batch" | "zmtp-together"
        | "zmtp-apart" => {
            let mut c = Command::new(&t.zmtp);
            c.arg("bench");
            match imp {
                "zmtp-together" => c.args(["--pin", "together"]),
                "zmtp-apart" => c.args(["--pin", "apart"]),
                "zmtp-static" => c.args(["--payload", "static"]),
                "zmtp-nopoll" => c.args(["--busy-poll-us", "0"]),
                "zmtp-io2" => c.args(["--io-threads", "2"]),
                "zmtp-batch" => c.args(["--batch", &BATCH.to_string()]),
                _ => &mut c,
            };
            c.args(["--json", "--pattern", w.pattern, "--mechanism", mech])
                .args(["--transport", w.transport, "--size", &common[3]])
                .args(["--count", &common[4], "--subscribers", &common[5]]);
            c
        }
        peer => {
            let mut c = Command::new(t.peers.as_ref().ok_or(Miss::Unsupported)?);
            c.arg(peer).args(&common);
            c
        }
    };
    // What the run says on its standard error (and its child processes')
    // is shown when it fails.
    let err_path = std::env::temp_dir().join(format!("zmtp-compare-{}.stderr", std::process::id()));
    let err_file = std::fs::File::create(&err_path).map_err(|_| Miss::Failed)?;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(err_file)
        .spawn()
        .map_err(|_| Miss::Failed);
    let r = child.and_then(|c| finish(c, imp, w));
    if r == Err(Miss::Failed)
        && let Ok(text) = std::fs::read_to_string(&err_path)
    {
        let lines: Vec<&str> = text.lines().collect();
        for l in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("    | {l}");
        }
    }
    let _ = std::fs::remove_file(&err_path);
    r
}

/// Waits for a measurement's process and reads its figures.
fn finish(mut child: std::process::Child, imp: &str, w: &Work) -> Result<Fields, Miss> {
    // 10,000 CURVE connections at once take longer than a throughput run.
    let limit = if w.pattern == "idle-remote" { 300 } else { 60 };
    let deadline = Instant::now() + Duration::from_secs(limit);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("  {imp} {w:?}: no result within {limit} s");
                return Err(Miss::Failed);
            }
        }
    }
    let out = child.wait_with_output().map_err(|_| Miss::Failed)?;
    let line = String::from_utf8_lossy(&out.stdout);
    if line.contains("unsupported") {
        return Err(Miss::Unsupported);
    }
    if !out.status.success() {
        eprintln!("  {imp} {w:?}: failed ({})", out.status);
        return Err(Miss::Failed);
    }
    let mut f = parse(&line);
    // Memory growth from before the sockets, for comparisons.
    if let Some(base) = f.get("base_rss_kib").copied() {
        for (from, to) in [
            ("rss_kib", "rss_growth_kib"),
            ("peak_rss_kib", "peak_growth_kib"),
        ] {
            if let Some(v) = f.get(from).copied() {
                f.insert(to.to_owned(), v - base);
            }
        }
    }
    // Throughput from a run that lost messages is no throughput.
    let expected = match w.pattern {
        "push-pull" | "dealer-router" | "proxy" | "round-robin" => Some(w.count as f64),
        "fan-in" | "trickle" | "trickle-alone" => {
            Some((w.count / w.subscribers.max(1) as u64 * w.subscribers.max(1) as u64) as f64)
        }
        "pub-sub" => Some((w.count * w.subscribers as u64) as f64),
        "handshake" | "idle" | "idle-remote" => Some(w.count as f64),
        _ => None,
    };
    if let (Some(e), Some(got)) = (expected, f.get("received"))
        && *got < e
    {
        eprintln!("  {imp} {w:?}: {got} of {e} arrived");
        return Err(Miss::Failed);
    }
    Ok(f)
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some((v[v.len() / 2], v[0], v[v.len() - 1]))
}

/// Every run of one workload: per implementation, the fields of each run.
/// A stack whose run failed has a single entry with `failed` set.
type Results = BTreeMap<&'static str, Vec<Fields>>;

fn run_interleaved(t: &Tools, w: &Work, imps: &[&'static str], runs: usize) -> Results {
    let label = format!(
        "{} {} {} {} B ×{}",
        w.pattern, w.mechanism, w.transport, w.size, w.subscribers
    );
    interleave(&label, imps, runs, |imp| measure(t, imp, w))
}

/// `runs` rounds of `run` over every key in turn (an implementation, or a
/// mechanism of ours), so that the machine's drift falls on all keys alike.
fn interleave(
    label: &str,
    keys: &[&'static str],
    runs: usize,
    run: impl Fn(&'static str) -> Result<Fields, Miss>,
) -> Results {
    let mut r = Results::new();
    let mut skip = Vec::new();
    for _ in 0..runs {
        for key in keys {
            if skip.contains(key) {
                continue;
            }
            match run(key) {
                Ok(f) => r.entry(*key).or_default().push(f),
                Err(miss) => {
                    // One failure is the key's result for this workload.
                    skip.push(*key);
                    if miss == Miss::Failed {
                        let failed = Fields::from([("failed".to_owned(), 1.0)]);
                        r.insert(*key, vec![failed]);
                    }
                }
            }
        }
    }
    eprintln!(
        "{label}: {}",
        keys.iter()
            .map(|k| format!("{k}={}", r.get(k).map_or(0, Vec::len)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    r
}

fn failed(r: &Results, imp: &str) -> bool {
    r.get(imp)
        .is_some_and(|v| v.iter().any(|f| f.contains_key("failed")))
}

fn field(r: &Results, imp: &str, key: &str) -> Option<(f64, f64, f64)> {
    stats(
        r.get(imp)?
            .iter()
            .filter_map(|f| f.get(key).copied())
            .collect(),
    )
}

fn size_name(s: usize) -> String {
    match s {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1024 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// A cell: median (min–max), and the ratio to `base` when given.
fn cell(s: Option<(f64, f64, f64)>, base: Option<f64>) -> String {
    match s {
        None => "–".to_owned(),
        Some((m, lo, hi)) => {
            let mut c = format!("{} ({}–{})", human(m), human(lo), human(hi));
            if let Some(b) = base.filter(|b| *b > 0.0) {
                let _ = write!(c, " **{:.2}×**", m / b);
            }
            c
        }
    }
}

/// The cell of one implementation: "failed" when its run failed.
fn cell_of(r: &Results, imp: &str, key: &str, base: Option<f64>) -> String {
    if failed(r, imp) {
        return "failed".to_owned();
    }
    cell(field(r, imp, key), base)
}

/// One empty chart series per implementation.
fn impl_series() -> Vec<(String, Vec<Option<f64>>)> {
    IMPLS.iter().map(|i| (i.1.to_owned(), Vec::new())).collect()
}

struct Report {
    md: String,
    charts: Vec<(String, String)>,
    targets: Vec<(String, String, bool)>,
}

impl Report {
    /// Embeds the chart `docs/bench/{file}` after the section's table,
    /// with `alt` as its text, and keeps it for writing.
    fn chart(&mut self, file: &str, alt: &str, chart: svg::Chart) {
        let _ = writeln!(self.md, "\n![{alt}](docs/bench/{file})");
        self.charts.push((file.to_owned(), chart.render()));
    }

    /// A bar chart with one bar per stack in `imps` for each `(category,
    /// results, figure)`, embedded after the section's table as
    /// `docs/bench/{file}`.
    fn stacks_chart(
        &mut self,
        file: &str,
        title: &str,
        y_label: &str,
        imps: &[&str],
        cats: &[(&str, &Results, &str)],
    ) {
        let series = imps
            .iter()
            .map(|imp| {
                let v = cats
                    .iter()
                    .map(|(_, r, key)| field(r, imp, key).map(|s| s.0));
                ((*imp).to_owned(), v.collect())
            })
            .collect();
        self.chart(
            file,
            title,
            svg::Chart {
                title: title.to_owned(),
                y_label: y_label.to_owned(),
                categories: cats.iter().map(|(c, _, _)| (*c).to_owned()).collect(),
                series,
            },
        );
    }

    /// One table row per `(label, figure)`: `first` cells (if any), the
    /// label, then each of `imps`, the first plain and the rest with their
    /// ratio to it.
    fn rows(&mut self, r: &Results, first: &[&str], rows: &[(&str, &str)], imps: &[&str]) {
        for (label, key) in rows {
            let base = imps.first().and_then(|b| field(r, b, key)).map(|s| s.0);
            let cells: Vec<String> = imps
                .iter()
                .enumerate()
                .map(|(i, imp)| cell_of(r, imp, key, if i == 0 { None } else { base }))
                .collect();
            let mut lead: Vec<&str> = first.to_vec();
            lead.push(label);
            let _ = writeln!(self.md, "| {} | {} |", lead.join(" | "), cells.join(" | "));
        }
    }

    fn header(&mut self, cols: &[&str]) {
        let _ = writeln!(self.md, "| {} |", cols.join(" | "));
        let _ = writeln!(self.md, "|{}", "---|".repeat(cols.len()));
    }

    /// A table header: `first`, then one column per implementation.
    fn impl_header(&mut self, first: &str) {
        let mut cols = vec![first];
        cols.extend(IMPLS.iter().map(|i| i.1));
        self.header(&cols);
    }

    /// A target of `imp` against libzmq on `key`, higher is better.
    fn beats(&mut self, what: &str, r: &Results, imp: &str, key: &str, goal: f64) {
        self.target(what, ratio(r, imp, "libzmq", key), goal, true);
    }

    fn target(&mut self, what: &str, ratio: Option<f64>, goal: f64, higher_is_better: bool) {
        let (shown, ok) = match ratio {
            Some(r) => (
                format!("{r:.2}×"),
                if higher_is_better {
                    r >= goal
                } else {
                    r <= goal
                },
            ),
            None => ("not measured".to_owned(), false),
        };
        self.targets.push((what.to_owned(), shown, ok));
    }
}

fn ratio(r: &Results, a: &str, b: &str, key: &str) -> Option<f64> {
    Some(field(r, a, key)?.0 / field(r, b, key)?.0)
}

/// A throughput table by size for one mechanism and transport, plus its chart.
fn throughput_table(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    mech: &'static str,
    transport: &'static str,
    sizes: &[(usize, u64)],
) -> Vec<(usize, Results)> {
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let mut all = Vec::new();
    for &(size, count) in sizes {
        let w = Work {
            pattern: "push-pull",
            mechanism: mech,
            transport,
            size,
            count,
            subscribers: 1,
        };
        all.push((size, run_interleaved(t, &w, &imps, runs)));
    }
    let title = match mech {
        "null" => format!("PUSH/PULL NULL over {transport}"),
        "curve" => format!("PUSH/PULL CURVE over {transport}"),
        m => format!(
            "PUSH/PULL {} over {transport} (the libzmq column is libzmq CURVE)",
            m.to_uppercase()
        ),
    };
    let _ = writeln!(
        rep.md,
        "\n#### {title}\n\nmsg/s up to 256 B, MB/s from 4 KiB; median (min–max) of {runs} runs; **ratio** to libzmq in the same runs. –: the stack lacks the mechanism; failed: a run hung, crashed or lost messages (the stack's result for that row).\n"
    );
    rep.impl_header("size");
    let mut series = impl_series();
    for (size, r) in &all {
        let key = if *size >= 4096 {
            "mb_per_sec"
        } else {
            "msgs_per_sec"
        };
        let base = field(r, "libzmq", key).map(|s| s.0);
        let mut row = vec![size_name(*size)];
        for (i, (imp, _)) in IMPLS.iter().enumerate() {
            let s = field(r, imp, key);
            row.push(cell_of(r, imp, key, if i == 0 { None } else { base }));
            series[i]
                .1
                .push(s.and_then(|s| Some(s.0 / base.filter(|b| *b > 0.0)?)));
        }
        let _ = writeln!(rep.md, "| {} |", row.join(" | "));
    }
    let name = format!("throughput-{mech}-{transport}.svg");
    rep.chart(
        &name,
        &title,
        svg::Chart {
            title: format!("{title}: throughput relative to libzmq"),
            y_label: "× libzmq (same run)".into(),
            categories: all.iter().map(|(s, _)| size_name(*s)).collect(),
            series,
        },
    );
    all
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--libzmq") {
        let a = |i: usize| args.get(i).cloned().unwrap_or_default();
        let w = libzmq::Work {
            pattern: a(2),
            mechanism: a(3),
            transport: a(4),
            size: a(5).parse().unwrap_or(16),
            count: a(6).parse().unwrap_or(1000),
            subscribers: a(7).parse().unwrap_or(1),
            io_threads: a(8).parse().unwrap_or(1),
            pin: args
                .get(9)
                .map(|p| pin::Placement::parse(p).unwrap_or_else(|e| panic!("{e}"))),
        };
        let fields = libzmq::run(&w);
        println!(
            "{{\"impl\": \"libzmq\", \"pattern\": \"{}\", \"mechanism\": \"{}\", \"size\": {}, \"count\": {}, {fields}}}",
            w.pattern, w.mechanism, w.size, w.count
        );
        std::process::exit(0);
    }
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--help") || flag("-h") {
        println!(
            "zmtp-compare: libzmq, zmtp and the Rust stacks side by side (run through bench/run)\n\n\
             --runs N    runs per cell (default 3)\n\
             --quick     small counts, one run: a smoke test of the pipeline\n\
             --no-write  print the section instead of rewriting BENCHMARKS.md"
        );
        return;
    }
    let quick = flag("--quick");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let root = std::env::var("ZMTP_ROOT").unwrap_or_else(|_| ".".into());
    let peers = std::env::var("ZMTP_RUST_PEERS")
        .unwrap_or_else(|_| format!("{root}/bench/peers/target/release/rust-peers"));
    let t = Tools {
        zmtp: std::env::var("ZMTP_BIN").unwrap_or_else(|_| format!("{root}/target/release/zmtp")),
        peers: std::path::Path::new(&peers).exists().then_some(peers),
        me: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| args[0].clone()),
    };
    if t.peers.is_none() {
        eprintln!("rust-peers not built: the Rust stacks' columns stay empty");
    }
    // Scale counts down for --quick (a smoke run of the whole pipeline).
    let n = |c: u64| if quick { (c / 20).max(50) } else { c };
    let started = Instant::now();
    let mut rep = Report {
        md: String::new(),
        charts: Vec::new(),
        targets: Vec::new(),
    };
    machine(&mut rep, runs);

    let sizes = |curve: bool| {
        vec![
            (16usize, n(if curve { 500_000 } else { 2_000_000 })),
            (256, n(if curve { 300_000 } else { 1_000_000 })),
            (4096, n(200_000)),
            (65536, n(20_000)),
            (1 << 20, n(if curve { 500 } else { 2_000 })),
        ]
    };
    let _ = writeln!(rep.md, "\n### Throughput");
    let null_tcp = throughput_table(&t, &mut rep, runs, "null", "tcp", &sizes(false));
    let null_ipc = throughput_table(&t, &mut rep, runs, "null", "ipc", &sizes(false));
    let curve = throughput_table(&t, &mut rep, runs, "curve", "tcp", &sizes(true));
    // NOISE runs NULL's counts: its targets compare it with NULL, and at
    // NULL's speed CURVE's 500k messages last 70 ms, where runs scatter more.
    let noise = throughput_table(&t, &mut rep, runs, "noise-xx", "tcp", &sizes(false));

    let at = |all: &Vec<(usize, Results)>, size: usize| {
        all.iter()
            .find(|(s, _)| *s == size)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    let (n16, n4k, n1m) = (
        at(&null_tcp, 16),
        at(&null_tcp, 4096),
        at(&null_tcp, 1 << 20),
    );
    let (c16, c64k) = (at(&curve, 16), at(&curve, 65536));
    let (x16, x64k) = (at(&noise, 16), at(&noise, 65536));
    rep.beats("NULL 16 B ≥ 1.2× libzmq", &n16, "zmtp", "msgs_per_sec", 1.2);
    rep.beats("NULL 4 KiB ≥ 3.5× libzmq", &n4k, "zmtp", "mb_per_sec", 3.5);
    rep.beats("NULL 1 MiB ≥ 1.5× libzmq", &n1m, "zmtp", "mb_per_sec", 1.5);
    rep.beats(
        "CURVE 16 B ≥ 1.0× libzmq CURVE",
        &c16,
        "zmtp",
        "msgs_per_sec",
        1.0,
    );
    // CURVE at 64 KiB is cipher-bound: its target is a share of the
    // single-core seal rate of the implementation, measured here too.
    let seal = run_interleaved(
        &t,
        &Work {
            pattern: "seal",
            mechanism: "curve",
            transport: "tcp",
            size: 65536,
            count: n(20_000),
            subscribers: 1,
        },
        &["zmtp"],
        runs,
    );
    let seal_rate = field(&seal, "zmtp", "mb_per_sec").map(|s| s.0);
    let over_seal = field(&c64k, "zmtp", "mb_per_sec")
        .zip(seal_rate)
        .map(|(a, b)| a.0 / b);
    rep.target(
        &format!(
            "CURVE 64 KiB ≥ 0.9× the single-core seal rate ({} MB/s, `salsabox`; {:.2}× libzmq CURVE)",
            seal_rate.map_or("?".into(), |r| format!("{r:.0}")),
            ratio(&c64k, "zmtp", "libzmq", "mb_per_sec").unwrap_or(0.0)
        ),
        over_seal,
        0.9,
        true,
    );
    rep.beats(
        "NOISE-XX 16 B ≥ 3× libzmq CURVE",
        &x16,
        "zmtp",
        "msgs_per_sec",
        3.0,
    );
    rep.beats(
        "NOISE-XX 64 KiB ≥ 2× libzmq CURVE",
        &x64k,
        "zmtp",
        "mb_per_sec",
        2.0,
    );

    send_cpu(&mut rep, &n16, &c16, &x16);
    mechanisms_interleaved(&t, &mut rep, runs, &n);
    let subs = pub_sub(&t, &mut rep, runs, &n);
    for (n_subs, r) in &subs {
        if *n_subs > 1 {
            rep.beats(
                &format!("PUB → {n_subs} SUB 16 B ≥ 1.5× libzmq"),
                r,
                "zmtp",
                "msgs_per_sec",
                1.5,
            );
        }
    }
    let rr = latency(&t, &mut rep, runs, &n);
    rep.target(
        "REQ/REP 16 B p50 round trip ≤ 1.0× libzmq's",
        ratio(&rr[0].1, "zmtp", "libzmq", "p50_us"),
        1.0,
        false,
    );
    let (dr, echo) = dealer_router(&t, &mut rep, runs, &n);
    rep.beats(
        "DEALER→ROUTER 16 B ≥ 1.2× libzmq",
        &dr,
        "zmtp",
        "msgs_per_sec",
        1.2,
    );
    rep.target(
        "DEALER→ROUTER→DEALER 16 B p50 round trip ≤ 1.0× libzmq's",
        ratio(&echo, "zmtp", "libzmq", "p50_us"),
        1.0,
        false,
    );
    let (in16, in64k) = inproc(&t, &mut rep, runs, &n);
    rep.beats(
        "inproc 16 B ≥ 1.5× libzmq's inproc (static bodies)",
        &in16,
        "zmtp-static",
        "msgs_per_sec",
        1.5,
    );
    rep.beats(
        "inproc 16 B ≥ 1.5× libzmq's inproc (one shared Bytes cloned)",
        &in16,
        "zmtp",
        "msgs_per_sec",
        1.5,
    );
    // A pointer hand-over: 64 KiB goes as fast as 16 B.
    rep.target(
        "inproc 64 KiB msg/s ≥ 0.8× inproc 16 B msg/s (shared Bytes)",
        field(&in64k, "zmtp", "msgs_per_sec")
            .zip(field(&in16, "zmtp", "msgs_per_sec"))
            .map(|(a, b)| a.0 / b.0),
        0.8,
        true,
    );
    let px = proxies(&t, &mut rep, runs, &n);
    rep.beats(
        "PUSH→proxy→PULL 16 B ≥ 1.2× libzmq's zmq_proxy",
        &px,
        "zmtp",
        "msgs_per_sec",
        1.2,
    );
    let (fan_in, deal) = fan_in_and_out(&t, &mut rep, runs, &n);
    rep.beats(
        "32 PUSH → 1 PULL 16 B ≥ 1.5× libzmq",
        &fan_in,
        "zmtp",
        "msgs_per_sec",
        1.5,
    );
    rep.beats(
        "1 PUSH → 8 PULL 16 B ≥ 1.5× libzmq",
        &deal,
        "zmtp",
        "msgs_per_sec",
        1.5,
    );
    let quiet = trickle(&t, &mut rep, runs, &n);
    rep.target(
        "1,000 quiet peers: REQ round trip p99 ≤ 1.0× libzmq's",
        ratio(&quiet, "zmtp", "libzmq", "p99_us"),
        1.0,
        false,
    );
    let polling = busy_polling(&t, &mut rep, runs, &n);
    rep.target(
        &format!(
            "NULL 16 B CPU per message (whole process, runs of {} messages) ≤ 0.6× libzmq's",
            count_label(n(CPU_RUN))
        ),
        ratio(&polling, "zmtp", "libzmq", "cpu_ns_per_msg"),
        0.6,
        false,
    );
    rep.target(
        "NULL 16 B CPU per message ≤ 0.6× libzmq's, busy polling off",
        ratio(&polling, "zmtp-nopoll", "libzmq", "cpu_ns_per_msg"),
        0.6,
        false,
    );
    let placed = placement(&t, &mut rep, runs, &n);
    for p in ["together", "apart"] {
        rep.target(
            &format!("NULL 16 B CPU per message ≤ 0.6× libzmq's, threads pinned {p}"),
            ratio(
                &placed,
                &format!("zmtp-{p}"),
                &format!("libzmq-{p}"),
                "cpu_ns_per_msg",
            ),
            0.6,
            false,
        );
    }
    let (batch_pp, batch_dr) = batch_calls(&t, &mut rep, runs, &n);
    rep.target(
        &format!("NULL 16 B CPU per message ≤ 0.6× libzmq's, batch calls of {BATCH}"),
        ratio(&batch_pp, "zmtp-batch", "libzmq", "cpu_ns_per_msg"),
        0.6,
        false,
    );
    rep.beats(
        &format!("DEALER→ROUTER 16 B ≥ 1.2× libzmq, batch calls of {BATCH}"),
        &batch_dr,
        "zmtp-batch",
        "msgs_per_sec",
        1.2,
    );
    let _ = io_threads(&t, &mut rep, runs, &n);
    let hs = handshakes(&t, &mut rep, runs, quick);
    let mem = memory(&t, &mut rep, runs, quick);
    let _ = many_idle(&t, &mut rep, runs, quick);

    // Ahead of every Rust peer, workload by workload, from the tables above:
    // (what, results, figure, whether higher is better).
    let mut workloads: Vec<(String, &Results, &str, bool)> = Vec::new();
    for (label, all) in [
        ("NULL tcp", &null_tcp),
        ("NULL ipc", &null_ipc),
        ("CURVE", &curve),
        ("NOISE-XX", &noise),
    ] {
        for (size, r) in all {
            let key = if *size >= 4096 {
                "mb_per_sec"
            } else {
                "msgs_per_sec"
            };
            workloads.push((format!("{label} {}", size_name(*size)), r, key, true));
        }
    }
    for (n_subs, r) in &subs {
        workloads.push((format!("PUB/SUB ×{n_subs}"), r, "msgs_per_sec", true));
    }
    for (size, r) in &rr {
        for key in ["p50_us", "p99_us"] {
            let what = format!("REQ/REP {} {}", size_name(*size), &key[..3]);
            workloads.push((what, r, key, false));
        }
    }
    workloads.push(("DEALER→ROUTER 16 B".into(), &dr, "msgs_per_sec", true));
    for key in ["p50_us", "p99_us"] {
        let what = format!("ROUTER round trip 16 B {}", &key[..3]);
        workloads.push((what, &echo, key, false));
    }
    for (mech, r) in &hs {
        let what = format!("{} handshakes", mech.to_uppercase());
        workloads.push((what, r, "handshakes_per_sec", true));
    }
    for (what, r, key) in &mem {
        workloads.push((what.to_string(), r, key, false));
    }
    let mut behind = Vec::new();
    for (what, r, key, higher) in &workloads {
        let Some((ours, _, _)) = field(r, "zmtp", key) else {
            continue;
        };
        for (imp, name) in &IMPLS[2..] {
            if let Some((theirs, _, _)) = field(r, imp, key)
                && ((*higher && theirs > ours) || (!*higher && theirs < ours))
            {
                behind.push(format!("{name} at {what}"));
            }
        }
    }
    rep.targets.push((
        format!(
            "Ahead of every Rust peer on each workload it supports ({} workloads)",
            workloads.len()
        ),
        if behind.is_empty() {
            "yes".into()
        } else {
            format!("behind {}", behind.join(", "))
        },
        behind.is_empty(),
    ));

    let mut out = String::new();
    let _ = writeln!(out, "\n### Targets\n");
    let _ = writeln!(out, "| target | measured | met |\n|---|---|---|");
    for (what, shown, ok) in &rep.targets {
        let _ = writeln!(
            out,
            "| {what} | {shown} | {} |",
            if *ok { "yes" } else { "**no**" }
        );
    }
    let body = format!(
        "{}{out}{}\n_Generated by `bench/run` in {:.0} s._\n",
        rep.md.split("\n### Throughput").next().unwrap_or(""),
        rep.md.find("\n### Throughput").map_or("", |i| &rep.md[i..]),
        started.elapsed().as_secs_f64()
    );
    if flag("--no-write") {
        print!("{body}");
        return;
    }
    write_outputs(&root, &body, &rep.charts);
}

/// Replaces the generated section of BENCHMARKS.md and writes the charts.
fn write_outputs(root: &str, body: &str, charts: &[(String, String)]) {
    const BEGIN: &str = "<!-- BEGIN GENERATED: bench/run rewrites this section -->";
    const END: &str = "<!-- END GENERATED -->";
    let path = format!("{root}/BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{body}\n{}", &old[..b], &old[e..])
        }
        _ => format!("# Benchmarks\n\n{BEGIN}\n{body}\n{END}\n"),
    };
    std::fs::write(&path, new).expect("write BENCHMARKS.md");
    let dir = format!("{root}/docs/bench");
    std::fs::create_dir_all(&dir).expect("docs/bench");
    for (name, svg) in charts {
        std::fs::write(format!("{dir}/{name}"), svg).expect("write chart");
    }
    eprintln!("wrote {path} and {} charts in {dir}", charts.len());
}

fn machine(rep: &mut Report, runs: usize) {
    let cmd = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let lscpu = cmd("lscpu", &[]);
    let pick = |k: &str| {
        lscpu
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (a, b, c) = zmq::version();
    let lock = std::fs::read_to_string("bench/peers/Cargo.lock").unwrap_or_default();
    let version = |name: &str| {
        lock.split("[[package]]")
            .find(|p| p.contains(&format!("name = \"{name}\"\n")))
            .and_then(|p| p.lines().find(|l| l.starts_with("version")))
            .map(|l| {
                l.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap_or_else(|| "?".into())
    };
    let _ = writeln!(
        rep.md,
        "Machine: {} × {} ({} threads per core), {}; {}.\n",
        pick("CPU(s)"),
        pick("Model name"),
        pick("Thread(s) per core"),
        cmd("uname", &["-sr"]),
        cmd("rustc", &["--version"])
    );
    let _ = writeln!(
        rep.md,
        "Versions: libzmq {a}.{b}.{c} (Debian, through the `zmq` crate), zmtp {}, zmq.rs (`zeromq`) {}, rzmq {}, OMQ (`omq-tokio`) {}.\n",
        env!("CARGO_PKG_VERSION"),
        version("zeromq"),
        version("rzmq"),
        version("omq-tokio")
    );
    let _ = writeln!(
        rep.md,
        "Method: every figure is from a fresh process holding both ends, each end with its own context and one I/O thread (one tokio worker for the tokio stacks), over loopback. Implementations are interleaved run by run (libzmq, zmtp, zmq.rs, rzmq, OMQ, libzmq, …), {runs} runs each; cells show the median (min–max) and, in bold, the ratio of medians to libzmq's in the same runs. Throughput is timed at the receiver from the first message to the last."
    );
}

fn send_cpu(rep: &mut Report, n16: &Results, c16: &Results, x16: &Results) {
    let _ = writeln!(
        rep.md,
        "\n### The application thread's CPU per `send`\n\nCPU time of the sending thread (from `/proc/thread-self/schedstat`) divided by the messages sent, PUSH/PULL 16 B over tcp, from the throughput runs above. The seed's first lesson: encryption belongs in the I/O thread, so CURVE and NOISE should cost the application what NULL does. The rows were measured minutes apart; the targets compare our mechanisms in the interleaved runs of the next table.\n"
    );
    rep.impl_header("mechanism");
    let key = "send_cpu_ns_per_msg";
    for (name, r) in [
        ("NULL", n16),
        ("CURVE", c16),
        ("NOISE-XX (libzmq: CURVE)", x16),
    ] {
        let row: Vec<String> = IMPLS
            .iter()
            .map(|(imp, _)| field(r, imp, key).map_or("–".into(), |s| format!("{:.0} ns", s.0)))
            .collect();
        let _ = writeln!(rep.md, "| {name} | {} |", row.join(" | "));
    }
    let _ = writeln!(
        rep.md,
        "\nThe whole process's CPU per message (every thread of both ends, user and system, from the process's CPU clock, `CLOCK_PROCESS_CPUTIME_ID`, divided by the messages received), the same runs: the work each stack does per message, which on this shared machine is steadier than msg/s.\n"
    );
    rep.impl_header("mechanism");
    for (name, r) in [
        ("NULL", n16),
        ("CURVE", c16),
        ("NOISE-XX (libzmq: CURVE)", x16),
    ] {
        let base = field(r, "libzmq", "cpu_ns_per_msg").map(|s| s.0);
        let row: Vec<String> = IMPLS
            .iter()
            .enumerate()
            .map(|(i, (imp, _))| {
                field(r, imp, "cpu_ns_per_msg").map_or("–".into(), |s| match base {
                    Some(b) if i > 0 && b > 0.0 => format!("{:.0} ns **{:.2}×**", s.0, s.0 / b),
                    _ => format!("{:.0} ns", s.0),
                })
            })
            .collect();
        let _ = writeln!(rep.md, "| {name} | {} |", row.join(" | "));
    }
}

/// Our mechanisms at 16 B, interleaved run by run (NULL, CURVE, NOISE-XX,
/// NULL, …), for the targets that compare them with one another: rows of
/// the throughput tables are minutes apart, and this machine drifts by up
/// to 30 % in minutes. At least five runs of each, every one with the
/// threads pinned together (see [`placement`]): unpinned, a run's
/// placement moved its figure by up to three times, more than the
/// mechanisms differ.
fn mechanisms_interleaved(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) {
    const MECHS: [(&str, &str); 3] = [
        ("null", "NULL"),
        ("curve", "CURVE"),
        ("noise-xx", "NOISE-XX"),
    ];
    let runs = runs.max(5);
    let mechs: Vec<&'static str> = MECHS.iter().map(|m| m.0).collect();
    // A failed run leaves its cells empty and its targets unmet.
    let r = interleave("mechanisms interleaved", &mechs, runs, |mech| {
        let w = Work {
            pattern: "push-pull",
            mechanism: mech,
            transport: "tcp",
            size: 16,
            count: n(2_000_000),
            subscribers: 1,
        };
        measure(t, "zmtp-together", &w)
    });
    let _ = writeln!(
        rep.md,
        "\n### zmtp's mechanisms side by side\n\nPUSH/PULL 16 B over tcp, {} messages, our NULL, CURVE and NOISE-XX interleaved run by run, {runs} runs each, the threads pinned together (`zmtp bench --pin together`: see \"Where the threads run\"; unpinned, where the scheduler put them moved a run by up to three times); median (min–max) and, in bold, the ratio of medians to NULL's.\n",
        human(n(2_000_000) as f64)
    );
    rep.header(&["mechanism", "msg/s", "send CPU (ns per message)"]);
    let null = |key| field(&r, "null", key).map(|s| s.0);
    for (mech, name) in MECHS {
        let _ = writeln!(
            rep.md,
            "| {name} | {} | {} |",
            cell(field(&r, mech, "msgs_per_sec"), null("msgs_per_sec")),
            cell(
                field(&r, mech, "send_cpu_ns_per_msg"),
                null("send_cpu_ns_per_msg")
            )
        );
    }
    let over_null = |mech, key| Some(field(&r, mech, key)?.0 / null(key)?);
    rep.target(
        "NOISE-XX 16 B ≥ 0.7× our NULL (interleaved)",
        over_null("noise-xx", "msgs_per_sec"),
        0.7,
        true,
    );
    rep.target(
        "Send CPU, CURVE within 10 % of NULL (interleaved)",
        over_null("curve", "send_cpu_ns_per_msg"),
        1.1,
        false,
    );
    rep.target(
        "Send CPU, NOISE-XX within 10 % of NULL (interleaved)",
        over_null("noise-xx", "send_cpu_ns_per_msg"),
        1.1,
        false,
    );
}

fn pub_sub(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    n: &dyn Fn(u64) -> u64,
) -> Vec<(usize, Results)> {
    let mut all = Vec::new();
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let _ = writeln!(
        rep.md,
        "\n### PUB/SUB\n\nOne publisher, 1, 8 or 64 subscribers (a thread each) on the other context, 16 B over tcp, every subscriber subscribed to everything, unlimited high-water marks where the stack has them. Deliveries per second summed over subscribers; \"failed\": some subscriber missed messages (the stack dropped them, or hung).\n"
    );
    rep.impl_header("subscribers");
    let mut cats = Vec::new();
    let mut series = impl_series();
    for subs in [1usize, 8, 64] {
        let w = Work {
            pattern: "pub-sub",
            mechanism: "null",
            transport: "tcp",
            size: 16,
            count: n(match subs {
                1 => 1_000_000,
                8 => 300_000,
                _ => 50_000,
            }),
            subscribers: subs,
        };
        let r = run_interleaved(t, &w, &imps, runs);
        let base = field(&r, "libzmq", "msgs_per_sec").map(|s| s.0);
        let row: Vec<String> = IMPLS
            .iter()
            .enumerate()
            .map(|(i, (imp, _))| cell_of(&r, imp, "msgs_per_sec", if i == 0 { None } else { base }))
            .collect();
        let _ = writeln!(rep.md, "| {subs} | {} |", row.join(" | "));
        for (i, (imp, _)) in IMPLS.iter().enumerate() {
            series[i]
                .1
                .push(field(&r, imp, "msgs_per_sec").map(|s| s.0));
        }
        cats.push(format!("×{subs}"));
        all.push((subs, r));
    }
    rep.chart(
        "pub-sub.svg",
        "PUB/SUB",
        svg::Chart {
            title: "PUB/SUB over tcp, deliveries per second".into(),
            y_label: "msg/s".into(),
            categories: cats,
            series,
        },
    );
    all
}

/// 1,000 peers each sending a trickle into one PULL, and one REQ's round
/// trips under that load.
fn trickle(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> Results {
    let imps = ["libzmq", "zmtp"];
    let peers = if n(1000) < 1000 { 100 } else { 1000 };
    let _ = writeln!(
        rep.md,
        "\n### Many quiet peers\n\n{peers} PUSH sockets (driven by four threads) each send 50 messages of 16 B a second into one PULL over tcp, NULL, while one REQ on the same context makes round trips to a REP beside the PULL, as fast as it can. The PULL's msg/s (set by the senders' pace), the whole process's CPU per message received (the round trips' included: they take whatever CPU is left), and the round trip's p50 and p99 under that load; then the same trickle alone, without the round trips, whose CPU per message is the work each trickled message costs; median (min–max) of the runs, ratio to libzmq's in the same runs.\n"
    );
    rep.header(&["figure", "libzmq", "zmtp"]);
    let w = Work::tcp16("trickle", n(100_000), peers);
    let r = run_interleaved(t, &w, &imps, runs);
    let rows = [
        ("msg/s", "msgs_per_sec"),
        ("CPU ns per message", "cpu_ns_per_msg"),
        ("round trips", "round_trips"),
        ("round trip p50 µs", "p50_us"),
        ("round trip p99 µs", "p99_us"),
    ];
    rep.rows(&r, &[], &rows, &imps);
    let alone = run_interleaved(
        t,
        &Work::tcp16("trickle-alone", n(100_000), peers),
        &imps,
        runs,
    );
    let rows = [
        ("msg/s, trickle alone", "msgs_per_sec"),
        ("CPU ns per message, trickle alone", "cpu_ns_per_msg"),
    ];
    rep.rows(&alone, &[], &rows, &imps);
    rep.stacks_chart(
        "quiet-peers.svg",
        &format!("REQ round trip beside {peers} quiet peers (lower is better)"),
        "µs",
        &imps,
        &[("p50", &r, "p50_us"), ("p99", &r, "p99_us")],
    );
    r
}

/// Messages per run of the unpinned CPU-per-message rows (busy polling
/// and batch calls). A run of 2M messages lasts about 0.15 s, and where
/// the scheduler first puts the four threads weighs on it: zmtp's
/// unpinned runs of 2M took 101-148 ns per message, of 15M 100-107 in 5
/// of 6 (interleaved with libzmq, whose runs moved less; see
/// BENCHMARKS.md).
const CPU_RUN: u64 = 15_000_000;

/// A count of messages as the tables write it: `15M`, `750k`.
fn count_label(count: u64) -> String {
    if count.is_multiple_of(1_000_000) {
        format!("{}M", count / 1_000_000)
    } else {
        format!("{}k", count / 1_000)
    }
}

/// Busy polling on and off: PUSH/PULL 16 B over tcp, msg/s and the whole
/// process's CPU per message, libzmq (which has no busy polling) beside
/// zmtp with its default and with `--busy-poll-us 0`, over runs of
/// [`CPU_RUN`] messages.
fn busy_polling(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> Results {
    let imps = ["libzmq", "zmtp", "zmtp-nopoll"];
    let _ = writeln!(
        rep.md,
        "\n### Busy polling\n\nPUSH/PULL 16 B over tcp, NULL, runs of {} messages (in shorter runs, where the scheduler first puts the four threads weighs on the CPU per message): zmtp's I/O threads poll for up to 50 µs before they sleep (`ContextBuilder::busy_poll`); off, they sleep at once. msg/s and the whole process's CPU per message, median (min–max) of the runs, ratio to libzmq's in the same runs. These runs give the CPU-per-message targets that leave the threads unpinned.\n",
        count_label(n(CPU_RUN))
    );
    rep.header(&["figure", "libzmq", "zmtp", "zmtp, busy polling off"]);
    let w = Work::tcp16("push-pull", n(CPU_RUN), 1);
    let r = run_interleaved(t, &w, &imps, runs);
    let rows = [
        ("msg/s", "msgs_per_sec"),
        ("CPU ns per message", "cpu_ns_per_msg"),
    ];
    rep.rows(&r, &[], &rows, &imps);
    rep.stacks_chart(
        "busy-polling.svg",
        "The process's CPU per 16 B message over tcp (lower is better)",
        "ns",
        &imps,
        &[("CPU per message", &r, "cpu_ns_per_msg")],
    );
    r
}

/// Where the threads run: PUSH/PULL 16 B over tcp with the four busy
/// threads pinned to two CPUs, each application thread with its own
/// side's I/O thread (together) or with the other side's (apart), libzmq
/// and zmtp placed the same way (see `zmtp-cli/src/pin.rs`).
fn placement(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> Results {
    let imps = [
        "libzmq-together",
        "zmtp-together",
        "libzmq-apart",
        "zmtp-apart",
    ];
    let _ = writeln!(
        rep.md,
        "\n### Where the threads run\n\nPUSH/PULL 16 B over tcp, NULL, the four busy threads (the sending and the receiving application thread, each side's I/O thread) pinned to two CPUs: each application thread on the CPU of its own side's I/O thread (together: only the kernel's socket buffer crosses between the CPUs), or on the other side's (apart: every hand-off between an application thread and its I/O thread crosses, as it does when each side has a machine of its own and both are busy). Unpinned, the scheduler picks one or the other run by run, which is most of the spread of the unpinned PUSH/PULL rows. `zmtp bench --pin together|apart`, and the same placement for libzmq (`zmtp-compare --libzmq push-pull null tcp 16 COUNT 1 1 together|apart`). msg/s and the whole process's CPU per message, median (min–max) of the runs, ratio to libzmq's in the same placement and runs.\n"
    );
    rep.header(&["placement", "figure", "libzmq", "zmtp"]);
    let w = Work::tcp16("push-pull", n(3_000_000), 1);
    let r = run_interleaved(t, &w, &imps, runs);
    for p in ["together", "apart"] {
        let (lz, zm) = (format!("libzmq-{p}"), format!("zmtp-{p}"));
        for (label, key) in [
            ("msg/s", "msgs_per_sec"),
            ("CPU ns per message", "cpu_ns_per_msg"),
        ] {
            let base = field(&r, &lz, key).map(|s| s.0);
            let _ = writeln!(
                rep.md,
                "| {p} | {label} | {} | {} |",
                cell_of(&r, &lz, key, None),
                cell_of(&r, &zm, key, base)
            );
        }
    }
    let series = ["libzmq", "zmtp"]
        .iter()
        .map(|stack| {
            let v = ["together", "apart"]
                .iter()
                .map(|p| field(&r, &format!("{stack}-{p}"), "cpu_ns_per_msg").map(|s| s.0));
            ((*stack).to_owned(), v.collect())
        })
        .collect();
    let (file, title) = (
        "placement.svg",
        "The process's CPU per 16 B message, threads pinned (lower is better)",
    );
    rep.chart(
        file,
        title,
        svg::Chart {
            title: title.to_owned(),
            y_label: "ns".to_owned(),
            categories: vec!["together".to_owned(), "apart".to_owned()],
            series,
        },
    );
    r
}

/// Messages per call in the batch rows.
const BATCH: usize = 64;

/// Batch calls: PUSH/PULL and DEALER→ROUTER 16 B over tcp, libzmq beside
/// zmtp with single calls and with `send_many`/`recv_many` of [`BATCH`],
/// over runs of [`CPU_RUN`] messages (their CPU per message is a target).
fn batch_calls(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    n: &dyn Fn(u64) -> u64,
) -> (Results, Results) {
    let imps = ["libzmq", "zmtp", "zmtp-batch"];
    let _ = writeln!(
        rep.md,
        "\n### Batch calls\n\nPUSH/PULL and DEALER→ROUTER 16 B over tcp, NULL, runs of {} messages: zmtp's single-message calls and its batch calls (`send_many_blocking` and `recv_many_blocking`, up to {BATCH} messages per call, which libzmq has no equivalent of). msg/s and the whole process's CPU per message, median (min–max) of the runs, ratio to libzmq's in the same runs.\n",
        count_label(n(CPU_RUN))
    );
    rep.header(&[
        "workload",
        "figure",
        "libzmq",
        "zmtp",
        &format!("zmtp, batches of {BATCH}"),
    ]);
    let work = |pattern| Work::tcp16(pattern, n(CPU_RUN), 1);
    let rows = [
        ("msg/s", "msgs_per_sec"),
        ("CPU ns per message", "cpu_ns_per_msg"),
    ];
    let pp = run_interleaved(t, &work("push-pull"), &imps, runs);
    rep.rows(&pp, &["PUSH→PULL"], &rows, &imps);
    let dr = run_interleaved(t, &work("dealer-router"), &imps, runs);
    rep.rows(&dr, &["DEALER→ROUTER"], &rows, &imps);
    rep.stacks_chart(
        "batch.svg",
        "The process's CPU per 16 B message over tcp (lower is better)",
        "ns",
        &imps,
        &[
            ("PUSH→PULL", &pp, "cpu_ns_per_msg"),
            ("DEALER→ROUTER", &dr, "cpu_ns_per_msg"),
        ],
    );
    (pp, dr)
}

/// I/O-thread scaling: 8 PUSH (a thread each) into one PULL, 16 B over
/// tcp, with one and with two I/O threads per context.
fn io_threads(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> Results {
    let imps = ["libzmq", "libzmq-io2", "zmtp", "zmtp-io2"];
    let _ = writeln!(
        rep.md,
        "\n### I/O threads\n\n8 PUSH sockets (a thread each) into one PULL, 16 B over tcp, NULL, each context with 1 and with 2 I/O threads, on this 2-core machine (where the application's 9 threads and the I/O threads share two cores). msg/s and the whole process's CPU per message, median (min–max) of the runs; **ratio** of 2 I/O threads to 1, same stack, same runs.\n"
    );
    rep.header(&[
        "stack",
        "1 I/O thread",
        "2 I/O threads",
        "CPU per message, 1",
        "2",
    ]);
    let w = Work::tcp16("fan-in", n(1_000_000), 8);
    let r = run_interleaved(t, &w, &imps, runs);
    let mut cats = Vec::new();
    let mut series = vec![
        ("1 I/O thread".to_owned(), Vec::new()),
        ("2 I/O threads".to_owned(), Vec::new()),
    ];
    for (stack, one, two) in [
        ("libzmq", "libzmq", "libzmq-io2"),
        ("zmtp", "zmtp", "zmtp-io2"),
    ] {
        let base = field(&r, one, "msgs_per_sec").map(|s| s.0);
        let cpu_base = field(&r, one, "cpu_ns_per_msg").map(|s| s.0);
        let _ = writeln!(
            rep.md,
            "| {stack} | {} | {} | {} | {} |",
            cell_of(&r, one, "msgs_per_sec", None),
            cell_of(&r, two, "msgs_per_sec", base),
            cell_of(&r, one, "cpu_ns_per_msg", None),
            cell_of(&r, two, "cpu_ns_per_msg", cpu_base),
        );
        cats.push(stack.to_owned());
        series[0].1.push(base);
        series[1]
            .1
            .push(field(&r, two, "msgs_per_sec").map(|s| s.0));
    }
    rep.chart(
        "io-threads.svg",
        "I/O threads",
        svg::Chart {
            title: "8 PUSH → 1 PULL over tcp, by I/O threads".into(),
            y_label: "msg/s".into(),
            categories: cats,
            series,
        },
    );
    r
}

fn latency(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    n: &dyn Fn(u64) -> u64,
) -> Vec<(usize, Results)> {
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let _ = writeln!(
        rep.md,
        "\n### REQ/REP round trip\n\nOne REQ and one REP over tcp; µs, lower is better; median of the runs' p50 (and p99), ratio to libzmq's.\n"
    );
    rep.impl_header("size");
    let mut cats = Vec::new();
    let mut series = impl_series();
    let mut all = Vec::new();
    for size in [16usize, 4096] {
        let w = Work {
            pattern: "req-rep",
            mechanism: "null",
            transport: "tcp",
            size,
            count: n(10_000),
            subscribers: 1,
        };
        let r = run_interleaved(t, &w, &imps, runs);
        for key in ["p50_us", "p99_us"] {
            let base = field(&r, "libzmq", key).map(|s| s.0);
            let row: Vec<String> = IMPLS
                .iter()
                .enumerate()
                .map(|(i, (imp, _))| cell_of(&r, imp, key, if i == 0 { None } else { base }))
                .collect();
            let label = format!("{} {}", size_name(size), &key[..3]);
            let _ = writeln!(rep.md, "| {label} | {} |", row.join(" | "));
            for (i, (imp, _)) in IMPLS.iter().enumerate() {
                series[i].1.push(field(&r, imp, key).map(|s| s.0));
            }
            cats.push(label);
        }
        all.push((size, r));
    }
    rep.chart(
        "latency.svg",
        "REQ/REP round trip",
        svg::Chart {
            title: "REQ/REP round trip over tcp (lower is better)".into(),
            y_label: "µs".into(),
            categories: cats,
            series,
        },
    );
    all
}

/// Many peers: 32 PUSH sockets into one PULL (fan-in) and one PUSH dealing
/// to 8 PULL sockets (round-robin), a thread per socket, ours against
/// libzmq's.
fn fan_in_and_out(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    n: &dyn Fn(u64) -> u64,
) -> (Results, Results) {
    let imps = ["libzmq", "zmtp"];
    let _ = writeln!(
        rep.md,
        "\n### Fan-in and round-robin\n\n32 PUSH sockets (a thread each) into one PULL, and one PUSH dealing round-robin to 8 PULL sockets (a thread each), over tcp, NULL, 16 B: messages received per second, and the whole process's CPU per message; median (min–max) of the runs, ratio to libzmq's in the same runs.\n"
    );
    rep.header(&[
        "workload",
        "libzmq",
        "zmtp",
        "CPU per message, libzmq",
        "zmtp",
    ]);
    let mut out = Vec::new();
    for (pattern, peers, label) in [
        ("fan-in", 32usize, "32 PUSH → 1 PULL"),
        ("round-robin", 8, "1 PUSH → 8 PULL"),
    ] {
        let w = Work::tcp16(pattern, n(1_000_000), peers);
        let r = run_interleaved(t, &w, &imps, runs);
        let base = field(&r, "libzmq", "msgs_per_sec").map(|s| s.0);
        let cpu_base = field(&r, "libzmq", "cpu_ns_per_msg").map(|s| s.0);
        let _ = writeln!(
            rep.md,
            "| {label} | {} | {} | {} | {} |",
            cell_of(&r, "libzmq", "msgs_per_sec", None),
            cell_of(&r, "zmtp", "msgs_per_sec", base),
            cell_of(&r, "libzmq", "cpu_ns_per_msg", None),
            cell_of(&r, "zmtp", "cpu_ns_per_msg", cpu_base),
        );
        out.push(r);
    }
    let deal = out.pop().unwrap_or_default();
    let fan_in = out.pop().unwrap_or_default();
    rep.stacks_chart(
        "fan-in.svg",
        "Fan-in and round-robin, 16 B over tcp (higher is better)",
        "msg/s",
        &imps,
        &[
            ("32 PUSH → 1 PULL", &fan_in, "msgs_per_sec"),
            ("1 PUSH → 8 PULL", &deal, "msgs_per_sec"),
        ],
    );
    (fan_in, deal)
}

/// PUSH -> proxy -> PULL: the proxy on a context and a thread of its own,
/// ours against libzmq's `zmq_proxy`.
fn proxies(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> Results {
    let imps = ["libzmq", "zmtp"];
    let _ = writeln!(
        rep.md,
        "\n### Proxy\n\nPUSH → proxy (PULL frontend, PUSH backend, on a context and a thread of its own) → PULL, over tcp, NULL, 16 B; msg/s, median (min–max) of the runs, ratio to libzmq's `zmq_proxy` in the same runs.\n"
    );
    rep.header(&["workload", "libzmq", "zmtp"]);
    let w = Work::tcp16("proxy", n(1_000_000), 1);
    let r = run_interleaved(t, &w, &imps, runs);
    rep.rows(&r, &[], &[("PUSH→proxy→PULL msg/s", "msgs_per_sec")], &imps);
    r
}

/// inproc: both ends in one process, two threads; throughput at 16 B and
/// 64 KiB and the REQ/REP round trip, against libzmq's inproc. zmtp runs
/// twice: with one shared `Bytes` cloned per send (as the tcp rows), and
/// with bodies from a static buffer (no reference count moving between the
/// threads: what libzmq's 16-byte messages, copied into the message
/// itself, cost it).
fn inproc(t: &Tools, rep: &mut Report, runs: usize, n: &dyn Fn(u64) -> u64) -> (Results, Results) {
    let imps = ["libzmq", "zmtp", "zmtp-static"];
    let _ = writeln!(
        rep.md,
        "\n### inproc\n\nPUSH → PULL and REQ ↔ REP over inproc, both sockets in one context, a thread each; msg/s (and the process's CPU per message), median (min–max) of the runs, ratio to libzmq's inproc in the same runs. \"shared\": every send clones one `Bytes` (zero-copy; its reference count moves between the two threads at each message); \"static\": bodies point into a static buffer (`zmtp bench --payload static`), as cheap to hand over as libzmq's small messages, which it copies into the message itself.\n"
    );
    rep.header(&["workload", "libzmq", "zmtp, shared", "zmtp, static"]);
    let mut cats = Vec::new();
    let mut series: Vec<(String, Vec<Option<f64>>)> = ["libzmq", "zmtp, shared", "zmtp, static"]
        .iter()
        .map(|s| (s.to_string(), Vec::new()))
        .collect();
    let mut out = Vec::new();
    for (size, count) in [(16usize, n(3_000_000)), (65536, n(500_000))] {
        let w = Work {
            pattern: "push-pull",
            mechanism: "null",
            transport: "inproc",
            size,
            count,
            subscribers: 1,
        };
        let r = run_interleaved(t, &w, &imps, runs);
        let (rate, cpu) = (
            format!("{} msg/s", size_name(size)),
            format!("{} CPU ns/msg", size_name(size)),
        );
        let rows = [
            (rate.as_str(), "msgs_per_sec"),
            (cpu.as_str(), "cpu_ns_per_msg"),
        ];
        rep.rows(&r, &[], &rows, &imps);
        cats.push(size_name(size));
        for (i, imp) in imps.iter().enumerate() {
            series[i]
                .1
                .push(field(&r, imp, "msgs_per_sec").map(|s| s.0));
        }
        out.push(r);
    }
    let w = Work {
        pattern: "req-rep",
        mechanism: "null",
        transport: "inproc",
        size: 16,
        count: n(20_000),
        subscribers: 1,
    };
    let rr = run_interleaved(t, &w, &imps[..2], runs);
    // No static-body column here (a round trip clones nothing): "–".
    let rows = [
        ("REQ/REP 16 B round trip p50 µs", "p50_us"),
        ("REQ/REP 16 B round trip p99 µs", "p99_us"),
    ];
    rep.rows(&rr, &[], &rows, &imps);
    rep.chart(
        "inproc.svg",
        "inproc throughput",
        svg::Chart {
            title: "PUSH/PULL over inproc".into(),
            y_label: "msg/s".into(),
            categories: cats,
            series,
        },
    );
    let big = out.pop().unwrap_or_default();
    let small = out.pop().unwrap_or_default();
    (small, big)
}

/// DEALER to ROUTER: throughput (the ROUTER receives each message with its
/// routing id) and round trips (the ROUTER sends each message back).
fn dealer_router(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    n: &dyn Fn(u64) -> u64,
) -> (Results, Results) {
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let _ = writeln!(
        rep.md,
        "\n### DEALER and ROUTER\n\nOne DEALER connected to one ROUTER over tcp, NULL, 16 B. Throughput: the DEALER sends, the ROUTER receives (msg/s). Round trip: the ROUTER sends every message back to its DEALER (µs, lower is better). Median (min–max) of the runs, ratio to libzmq's in the same runs.\n"
    );
    rep.impl_header("workload");
    let work = |pattern, count| Work::tcp16(pattern, count, 1);
    let dr = run_interleaved(t, &work("dealer-router", n(1_000_000)), &imps, runs);
    let echo = run_interleaved(t, &work("router-echo", n(10_000)), &imps, runs);
    for (label, r, key) in [
        ("DEALER→ROUTER msg/s", &dr, "msgs_per_sec"),
        ("round trip p50", &echo, "p50_us"),
        ("round trip p99", &echo, "p99_us"),
    ] {
        let base = field(r, "libzmq", key).map(|s| s.0);
        let row: Vec<String> = IMPLS
            .iter()
            .enumerate()
            .map(|(i, (imp, _))| cell_of(r, imp, key, if i == 0 { None } else { base }))
            .collect();
        let _ = writeln!(rep.md, "| {label} | {} |", row.join(" | "));
    }
    (dr, echo)
}

fn handshakes(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    quick: bool,
) -> Vec<(&'static str, Results)> {
    let mut all = Vec::new();
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let _ = writeln!(
        rep.md,
        "\n### Handshakes per second\n\nSequential connections over tcp: a new PUSH socket connects, sends one message, the server receives it, the socket closes. Includes TCP connect and teardown.\n"
    );
    rep.impl_header("mechanism");
    let mut series = impl_series();
    let mechs = ["null", "plain", "curve", "noise-xx", "noise-ik", "noise-nk"];
    for mech in mechs {
        let w = Work {
            pattern: "handshake",
            mechanism: mech,
            transport: "tcp",
            size: 0,
            count: if quick { 20 } else { 300 },
            subscribers: 1,
        };
        // libzmq has no NOISE; `measure` would run its CURVE instead.
        let these: Vec<&'static str> = imps
            .iter()
            .copied()
            .filter(|i| !(mech.starts_with("noise") && *i == "libzmq"))
            .collect();
        let r = run_interleaved(t, &w, &these, runs);
        let row: Vec<String> = IMPLS
            .iter()
            .map(|(imp, _)| cell_of(&r, imp, "handshakes_per_sec", None))
            .collect();
        let _ = writeln!(rep.md, "| {} | {} |", mech.to_uppercase(), row.join(" | "));
        for (i, (imp, _)) in IMPLS.iter().enumerate() {
            series[i]
                .1
                .push(field(&r, imp, "handshakes_per_sec").map(|s| s.0));
        }
        all.push((mech, r));
    }
    rep.chart(
        "handshakes.svg",
        "Handshakes per second",
        svg::Chart {
            title: "Handshakes per second over tcp (higher is better)".into(),
            y_label: "connections/s".into(),
            categories: mechs.iter().map(|m| m.to_uppercase()).collect(),
            series,
        },
    );
    all
}

fn memory(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    quick: bool,
) -> Vec<(&'static str, Results, &'static str)> {
    let imps: Vec<&'static str> = IMPLS.iter().map(|i| i.0).collect();
    let conns = if quick { 100 } else { 1000 };
    let _ = writeln!(
        rep.md,
        "\n### Memory\n\nRSS growth of the process (both ends are in it) from before the sockets to: {conns} connected PUSH sockets, each idle after one message, into one PULL (idle); and the peak while a PUB sends 200,000 1 KiB messages as fast as it can to one SUB that reads one per millisecond, default high-water marks (slow subscriber). MiB, median of {runs} runs.\n"
    );
    rep.impl_header("workload");
    let idle = Work {
        pattern: "idle",
        mechanism: "null",
        transport: "tcp",
        size: 0,
        count: conns,
        subscribers: 1,
    };
    let idle_r = run_interleaved(t, &idle, &imps, runs);
    let row = rss_row(&idle_r, "rss_kib", |m| {
        format!(
            "{m:.1} MiB ({:.1} KiB per connection)",
            m * 1024.0 / conns as f64
        )
    });
    let _ = writeln!(rep.md, "| {conns} idle connections | {row} |");
    let slow = Work {
        pattern: "slow-sub",
        mechanism: "null",
        transport: "tcp",
        size: 1024,
        count: if quick { 20_000 } else { 200_000 },
        subscribers: 1,
    };
    let slow_r = run_interleaved(t, &slow, &imps, runs);
    let row = rss_row(&slow_r, "peak_rss_kib", |m| format!("{m:.1} MiB"));
    let _ = writeln!(rep.md, "| slow subscriber (peak) | {row} |");
    vec![
        ("memory, idle connections", idle_r, "rss_growth_kib"),
        ("memory, slow subscriber", slow_r, "peak_growth_kib"),
    ]
}

/// One PULL accepting 10,000 idle PUSH peers that two other processes
/// open at once (zmtp's `bench --pattern idle-peers`, the same peers for
/// both servers), NULL and CURVE: the server's RSS per connection, the
/// time until every peer's first message is in, and the server's CPU per
/// connection.
fn many_idle(
    t: &Tools,
    rep: &mut Report,
    runs: usize,
    quick: bool,
) -> Vec<(&'static str, Results)> {
    let imps = ["libzmq", "zmtp"];
    let conns = if quick { 500 } else { 10_000 };
    let _ = writeln!(
        rep.md,
        "\n### Many idle peers\n\nOne PULL over tcp accepts {conns} PUSH peers that other processes (5,000 peers each, zmtp's, the same for both servers) open at once; each peer sends one message and stays. The server process's RSS growth per connection, the time from starting the peers until every first message is in, and the server process's CPU per connection; each stack with its default listen backlog (libzmq 100, zmtp 1024: see `Options::backlog`). Median (min–max) of the runs, ratio to libzmq's in the same runs.\n"
    );
    rep.header(&["mechanism", "figure", "libzmq", "zmtp"]);
    let mut all = Vec::new();
    for mech in ["null", "curve"] {
        let w = Work {
            pattern: "idle-remote",
            mechanism: mech,
            transport: "tcp",
            size: 0,
            count: conns,
            subscribers: 1,
        };
        let mut r = run_interleaved(t, &w, &imps, runs);
        for v in r.values_mut() {
            for f in v.iter_mut() {
                if let Some(g) = f.get("rss_growth_kib").copied() {
                    f.insert("kib_per_conn".into(), g / conns as f64);
                }
            }
        }
        let rows = [
            ("RSS KiB per connection", "kib_per_conn"),
            ("seconds to accept all", "accept_seconds"),
            ("CPU µs per connection", "cpu_us_per_conn"),
        ];
        rep.rows(&r, &[&mech.to_uppercase()], &rows, &imps);
        all.push((mech, r));
    }
    let cats: Vec<(&str, &Results, &str)> = all
        .iter()
        .map(|(m, r)| {
            (
                if *m == "null" { "NULL" } else { "CURVE" },
                r,
                "kib_per_conn",
            )
        })
        .collect();
    rep.stacks_chart(
        "many-idle.svg",
        &format!("Server RSS per connection, {conns} idle tcp peers (lower is better)"),
        "KiB",
        &imps,
        &cats,
    );
    all
}

/// One memory row: per implementation, the median growth of `key` over
/// the process's RSS before the sockets, in MiB, shown by `show`.
fn rss_row(r: &Results, key: &str, show: impl Fn(f64) -> String) -> String {
    let grow = |f: &Fields| Some((f.get(key)? - f.get("base_rss_kib")?) / 1024.0);
    IMPLS
        .iter()
        .map(|(imp, _)| {
            if failed(r, imp) {
                return "failed".to_owned();
            }
            let v: Vec<f64> = r
                .get(imp)
                .map(|v| v.iter().filter_map(grow).collect())
                .unwrap_or_default();
            stats(v).map_or("–".into(), |(m, _, _)| show(m))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_driver_lines() {
        let f = parse(
            "{\"impl\": \"zmtp\", \"size\": 16, \"msgs_per_sec\": 5537038.7, \"p50_us\": 21.50}",
        );
        assert_eq!(f.get("size"), Some(&16.0));
        assert_eq!(f.get("msgs_per_sec"), Some(&5537038.7));
        assert_eq!(f.get("p50_us"), Some(&21.5));
        assert!(!f.contains_key("impl"));
    }

    #[test]
    fn stats_are_median_min_max() {
        assert_eq!(stats(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(vec![]), None);
    }

    #[test]
    fn cells_show_ratio_to_base() {
        assert_eq!(
            cell(Some((2e6, 1e6, 3e6)), Some(1e6)),
            "2.00M (1.00M–3.00M) **2.00×**"
        );
        assert_eq!(cell(None, Some(1.0)), "–");
    }
}
