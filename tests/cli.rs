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
            "encode", "-", "-", "--steps", "20", "--model", "gauss", "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&png).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "-q is quiet");
    assert_eq!(&o.stdout[..4], b"DIFC");
    let mut child = diffc()
        .args(["decode", "-", "-", "--method", "denoise", "-q"])
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
