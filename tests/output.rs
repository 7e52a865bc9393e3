//! Output safety, output formats, the decode report and error messages of the command line
//! (issue 11): an existing file is never emptied or left partial, `.ppm`/`.pgm` are binary
//! P6/P5, a decode says whether it was complete, partial or corrupt, and errors name paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use diffc::Limits;

fn diffc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder per test.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffc-output-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run(args: &[&str]) -> Output {
    diffc().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// A failure: exit code 1 and exactly one line on stderr, starting `diffc: error:`.
fn failed(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "should fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("diffc: error:"), "{err}");
    err
}

/// Compress a fixture with the fast Gaussian prior at 1 bpp.
fn stream(d: &Path, fixture_name: &str) -> PathBuf {
    let out = d.join(format!("{fixture_name}.dfc"));
    ok(&run(&[
        "compress",
        &fixture(fixture_name),
        &s(&out),
        "--model",
        "gauss",
        "--bpp",
        "1.0",
        "--quiet",
    ]));
    out
}

/// Names in `d` that are temporary files of an atomic write.
fn leftovers(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("diffc-tmp"))
        .collect()
}

const PRECIOUS: &[u8] = b"precious bytes that must survive a failed decompress\n";

#[test]
fn a_failed_decompress_never_touches_an_existing_file() {
    let d = dir("survive");
    let dfc = stream(&d, "dragonfly_96x64.png");
    // Formats that cannot be written: refused before any work, the file is untouched.
    for name in ["existing.gif", "existing.avif", "existing.jxl", "existing"] {
        let target = d.join(name);
        std::fs::write(&target, PRECIOUS).unwrap();
        let err = failed(&run(&["decompress", &s(&dfc), &s(&target)]));
        assert!(err.contains(&s(&target)), "names the path: {err}");
        assert!(
            err.contains(".png") && err.contains(".ppm") && err.contains("--format"),
            "lists what is supported: {err}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), PRECIOUS, "{name}");
    }
    // The output is checked before the input is even read (no decode is wasted).
    let err = failed(&run(&[
        "decompress",
        &s(&d.join("missing.dfc")),
        &s(&d.join("existing.gif")),
    ]));
    assert!(
        err.contains("existing.gif") && !err.contains("missing.dfc"),
        "{err}"
    );
    // --strict refuses a partial, corrupt or padded stream and writes nothing.
    let bytes = std::fs::read(&dfc).unwrap();
    let ins = diffc::inspect(&bytes, &Limits::default()).unwrap();
    let cut = d.join("cut.dfc");
    std::fs::write(&cut, &bytes[..ins.packets[2].cumulative_bytes]).unwrap();
    let mut corrupt = bytes.clone();
    corrupt[(ins.packets[2].cumulative_bytes + ins.packets[3].cumulative_bytes) / 2] ^= 0x55;
    let corrupt_path = d.join("corrupt.dfc");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    let padded = d.join("padded.dfc");
    std::fs::write(&padded, [&bytes[..], b"junk"].concat()).unwrap();
    let target = d.join("existing.png");
    for input in [&cut, &corrupt_path, &padded] {
        std::fs::write(&target, PRECIOUS).unwrap();
        let err = failed(&run(&[
            "decompress",
            &s(input),
            &s(&target),
            "--strict",
            "--model",
            "gauss",
        ]));
        assert!(err.contains(&s(input)), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), PRECIOUS, "{input:?}");
        let fresh = d.join("fresh.png");
        failed(&run(&["decompress", &s(input), &s(&fresh), "--strict"]));
        assert!(!fresh.exists(), "--strict writes no output");
    }
    // An output in a missing folder or on a folder fails up front, naming it.
    let err = failed(&run(&[
        "decompress",
        &s(&dfc),
        &s(&d.join("nofolder/x.png")),
    ]));
    assert!(err.contains("nofolder/x.png"), "{err}");
    let sub = d.join("sub.png");
    std::fs::create_dir(&sub).unwrap();
    let err = failed(&run(&["decompress", &s(&dfc), &s(&sub)]));
    assert!(err.contains("sub.png"), "{err}");
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
}

#[cfg(unix)]
#[test]
fn outputs_replace_existing_files_whole_and_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("replace");
    let dfc = stream(&d, "dragonfly_96x64.png");
    // Reference bytes from stdout (written directly).
    let reference = run(&["decompress", &s(&dfc), "-", "--quiet"]);
    ok(&reference);
    assert_eq!(&reference.stdout[..8], b"\x89PNG\r\n\x1a\n");
    let target = d.join("old.png");
    // Longer than the new image: a non-truncating write would leave a tail.
    std::fs::write(&target, vec![7u8; reference.stdout.len() * 3]).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&run(&["decompress", &s(&dfc), &s(&target), "--quiet"]));
    assert_eq!(std::fs::read(&target).unwrap(), reference.stdout);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    // compress replaces a stream the same way.
    let again = d.join("again.dfc");
    std::fs::write(&again, vec![1u8; 100_000]).unwrap();
    ok(&run(&[
        "compress",
        &fixture("dragonfly_96x64.png"),
        &s(&again),
        "--model",
        "gauss",
        "--bpp",
        "1.0",
        "--quiet",
    ]));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&dfc).unwrap());
    // A symlink stays a symlink; its target gets the image.
    let real = d.join("real.png");
    let link = d.join("link.png");
    std::fs::write(&real, PRECIOUS).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    ok(&run(&["decompress", &s(&dfc), &s(&link), "--quiet"]));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), reference.stdout);
    // A read-only file is refused, not replaced behind its owner's back.
    let ro = d.join("readonly.png");
    std::fs::write(&ro, PRECIOUS).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = failed(&run(&["decompress", &s(&dfc), &s(&ro)]));
    assert!(
        err.contains("readonly.png") && err.contains("read-only"),
        "{err}"
    );
    assert_eq!(std::fs::read(&ro).unwrap(), PRECIOUS);
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
}

#[test]
fn write_atomic_leaves_nothing_on_failure() {
    let d = dir("atomic");
    let missing = d.join("no/such/folder/x.png");
    let err = diffc::image_io::write_atomic(&missing, b"abc").unwrap_err();
    assert!(err.to_string().contains("no/such/folder/x.png"), "{err}");
    assert!(!d.join("no").exists());
    let f = d.join("x.bin");
    diffc::image_io::write_atomic(&f, b"first, longer content").unwrap();
    diffc::image_io::write_atomic(&f, b"second").unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"second");
    assert!(leftovers(&d).is_empty());
}

#[test]
fn float_maps_hold_unclipped_values_bottom_row_first() {
    let d = dir("pfm");
    // 2 x 2, three channels, planar [-1, 1]; values outside the range stay.
    let p = diffc::prior::Planes {
        channels: 3,
        height: 2,
        width: 2,
        data: vec![
            -1.0, 0.0, 1.0, 2.0, // red: top row, bottom row
            -3.0, 0.5, 0.5, 0.5, // green
            0.0, 0.0, 0.0, -0.5, // blue
        ],
    };
    let f = d.join("x.pfm");
    diffc::image_io::write_pfm(&p, &f).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    let head = b"PF\n2 2\n-1.0\n";
    assert_eq!(&bytes[..head.len()], head);
    let v: Vec<f32> = bytes[head.len()..]
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // Bottom row first, pixels interleaved, (v + 1) / 2.
    assert_eq!(
        v,
        [1.0, 0.75, 0.5, 1.5, 0.75, 0.25, 0.0, -1.0, 0.5, 0.5, 0.75, 0.5]
    );
    let gray = diffc::prior::Planes { channels: 2, ..p };
    let err = diffc::image_io::write_pfm(&gray, &d.join("y.pfm")).unwrap_err();
    assert!(err.to_string().contains("y.pfm"), "{err}");
    assert!(!d.join("y.pfm").exists());
}

/// Split a binary PNM (`P5`/`P6`) into its header line fields and its samples.
fn pnm(bytes: &[u8]) -> (String, Vec<u8>) {
    // "Pn\nW H\n255\n": three newline-terminated lines.
    let mut newlines = 0;
    let end = bytes
        .iter()
        .position(|&b| {
            newlines += (b == b'\n') as usize;
            newlines == 3
        })
        .unwrap()
        + 1;
    (
        String::from_utf8(bytes[..end].to_vec()).unwrap(),
        bytes[end..].to_vec(),
    )
}

#[test]
fn ppm_and_pgm_are_binary_netpbm_and_pam_is_pam() {
    let d = dir("formats");
    let color = stream(&d, "dragonfly_96x64.png");
    let gray = stream(&d, "dragonfly_gray_45x31.png");
    let png = run(&["decompress", &s(&color), "-", "--quiet"]).stdout;
    let rgb = diffc::Image::decode(&png).unwrap();
    assert_eq!(rgb.channels, 3);

    let ppm = d.join("c.ppm");
    ok(&run(&["decompress", &s(&color), &s(&ppm)]));
    let (header, samples) = pnm(&std::fs::read(&ppm).unwrap());
    // Exactly the header netpbm, PIL and every viewer read.
    assert_eq!(header, "P6\n96 64\n255\n");
    assert_eq!(samples, rgb.data);

    // Gray to .ppm: expanded to RGB.
    let gppm = d.join("g.ppm");
    ok(&run(&["decompress", &s(&gray), &s(&gppm)]));
    let gpng = run(&["decompress", &s(&gray), "-", "--quiet"]).stdout;
    let gimg = diffc::Image::decode(&gpng).unwrap();
    assert_eq!(gimg.channels, 1);
    let (header, samples) = pnm(&std::fs::read(&gppm).unwrap());
    assert_eq!(header, "P6\n45 31\n255\n");
    let expanded: Vec<u8> = gimg.data.iter().flat_map(|&v| [v, v, v]).collect();
    assert_eq!(samples, expanded);

    // Gray to .pgm: P5, the same samples.
    let gpgm = d.join("g.pgm");
    let o = run(&["decompress", &s(&gray), &s(&gpgm)]);
    ok(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let (header, samples) = pnm(&std::fs::read(&gpgm).unwrap());
    assert_eq!(header, "P5\n45 31\n255\n");
    assert_eq!(samples, gimg.data);

    // RGB to .pgm: converted to luma, with a warning.
    let cpgm = d.join("c.pgm");
    let o = run(&["decompress", &s(&color), &s(&cpgm)]);
    ok(&o);
    assert!(stderr(&o).contains("warning") && stderr(&o).contains("luma"));
    let (header, samples) = pnm(&std::fs::read(&cpgm).unwrap());
    assert_eq!(header, "P5\n96 64\n255\n");
    assert_eq!(samples.len(), 96 * 64);
    let (r, g, b) = (rgb.data[0] as f64, rgb.data[1] as f64, rgb.data[2] as f64);
    let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    assert!(
        (samples[0] as f64 - luma).abs() <= 1.0,
        "{} vs {luma}",
        samples[0]
    );

    // .pam is PAM.
    let pam = d.join("c.pam");
    ok(&run(&["decompress", &s(&color), &s(&pam)]));
    let bytes = std::fs::read(&pam).unwrap();
    let head = b"P7\nWIDTH 96\nHEIGHT 64\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n";
    assert_eq!(&bytes[..head.len()], head);
    assert_eq!(&bytes[head.len()..], &rgb.data[..]);

    // --format overrides the extension (or its absence), on files and on stdout.
    let cases: [(&str, &str, &[u8]); 6] = [
        ("noext", "jpeg", b"\xFF\xD8\xFF"),
        ("x.jxl", "webp", b"RIFF"),
        ("x.gif", "bmp", b"BM"),
        ("x.dat", "tiff", b"II*\0"),
        ("x.png", "ppm", b"P6\n"),
        ("-", "pgm", b"P5\n"),
    ];
    for (name, format, magic) in cases {
        let out = if name == "-" {
            "-".into()
        } else {
            s(&d.join(name))
        };
        let o = run(&[
            "decompress",
            &s(&color),
            &out,
            "--format",
            format,
            "--quiet",
        ]);
        ok(&o);
        let bytes = if name == "-" {
            o.stdout
        } else {
            std::fs::read(&out).unwrap()
        };
        assert_eq!(&bytes[..magic.len()], magic, "{name} --format {format}");
        if format != "pgm" {
            let back = diffc::Image::decode(&bytes).unwrap();
            assert_eq!((back.width, back.height), (96, 64), "{format}");
            if format != "jpeg" {
                assert_eq!(back.data, rgb.data, "{format} is lossless");
            }
        }
    }
    // Upper-case extensions and .jpg/.tif/.pnm are recognised.
    for (name, magic) in [
        ("UP.PNG", &b"\x89PNG"[..]),
        ("a.jpg", b"\xFF\xD8\xFF"),
        ("a.tif", b"II*\0"),
        ("a.pnm", b"P6\n"),
        ("a.webp", b"RIFF"),
    ] {
        let out = d.join(name);
        ok(&run(&["decompress", &s(&color), &s(&out), "--quiet"]));
        assert_eq!(
            &std::fs::read(&out).unwrap()[..magic.len()],
            magic,
            "{name}"
        );
    }

    // progressive --format writes netpbm files too.
    let prog = d.join("prog");
    ok(&run(&[
        "progressive",
        &s(&color),
        &s(&prog),
        "--format",
        "ppm",
        "--every",
        "100",
        "--quiet",
    ]));
    let mut names: Vec<String> = std::fs::read_dir(&prog)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.first().map(String::as_str), Some("step_000.ppm"));
    for n in &names {
        assert!(n.ends_with(".ppm"), "{names:?}");
        let (header, _) = pnm(&std::fs::read(prog.join(n)).unwrap());
        assert_eq!(header, "P6\n96 64\n255\n");
    }
}

#[test]
fn decompress_says_complete_partial_or_corrupt() {
    let d = dir("report");
    let dfc = stream(&d, "dragonfly_96x64.png");
    let bytes = std::fs::read(&dfc).unwrap();
    let ins = diffc::inspect(&bytes, &Limits::default()).unwrap();
    let n = ins.packets.len();
    let out = s(&d.join("out.png"));

    // Complete.
    let o = run(&["decompress", &s(&dfc), &out]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("complete ({n}/{n} steps, {} bytes)", bytes.len())),
        "{err}"
    );
    assert!(
        !err.contains("warning") && !err.contains("partial"),
        "{err}"
    );

    // Partial at a packet boundary: a success, but said so.
    let at = ins.packets[2].cumulative_bytes;
    let grid = ins.header.grid.steps;
    let o = run(&["decompress", &s(&dfc), &out, "--bytes", &at.to_string()]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "partial: stream ends after packet 3 at byte {at} (3 of up to {grid} steps)"
        )),
        "{err}"
    );
    assert!(!err.contains("complete"), "{err}");
    // Cut inside a packet: the incomplete bytes are counted.
    let o = run(&[
        "decompress",
        &s(&dfc),
        &out,
        "--bytes",
        &(at + 5).to_string(),
    ]);
    ok(&o);
    assert!(
        stderr(&o).contains(&format!(
            "partial: stream ends after packet 3 at byte {at} (3 of up to {grid} steps; 5 bytes of an incomplete packet ignored)"
        )),
        "{}",
        stderr(&o)
    );
    // Only the header.
    let o = run(&["decompress", &s(&dfc), &out, "--bytes", "48"]);
    ok(&o);
    assert!(
        stderr(&o).contains("partial: stream ends after the header at byte 48 (0 of up to"),
        "{}",
        stderr(&o)
    );
    // --strict makes a partial stream an error.
    let err = failed(&run(&[
        "decompress",
        &s(&dfc),
        &out,
        "--bytes",
        &at.to_string(),
        "--strict",
    ]));
    assert!(err.contains("partial: stream ends after packet 3"), "{err}");

    // Corrupt: a damaged byte inside the fourth packet.
    let start = ins.packets[2].cumulative_bytes;
    let mut bad = bytes.clone();
    bad[(start + ins.packets[3].cumulative_bytes) / 2] ^= 0x55;
    let bad_path = d.join("bad.dfc");
    std::fs::write(&bad_path, &bad).unwrap();
    let o = run(&["decompress", &s(&bad_path), &out]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.starts_with("warning:")
            && err.contains(&format!("corrupt: stopped at packet 4 (byte {start}): ")),
        "{err}"
    );
    // Warnings survive --quiet.
    let o = run(&["decompress", &s(&bad_path), &out, "--quiet"]);
    ok(&o);
    assert!(stderr(&o).contains("corrupt: stopped at packet 4"));
    let err = failed(&run(&["decompress", &s(&bad_path), &out, "--strict"]));
    assert!(err.contains("corrupt: stopped at packet 4"), "{err}");

    // Trailing bytes after the last packet.
    let padded = d.join("padded.dfc");
    std::fs::write(&padded, [&bytes[..], &[0u8; 7]].concat()).unwrap();
    let o = run(&["decompress", &s(&padded), &out, "--quiet"]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("complete ({n}/{n} steps, {} bytes)", bytes.len()))
            && err.contains("7 trailing bytes after the last packet"),
        "{err}"
    );
    let err = failed(&run(&["decompress", &s(&padded), &out, "--strict"]));
    assert!(err.contains("7 trailing bytes"), "{err}");

    // --quiet keeps a clean or partial decode silent.
    let dfc_s = s(&dfc);
    for extra in [&[][..], &["--bytes", "300"][..]] {
        let mut args = vec!["decompress", dfc_s.as_str(), out.as_str(), "--quiet"];
        args.extend_from_slice(extra);
        let o = run(&args);
        ok(&o);
        assert!(o.stderr.is_empty(), "{}", stderr(&o));
    }
}

#[test]
fn errors_name_paths_and_recognise_wrong_inputs() {
    let d = dir("errors");
    let dfc = stream(&d, "dragonfly_96x64.png");
    let out = s(&d.join("out.png"));
    let nothere = s(&d.join("nothere"));

    let err = failed(&run(&[
        "decompress",
        &s(&dfc),
        &out,
        "--model-file",
        &nothere,
    ]));
    assert!(
        err.contains(&format!("{nothere}: No such file or directory")),
        "{err}"
    );
    let err = failed(&run(&[
        "compress",
        &fixture("dragonfly_96x64.png"),
        &s(&d.join("x.dfc")),
        "--model-file",
        &nothere,
    ]));
    assert!(err.contains(&format!("{nothere}: No such file")), "{err}");
    let err = failed(&run(&[
        "eval",
        "--data",
        &nothere,
        "--out",
        &s(&d.join("e.csv")),
    ]));
    assert!(err.contains(&format!("{nothere}: No such file")), "{err}");
    let err = failed(&run(&[
        "train",
        "--data",
        &nothere,
        "--out",
        &s(&d.join("m.safetensors")),
    ]));
    assert!(err.contains(&format!("{nothere}: No such file")), "{err}");
    for cmd in ["decompress", "inspect"] {
        let mut args = vec![cmd, nothere.as_str()];
        if cmd == "decompress" {
            args.push(out.as_str());
        }
        let err = failed(&run(&args));
        assert!(err.contains(&format!("{nothere}: No such file")), "{err}");
    }
    let err = failed(&run(&["compress", &nothere, &s(&d.join("x.dfc"))]));
    assert!(err.contains(&format!("{nothere}: No such file")), "{err}");

    // Images given where a stream is expected are named, before any parsing.
    let png = fixture("dragonfly_96x64.png");
    let jpeg = d.join("photo.jpg");
    ok(&run(&["decompress", &s(&dfc), &s(&jpeg), "--quiet"]));
    for (input, kind) in [(png.clone(), "PNG"), (s(&jpeg), "JPEG")] {
        for cmd in ["decompress", "inspect"] {
            let mut args = vec![cmd, input.as_str()];
            if cmd == "decompress" {
                args.push(out.as_str());
            }
            let err = failed(&run(&args));
            assert!(
                err.contains(&format!(
                    "{input}: not a diffc stream (this looks like a {kind} image; did you mean `diffc compress`?)"
                )),
                "{err}"
            );
        }
    }
    let junk = d.join("junk.dfc");
    std::fs::write(&junk, b"this is not a stream").unwrap();
    let err = failed(&run(&["inspect", &s(&junk)]));
    assert!(err.contains("junk.dfc: not a diffc stream"), "{err}");
    // A stream given to compress.
    let err = failed(&run(&["compress", &s(&dfc), &s(&d.join("y.dfc"))]));
    assert!(
        err.contains("is a diffc stream") && err.contains("diffc decompress"),
        "{err}"
    );
    // An input that is no image at all names the path.
    let err = failed(&run(&[
        "compress",
        &s(&junk),
        &s(&d.join("y.dfc")),
        "--model",
        "gauss",
    ]));
    assert!(err.contains("junk.dfc:"), "{err}");
    // A stream cut inside its header names the input.
    let short = d.join("short.dfc");
    std::fs::write(&short, &std::fs::read(&dfc).unwrap()[..20]).unwrap();
    let err = failed(&run(&["decompress", &s(&short), &out]));
    assert!(err.contains("short.dfc: truncated stream"), "{err}");
}

#[test]
fn sniff_names_common_formats() {
    use diffc::image_io::sniff;
    assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("PNG"));
    assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), Some("JPEG"));
    assert_eq!(sniff(b"GIF89a...."), Some("GIF"));
    assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("WebP"));
    assert_eq!(sniff(b"\0\0\0\x1cftypavif"), Some("AVIF"));
    assert_eq!(sniff(b"\xFF\x0A...."), Some("JPEG XL"));
    assert_eq!(sniff(b"P6\n96 64\n255\n"), Some("PNM"));
    assert_eq!(sniff(b"DIFC\x01"), Some("diffc stream"));
    assert_eq!(sniff(b"hello"), None);
    assert_eq!(sniff(b""), None);
}
