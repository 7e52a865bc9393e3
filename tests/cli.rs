//! The command-line contract scripts rely on: forms, `-` for stdin/stdout, exit codes, and a
//! one-line error.

use std::io::Write;
use std::process::{Command, Stdio};

fn diffc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("diffc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_string_lossy().into_owned()
}

#[test]
fn compress_decompress_inspect_round_trip() {
    let s = tmp("a.dfc");
    let o = diffc()
        .args([
            "compress",
            &fixture("dragonfly_96x64.png"),
            &s,
            "--bpp",
            "1.0",
            "--model",
            "gauss",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bpp") && err.contains(" s"),
        "prints bpp and time: {err}"
    );
    for method in ["flow", "ancestral", "denoise"] {
        let out = tmp(&format!("a_{method}.png"));
        let o = diffc()
            .args(["decompress", &s, &out, "--method", method])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let img = diffc::Image::open(out.as_ref()).unwrap();
        assert_eq!((img.width, img.height), (96, 64));
    }
    // --bytes decodes a prefix; aliases work.
    let out = tmp("prefix.png");
    let o = diffc()
        .args(["decode", &s, &out, "--bytes", "300"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = diffc().args(["inspect", &s]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ideal_KL_bits") && text.contains("spent_bits"),
        "{text}"
    );
    let o = diffc().args(["inspect", &s, "--json"]).output().unwrap();
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(
        json.starts_with('{') && json.contains("\"packets\":[{"),
        "{json}"
    );
}

#[test]
fn stdin_and_stdout_with_dash() {
    let png = std::fs::read(fixture("dragonfly_gray_45x31.png")).unwrap();
    let mut child = diffc()
        .args([
            "encode", "-", "-", "--steps", "20", "--model", "gauss", "--quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&png).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "--quiet is quiet");
    assert_eq!(&o.stdout[..4], b"DIFC");
    let mut child = diffc()
        .args(["decode", "-", "-", "--method", "denoise", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    let d = child.wait_with_output().unwrap();
    assert!(d.status.success());
    let img = diffc::Image::decode(&d.stdout).unwrap();
    assert_eq!((img.width, img.height, img.channels), (45, 31, 1));
}

#[test]
fn failures_exit_nonzero_with_one_line() {
    let bogus = tmp("bogus.dfc");
    std::fs::write(&bogus, b"this is not a stream").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["decompress".into(), bogus.clone(), tmp("x.png")],
        vec!["decompress".into(), tmp("missing.dfc"), tmp("x.png")],
        vec![
            "compress".into(),
            bogus.clone(),
            tmp("x.dfc"),
            "--model".into(),
            "gauss".into(),
        ],
        vec![
            "compress".into(),
            fixture("dragonfly_96x64.png"),
            tmp("x.dfc"),
            "--model".into(),
            "nope".into(),
        ],
        vec![
            "compress".into(),
            fixture("dragonfly_96x64.png"),
            tmp("x.dfc"),
            "--bpp".into(),
            "0".into(),
        ],
        vec!["inspect".into(), bogus.clone()],
    ];
    for args in cases {
        let o = diffc().args(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("diffc: error:") || err.starts_with("error:"),
            "{err}"
        );
    }
}

#[test]
fn models_lists_every_embedded_model_with_its_stream_id() {
    let o = diffc().arg("models").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for name in diffc::prior::available_models() {
        let id = diffc::prior::load_model(name).unwrap().model_id();
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{out}"));
        assert!(line.contains(&format!("{id:016x}")), "{line}");
    }
}

/// A reader that stops early (`diffc models | head -1`) ends the output quietly: no panic, no
/// error, success.
#[test]
fn a_closed_stdout_pipe_ends_output_quietly() {
    let s = tmp("pipe.dfc");
    let o = diffc()
        .args(["compress", &fixture("dragonfly_96x64.png"), &s])
        .args(["--bpp", "0.5", "--model", "gauss"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for args in [&["models"][..], &["inspect", &s][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // closed before the first write: every write fails with EPIPE
        let o = diffc()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {:?} {err}", o.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// The number after `"key":` in a flat JSON object (`None` for `null` or a missing key).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let rest = json.split_once(&format!("\"{key}\":"))?.1;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[test]
#[cfg(feature = "train")]
fn bench_json_reports_the_forward_pass() {
    let o = diffc()
        .args([
            "bench",
            "--json",
            "--repeats",
            "1",
            "--no-train",
            "--no-graph",
            "--no-codec",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(json.trim_start().starts_with('{') && json.trim_end().ends_with('}'));
    for key in ["forward_seconds", "forward_gflops", "forward_gflop"] {
        let v = json_number(&json, key).unwrap_or_else(|| panic!("{key} in {json}"));
        assert!(v.is_finite() && v > 0.0, "{key} = {v} in {json}");
    }
    // What was skipped is null, not zero.
    for key in [
        "graph_forward_seconds",
        "train_step_seconds",
        "encode_step_seconds",
    ] {
        assert!(json.contains(&format!("\"{key}\":null")), "{key}: {json}");
    }
    let o = diffc()
        .args(["bench", "--repeats", "0", "--no-train"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "--repeats 0 is refused");
}

/// `compress` with the closed-form prior; returns (stream, stderr).
fn compress(input: &str, out: &str, extra: &[&str]) -> (Vec<u8>, String) {
    let o = diffc()
        .args(["compress", input, out, "--model", "gauss"])
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{extra:?}: {err}");
    (std::fs::read(out).unwrap(), err)
}

/// The encoder's candidate scores are exact integer sums, so a machine without AVX-512 VNNI
/// (`DIFFC_KERNELS=portable` stands in for one) writes the same bytes, with both picks.
#[test]
fn encoding_does_not_depend_on_the_cpu() {
    let img = fixture("dragonfly_96x64.png");
    for pick in ["aligned", "sample"] {
        let (fast, _) = compress(&img, &tmp(&format!("cpu-{pick}.dfc")), &["--pick", pick]);
        let out = tmp(&format!("cpu-{pick}-portable.dfc"));
        let o = diffc()
            .args(["compress", &img, &out, "--model", "gauss", "--pick", pick])
            .env("DIFFC_KERNELS", "portable")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(fast, std::fs::read(&out).unwrap(), "{pick}");
    }
}

/// Lambda of the last packet, from `inspect --json`.
fn last_lambda(stream: &str) -> f64 {
    let o = diffc()
        .args(["inspect", stream, "--json"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(json.contains("\"stop\":\"complete\""), "{json}");
    let last = json.rsplit_once("{\"step\":").unwrap().1;
    json_number(&format!("{{\"step\":{last}"), "lambda").unwrap()
}

#[test]
fn quality_is_a_final_lambda_the_same_on_every_image() {
    let (color, gray) = (
        fixture("dragonfly_96x64.png"),
        fixture("dragonfly_gray_45x31.png"),
    );
    let (s1, s2) = (tmp("q1.dfc"), tmp("q2.dfc"));
    // -q is quality: short and long forms give the same stream.
    let (a, _) = compress(&color, &s1, &["-q", "50"]);
    let (b, _) = compress(&color, &s2, &["--quality", "50"]);
    assert_eq!(a, b);
    // Q 50 ends at lambda 3.4 whatever the image; the rate differs by image.
    let q50 = 0.09 * 50.0 - 1.1;
    assert!((last_lambda(&s1) - q50).abs() < 1.0 / 512.0);
    compress(&gray, &s2, &["-q", "50"]);
    assert!((last_lambda(&s2) - q50).abs() < 1.0 / 512.0);
    // Higher quality: a later lambda and more bytes.
    let (hi, _) = compress(&color, &s2, &["-q", "80"]);
    assert!((last_lambda(&s2) - (0.09 * 80.0 - 1.1)).abs() < 1.0 / 512.0);
    assert!(hi.len() > a.len(), "{} vs {}", hi.len(), a.len());
    // Out of range, or combined with --bpp/--steps: refused.
    for args in [
        vec!["-q", "0"],
        vec!["-q", "101"],
        vec!["-q", "50", "--bpp", "0.5"],
        vec!["--quality", "50", "--steps", "4"],
    ] {
        let o = diffc()
            .args(["compress", &color, &tmp("q3.dfc"), "--model", "gauss"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} should be refused");
    }
    // -q no longer means quiet.
    let o = diffc()
        .args(["-q", "compress", &color, &tmp("q4.dfc")])
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn per_step_table_only_with_verbose_and_no_bars_without_a_terminal() {
    let img = fixture("dragonfly_96x64.png");
    let s = tmp("v.dfc");
    let (_, err) = compress(&img, &s, &["--bpp", "1.0"]);
    // Not a terminal: no bar, no carriage returns or escapes; just the summary line.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bpp") && !err.contains("step   0"), "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let (_, err) = compress(&img, &s, &["--bpp", "1.0", "-v"]);
    assert!(
        err.contains("step   0  lambda") && err.contains("KL"),
        "{err}"
    );
    assert!(err.lines().count() > 3, "{err}");
    let (_, err) = compress(&img, &s, &["--bpp", "1.0", "--quiet"]);
    assert!(err.is_empty(), "{err}");
    let o = diffc()
        .args(["decompress", &s, &tmp("v.png")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

/// Run `args` with stderr on a pseudo-terminal (util-linux `script`); `None` when `script`
/// is not installed. Returns what the terminal showed.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let mut cmd = quote(env!("CARGO_BIN_EXE_diffc"));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let o = Command::new("script")
        .args(["-qec", &format!("{cmd} >/dev/null"), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn progress_bars_on_a_terminal() {
    let img = fixture("dragonfly_256x192.png");
    let s = tmp("bar.dfc");
    let Some(tty) = on_a_terminal(&["compress", &img, &s, "--model", "gauss", "--bpp", "1"]) else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(tty.contains("compress [") && tty.contains("bpp"), "{tty:?}");
    // The bar is cleared; the summary stays.
    assert!(tty.contains("256x192:"), "{tty:?}");
    assert!(
        !tty.contains("step   0  lambda"),
        "table without -v: {tty:?}"
    );
    let tty = on_a_terminal(&["compress", &img, &s, "--model", "gauss", "-q", "40", "-v"]).unwrap();
    assert!(tty.contains("step   0  lambda"), "{tty:?}");
    let tty = on_a_terminal(&["decompress", &s, &tmp("bar.png")]).unwrap();
    assert!(
        tty.contains("decompress [") && tty.contains("decoding step") && tty.contains("complete"),
        "{tty:?}"
    );
    let tty = on_a_terminal(&["--quiet", "decompress", &s, &tmp("bar.png")]).unwrap();
    assert!(tty.trim().is_empty(), "--quiet: {tty:?}");
}

#[test]
fn compress_warns_when_a_rate_cannot_be_met() {
    let one = tmp("one.ppm");
    std::fs::write(&one, b"P6\n1 1\n255\n\xc8\x0a\x5a").unwrap();
    let s = tmp("w.dfc");
    // Below header + first packet: said, even with --quiet.
    let (_, err) = compress(&one, &s, &["--bpp", "0.5", "--quiet"]);
    assert!(
        err.contains("warning: --bpp 0.5 cannot be met") && err.contains("48-byte header"),
        "{err}"
    );
    // A 1x1 image at a quality: the header and packet framing dominate.
    let (_, err) = compress(&one, &s, &["-q", "50"]);
    assert!(err.contains("warning: fixed costs dominate"), "{err}");
    // The grid ends before the target.
    let img = fixture("dragonfly_96x64.png");
    let (_, err) = compress(&img, &s, &["--bpp", "30", "--lambda-stop", "4"]);
    assert!(err.contains("warning: --bpp 30 not reached"), "{err}");
    let (_, err) = compress(&img, &s, &["-q", "100", "--lambda-stop", "4"]);
    assert!(err.contains("beyond the grid's last lambda"), "{err}");
    // A reachable target: no warning.
    let (_, err) = compress(&img, &s, &["--bpp", "0.5"]);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
#[cfg(feature = "eval")]
fn eval_reports_progress_per_image_without_a_terminal() {
    let dir = std::path::PathBuf::from(tmp("evaldata"));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["a.png", "b.png"] {
        std::fs::copy(fixture("dragonfly_gray_45x31.png"), dir.join(name)).unwrap();
    }
    let run_both = |extra: &[&str]| {
        let o = diffc()
            .args(["eval", "--data"])
            .arg(&dir)
            .args(["--bpp", "0.5,1", "--model", "gauss", "--methods", "denoise"])
            .args(["--no-baselines", "--out", &tmp("eval.csv")])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        (String::from_utf8_lossy(&o.stdout).into_owned(), err)
    };
    let run = |extra: &[&str]| run_both(extra).1;
    // --quiet: nothing but the files (no progress, no table).
    assert_eq!(run_both(&["--quiet"]), (String::new(), String::new()));
    let (table, err) = run_both(&[]);
    assert!(table.contains("PSNR"), "{table}");
    assert!(
        err.contains("eval: 1/2 images measured (a.png)")
            && err.contains("eval: 2/2 images measured (b.png)"),
        "{err}"
    );
    assert!(
        !err.contains("diffc-denoise") && !err.contains('\r'),
        "{err}"
    );
    let err = run(&["-v"]);
    assert_eq!(err.matches("diffc-denoise").count(), 4, "{err}");
}

#[test]
#[cfg(feature = "train")]
fn train_shows_a_bar_of_its_budget_on_a_terminal() {
    let dir = std::path::PathBuf::from(tmp("traindata"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("dragonfly_96x64.png"), dir.join("a.png")).unwrap();
    let out = tmp("trained.safetensors");
    let data = dir.to_string_lossy().into_owned();
    let args = [
        "train",
        "--data",
        &data,
        "--out",
        &out,
        "--minutes",
        "0.03",
        "--model",
        "test",
        "--batch",
        "2",
        "--crop",
        "16",
    ];
    let Some(tty) = on_a_terminal(&args) else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(
        tty.contains("train [") && tty.contains("of 0.03 min"),
        "{tty:?}"
    );
    // Training's own lines other than steps appear above the bar.
    assert!(tty.contains("saved "), "{tty:?}");
    assert!(std::fs::metadata(&out).is_ok());
    // A failing child's error and exit code come through.
    let o = Command::new("script")
        .args([
            "-qec",
            &format!(
                "'{}' train --data '{data}' --out '{out}' --minutes 0.01 --model nope",
                env!("CARGO_BIN_EXE_diffc")
            ),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{shown}");
    assert_eq!(shown.matches("diffc: error:").count(), 1, "{shown:?}");
}

#[test]
fn limit_flags_refuse_naming_the_flag_and_raise() {
    let img = fixture("dragonfly_96x64.png"); // 6144 pixels
    let s = tmp("limits.dfc");
    let run = |args: &[&str]| {
        let o = diffc().args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Too small: refused, one line naming the input, the limit and the flag with a value that
    // would do; nothing written.
    let (ok, err) = run(&[
        "compress",
        &img,
        &s,
        "--model",
        "gauss",
        "--max-pixels",
        "6000",
    ]);
    assert!(!ok);
    assert!(
        err.starts_with(&format!("diffc: error: {img}: limit exceeded: pixels"))
            && err.contains("(raise it with --max-pixels 6144)"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(std::fs::metadata(&s).is_err(), "nothing written");
    let (ok, err) = run(&[
        "compress",
        &img,
        &s,
        "--model",
        "gauss",
        "--max-memory",
        "100K",
    ]);
    assert!(
        !ok && err.contains("(raise it with --max-memory 1M)"),
        "{err}"
    );
    let (ok, err) = run(&[
        "compress",
        &img,
        &s,
        "--model",
        "gauss",
        "--max-pixel-passes",
        "6144",
    ]);
    assert!(!ok && err.contains("--max-pixel-passes"), "{err}");
    // Enough (the encoder's scoring buffers need 17M here: 8,192 candidates): works, and the limits do not change
    // the stream.
    let (ok, err) = run(&[
        "compress",
        &img,
        &s,
        "--model",
        "gauss",
        "--bpp",
        "0.5",
        "--max-pixels",
        "6144",
        "--max-memory",
        "17M",
    ]);
    assert!(ok, "{err}");
    let stream = std::fs::read(&s).unwrap();
    let (ok, err) = run(&[
        "compress",
        &img,
        &tmp("limits2.dfc"),
        "--model",
        "gauss",
        "--bpp",
        "0.5",
    ]);
    assert!(ok, "{err}");
    assert_eq!(stream, std::fs::read(tmp("limits2.dfc")).unwrap());
    // Decoding and inspecting take the same flags.
    let out = tmp("limits.png");
    for (flag, value) in [("--max-pixels", "6143"), ("--max-memory", "512K")] {
        for cmd in [vec!["decompress", &s, &out], vec!["inspect", &s]] {
            let mut args = cmd.clone();
            args.extend([flag, value]);
            let (ok, err) = run(&args);
            assert!(
                !ok && err.starts_with(&format!("diffc: error: {s}: limit exceeded"))
                    && err.contains(&format!("(raise it with {flag} ")),
                "{args:?}: {err}"
            );
        }
    }
    assert!(std::fs::metadata(&out).is_err(), "nothing written");
    // The compute budget runs out at a packet: an error, not a "corrupt" stream.
    let (ok, err) = run(&["decompress", &s, &out, "--max-pixel-passes", "20000"]);
    assert!(
        !ok && err.contains("network pixel-passes") && err.contains("--max-pixel-passes"),
        "{err}"
    );
    assert!(std::fs::metadata(&out).is_err(), "nothing written");
    let (ok, err) = run(&[
        "decompress",
        &s,
        &out,
        "--max-pixels",
        "6144",
        "--max-memory",
        "1M",
        "--max-pixel-passes",
        "1000000",
    ]);
    assert!(ok && err.contains("complete"), "{err}");
    // Sizes: K/M/G/T; anything else is refused by the parser.
    let (ok, err) = run(&["inspect", &s, "--max-memory", "1.5G"]);
    assert!(!ok && err.contains("not a byte count"), "{err}");
    let (ok, err) = run(&["inspect", &s, "--max-memory", "16G"]);
    assert!(ok, "{err}");
}

#[test]
fn batch_compress_and_decompress_with_out_dir_and_jobs() {
    let root = std::path::PathBuf::from(tmp("batch"));
    let _ = std::fs::remove_dir_all(&root);
    let inputs = root.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(fixture("dragonfly_96x64.png"), inputs.join("a.png")).unwrap();
    std::fs::copy(fixture("dragonfly_gray_45x31.png"), inputs.join("b.PNG")).unwrap();
    std::fs::write(inputs.join("broken.png"), b"not an image").unwrap();
    std::fs::write(inputs.join("notes.txt"), b"not an input").unwrap();
    std::fs::copy(fixture("dragonfly_96x64.png"), inputs.join(".hidden.png")).unwrap();
    let p = |path: &std::path::Path| path.to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let o = diffc().args(args).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let opts = ["--model", "gauss", "--bpp", "1", "--seed", "4"];
    let names = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A folder: its images (any case, not hidden, not other files) into --out-dir, named by
    // stem. The broken one is reported with its path, the others are still written, exit 1.
    let out1 = root.join("out1");
    let (s_in, s_out) = (p(&inputs), p(&out1));
    let mut args = vec!["compress", &s_in, "--out-dir", &s_out];
    args.extend(opts);
    let (ok, err) = run(&args);
    assert!(!ok, "{err}");
    let broken = p(&inputs.join("broken.png"));
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("diffc: error: {broken}: "))),
        "{err}"
    );
    assert!(err.contains("1 of 3 files failed"), "{err}");
    assert_eq!(names(&out1), ["a.dfc", "b.dfc"]);
    // Each output is what single-file compress writes; summaries name their file.
    let single = tmp("batch_single.dfc");
    let a_png = p(&inputs.join("a.png"));
    let mut args = vec!["compress", &a_png, &single];
    args.extend(opts);
    assert!(run(&args).0);
    let a_stream = std::fs::read(&single).unwrap();
    assert_eq!(std::fs::read(out1.join("a.dfc")).unwrap(), a_stream);
    assert!(err.contains(&format!("{a_png}: 96x64: ")), "{err}");

    // Files listed one by one, -j 2: the same bytes; success, with a summary.
    let out2 = root.join("out2");
    let b_png = p(&inputs.join("b.PNG"));
    let s_out2 = p(&out2);
    let mut args = vec!["compress", &a_png, &b_png, "--out-dir", &s_out2, "-j", "2"];
    args.extend(opts);
    let (ok, err) = run(&args);
    assert!(ok, "{err}");
    assert!(err.contains("compressed 2 files"), "{err}");
    for f in ["a.dfc", "b.dfc"] {
        assert_eq!(
            std::fs::read(out1.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap()
        );
    }

    // Decompress a folder of streams, 2 at a time, in a chosen format.
    let dec = root.join("dec");
    let s_dec = p(&dec);
    let (ok, err) = run(&[
        "decompress",
        &s_out2,
        "--out-dir",
        &s_dec,
        "-j",
        "2",
        "--format",
        "ppm",
        "--method",
        "denoise",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("decompressed 2 files"), "{err}");
    assert_eq!(names(&dec), ["a.ppm", "b.ppm"]);
    let want = tmp("batch_single.ppm");
    assert!(run(&["decompress", &single, &want, "--method", "denoise"]).0);
    assert_eq!(
        std::fs::read(dec.join("a.ppm")).unwrap(),
        std::fs::read(&want).unwrap()
    );
    // A damaged stream among good ones: reported, the others decoded (PNG by default).
    std::fs::write(out2.join("c.dfc"), b"DIFC garbage").unwrap();
    let dec2 = root.join("dec2");
    let s_dec2 = p(&dec2);
    let (ok, err) = run(&["decompress", &s_out2, "--out-dir", &s_dec2, "--quiet"]);
    assert!(!ok);
    assert!(
        err.contains(&p(&out2.join("c.dfc"))) && err.contains("1 of 3 files failed"),
        "{err}"
    );
    assert_eq!(names(&dec2), ["a.png", "b.png"]);

    // Refused before any work: the wrong number of paths without --out-dir, -j without it,
    // stdin in a batch, two inputs with one output name, a folder without inputs.
    std::fs::copy(fixture("dragonfly_96x64.png"), root.join("a.jpg")).unwrap();
    let a_jpg = p(&root.join("a.jpg"));
    let empty = p(&root.join("out1")); // holds only .dfc files
    let out3 = p(&root.join("out3"));
    for args in [
        vec!["compress", a_png.as_str()],
        vec!["compress", &a_png, &single, &single],
        vec!["compress", &a_png, &single, "-j", "2"],
        vec!["compress", "-", "--out-dir", &out3],
        vec!["compress", &a_png, &a_jpg, "--out-dir", &out3],
        vec!["compress", &empty, "--out-dir", &out3],
        vec!["decompress", &s_in, "--out-dir", &out3],
    ] {
        let (ok, err) = run(&args);
        assert!(!ok, "{args:?} should be refused");
        // One line of ours, or clap's usage error.
        assert!(
            err.starts_with("error:") || err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    assert!(std::fs::read_dir(&out3).map_or(true, |d| d.count() == 0));
}

#[test]
#[cfg(all(feature = "eval", feature = "embedded-model"))]
fn eval_denoise_writes_a_csv_and_a_table_of_means() {
    let dir = std::path::PathBuf::from(tmp("denoisedata"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("dragonfly_96x64.png"), dir.join("a.png")).unwrap();
    let csv = tmp("denoise.csv");
    let saved = tmp("denoisesaved");
    let o = diffc()
        .args(["eval", "--data"])
        .arg(&dir)
        .args(["--denoise", "15,50", "--out", &csv, "--save-images", &saved])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("image,sigma,lambda,noisy_psnr,psnr,seconds")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let (noisy, psnr): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        // The shipped prior removes most of the noise.
        assert!(psnr > noisy + 4.0, "{r:?}");
    }
    assert_eq!((rows[0][1].as_str(), rows[1][1].as_str()), ("15", "50"));
    // The table: one line per sigma, lambda = 2 ln(127.5 / sigma).
    assert!(out.contains("4.280") && out.contains("1.872"), "{out}");
    // --save-images: the noisy float map and the 8-bit result of each measurement.
    for s in ["15", "50"] {
        let pfm = std::fs::read(format!("{saved}/a.png.s{s}.noisy.pfm")).unwrap();
        assert!(pfm.starts_with(b"PF\n96 64\n-1.0\n"));
        assert_eq!(pfm.len(), b"PF\n96 64\n-1.0\n".len() + 4 * 3 * 96 * 64);
        let png = image::open(format!("{saved}/a.png.s{s}.png")).unwrap();
        assert_eq!((png.width(), png.height()), (96, 64));
    }
    // Not into the data folder, where the results would become inputs of the next run.
    let o = diffc()
        .args(["eval", "--data"])
        .arg(&dir)
        .args(["--denoise", "15", "--out", &csv, "--save-images"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not the --data folder"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}
