//! Real clients against zipgate, each a script under tests/clients/ that
//! exits 0 when all its checks pass: Box's official SDKs (Python `boxsdk`
//! 10.x and the legacy 3.x, Node `box-node-sdk` and `box-typescript-sdk-gen`),
//! ONLYOFFICE's DocSpace SDK (`docspace-api-sdk`), and clients written the way
//! ONLYOFFICE's Android app and DocSpace web client, an XML consumer and
//! Oracle's cec toolkit talk.
//! Pinned in tests/requirements.txt, tests/requirements-boxsdk3.txt (a venv of
//! its own, .venv-boxsdk3: both boxsdk lines are the distribution `boxsdk`),
//! tests/requirements-onlyoffice-pypi.txt (.venv-onlyoffice-pypi: PyPI's
//! Workspace clients `onlyoffice` and `pyonlyoffice`, whose requests<2.29
//! cannot join .venv) and tests/clients/package.json, installed by tests/run.
//!
//! Every script runs three times: against the embedded default fixture,
//! against the same tree as files served with `--root`, and from an S3
//! bucket (moto) served with `--store`, both with the fixture's users and
//! rules as a policy and its ids as an id map, as a migration leaves them.
//! One script per dialect runs a fourth time, through HAProxy in front of
//! two replicas sharing their jobs in Redis (`common::replicas`), each of
//! its requests landing on the next replica.
//! Each archive a script opens is kept (ZIPGATE_KEEP_ARCHIVES), and the
//! stores' archives must hold the fixture run's entries: the same names in
//! the same order, with the same mtimes, extra fields and bytes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::as_store::{default_fixture_files, FixtureFiles};
use common::replicas::Replicas;
use common::s3::S3Server;
use common::{serve_binary_env, zip_entries, Running, ZipEntry};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which installs the clients",
        path.display()
    );
    path
}

fn python() -> PathBuf {
    require(root().join(".venv/bin/python"))
}

/// The venv with the legacy `boxsdk==3.14.0`.
fn legacy_python() -> PathBuf {
    require(root().join(".venv-boxsdk3/bin/python"))
}

/// The venv with PyPI's Workspace clients `onlyoffice==0.1.0` and
/// `pyonlyoffice==0.0.4`.
fn onlyoffice_pypi_python() -> PathBuf {
    require(root().join(".venv-onlyoffice-pypi/bin/python"))
}

/// Node, once the package a script needs is installed next to the scripts.
fn node(package: &str) -> PathBuf {
    require(root().join("tests/clients/node_modules").join(package));
    PathBuf::from("node")
}

/// Where the tree comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Fixture,
    Directory,
    Bucket,
    /// The fixture, on two replicas behind a load balancer.
    Replicas,
}

const EVERY_STORE: &[Source] = &[Source::Fixture, Source::Directory, Source::Bucket];
const AND_REPLICAS: &[Source] = &[
    Source::Fixture,
    Source::Directory,
    Source::Bucket,
    Source::Replicas,
];

/// What a script talks to: one server, or replicas behind HAProxy.
enum Served {
    One(Running),
    Replicas(Replicas),
}

impl Served {
    fn addr(&self) -> &str {
        match self {
            Served::One(running) => &running.addr,
            Served::Replicas(replicas) => &replicas.addr,
        }
    }
}

/// The default fixture as files, and a bucket seeded with them: made once
/// for all the tests here (the bucket's server stops with the process).
struct Stores {
    files: FixtureFiles,
    s3: S3Server,
}

fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        let files = default_fixture_files("clients-fixture-as-store");
        let s3 = S3Server::moto();
        s3.seed(&["seed", "fixture", files.root.to_str().unwrap()]);
        Stores { files, s3 }
    })
}

/// `zipgate serve ARGS` on `source`.
fn serve(source: Source, args: &[&str]) -> Served {
    let mut all: Vec<String> = Vec::new();
    let mut env = Vec::new();
    match source {
        Source::Replicas => return Served::Replicas(Replicas::start(args)),
        Source::Fixture => {}
        Source::Directory | Source::Bucket => {
            let stores = stores();
            match source {
                Source::Directory => {
                    all.extend(["--root".into(), path(&stores.files.root)]);
                }
                _ => {
                    let url = format!("s3://{}/fixture", common::s3::BUCKET);
                    all.extend(["--store".into(), url, "--store-mtime-metadata".into()]);
                    env = stores.s3.env();
                }
            }
            all.extend([
                "--policy".into(),
                path(&stores.files.policy),
                "--id-map".into(),
                path(&stores.files.id_map),
                "--crc-cache".into(),
                "memory".into(),
            ]);
        }
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Served::One(serve_binary_env(&all, &env))
}

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Runs `script BASE_URL SCRIPT_ARGS` against a server started with
/// `server_args` on each store, and compares the archives it opened.
fn run_client(program: PathBuf, script: &str, script_args: &[&str], server_args: &[&str]) {
    run_client_on(EVERY_STORE, program, script, script_args, server_args);
}

/// [`run_client`] on `sources`.
fn run_client_on(
    sources: &[Source],
    program: PathBuf,
    script: &str,
    script_args: &[&str],
    server_args: &[&str],
) {
    let label = std::iter::once(script)
        .chain(script_args.iter().copied())
        .collect::<Vec<_>>()
        .join("-");
    let mut runs = Vec::new();
    for &source in sources {
        let server = serve(source, server_args);
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("client-archives")
            .join(format!("{label}-{source:?}"));
        let _ = std::fs::remove_dir_all(&kept);
        std::fs::create_dir_all(&kept).unwrap();
        let mut command = Command::new(&program);
        command
            .arg(root().join("tests/clients").join(script))
            .arg(format!("http://{}", server.addr()))
            .args(script_args)
            .env("ZIPGATE_KEEP_ARCHIVES", &kept);
        if let Served::Replicas(replicas) = &server {
            // The journal is each replica's own: the harness reads them all.
            command.env("ZIPGATE_REPLICAS", replicas.direct_urls());
        }
        let output = command.output().expect("the client runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{script} against the {source:?} failed:\n{text}"
        );
        println!("{source:?}:\n{text}");
        runs.push((source, archives(&kept)));
    }
    let (_, fixture) = &runs[0];
    for (source, archives) in &runs[1..] {
        assert_eq!(
            archives.len(),
            fixture.len(),
            "{script} opened another number of archives against the {source:?}"
        );
        for (n, (ours, theirs)) in archives.iter().zip(fixture).enumerate() {
            let mut ours = ours.clone();
            if matches!(source, Source::Replicas) {
                // A name Box draws for a conflicting item comes from the
                // drawing replica's own block of draws: another name, of
                // the same shape, for the same entry.
                for (a, b) in ours.iter_mut().zip(theirs) {
                    if drawn_alike(&a.name, &b.name) {
                        a.name = b.name.clone();
                    }
                }
            }
            let ours = &ours;
            let names = |all: &[ZipEntry]| all.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
            assert_eq!(
                names(ours),
                names(theirs),
                "{script}: archive {} from the {source:?}",
                n + 1
            );
            for (a, b) in ours.iter().zip(theirs) {
                assert!(
                    a == b,
                    "{script}: archive {}, {} from the {source:?} differs:\n{a:?}\nfrom the fixture:\n{b:?}",
                    n + 1,
                    a.name
                );
            }
        }
    }
}

/// Two names that may both be random draws for one entry: in the same
/// folder, of the same length and extension, lower-case letters and digits
/// before it.
fn drawn_alike(a: &str, b: &str) -> bool {
    let split = |name: &str| {
        let (folder, file) = name.rsplit_once('/').unwrap_or(("", name));
        let (stem, extension) = file.rsplit_once('.').unwrap_or((file, ""));
        (folder.to_owned(), stem.to_owned(), extension.to_owned())
    };
    let ((fa, sa, ea), (fb, sb, eb)) = (split(a), split(b));
    let drawn = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    fa == fb && ea == eb && sa.len() == sb.len() && drawn(&sa) && drawn(&sb)
}

/// The entries of every archive kept in `dir`, in the order opened.
fn archives(dir: &Path) -> Vec<Vec<ZipEntry>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| zip_entries(std::fs::read(file).unwrap()))
        .collect()
}

#[test]
fn box_python_sdk() {
    run_client_on(AND_REPLICAS, python(), "box_python.py", &[], &[]);
}

#[test]
fn box_node_sdk() {
    run_client(node("box-node-sdk"), "box_node.js", &[], &[]);
}

#[test]
fn box_legacy_python_sdk() {
    run_client(legacy_python(), "box_legacy_python.py", &[], &[]);
}

#[test]
fn box_typescript_sdk() {
    run_client(
        node("box-typescript-sdk-gen"),
        "box_typescript.js",
        &[],
        &[],
    );
}

const WORKSPACE: &[&str] = &["--set", "onlyoffice.flavour=workspace"];
const DOCSPACE: &[&str] = &["--set", "onlyoffice.flavour=docspace"];

#[test]
fn onlyoffice_workspace_as_the_android_app_talks() {
    run_client_on(
        AND_REPLICAS,
        python(),
        "onlyoffice_android.py",
        &[],
        WORKSPACE,
    );
}

#[test]
fn onlyoffice_workspace_in_xml() {
    run_client(python(), "onlyoffice_xml.py", &[], WORKSPACE);
}

/// PyPI's Workspace clients `onlyoffice` and `pyonlyoffice` fetch the archive
/// at their own `filehandler.ashx?action=bulk&ext=.zip`, never the operation's
/// url. A v12 portal (the default) answers that link with an empty 404, which
/// both write out as an empty file while `download` returns True.
#[test]
fn onlyoffice_workspace_pypi_clients_get_the_v12_404() {
    run_client(
        onlyoffice_pypi_python(),
        "onlyoffice_pypi.py",
        &[],
        WORKSPACE,
    );
}

/// The same clients against `bulk_link_v11=true`: a v11 portal serves the
/// newest archive at the legacy link, and both get the zip.
#[test]
fn onlyoffice_workspace_pypi_clients_on_a_v11_portal() {
    run_client(
        onlyoffice_pypi_python(),
        "onlyoffice_pypi.py",
        &["v11"],
        &[WORKSPACE, &["--set", "onlyoffice.bulk_link_v11=true"]].concat(),
    );
}

#[test]
fn onlyoffice_docspace_python_sdk() {
    run_client(python(), "onlyoffice_docspace.py", &[], DOCSPACE);
}

/// DocSpace's own web client (DocSpace-client's axios `api/2.0` client, the
/// `asc_auth_key` cookie): the Download dialog's and multi-select's
/// bulkdownload, the fileops poll, the archive url; a stale cookie is a guest.
#[test]
fn onlyoffice_docspace_web_client_sequence() {
    run_client(node("axios"), "onlyoffice_docspace_web.js", &[], DOCSPACE);
}

#[test]
fn oracle_as_the_cec_toolkit_talks() {
    run_client_on(AND_REPLICAS, python(), "oracle_cec.py", &[], &[]);
}

/// The cec toolkit's own request layer: its `exeo`/`exeg`/`exed` requests
/// through node-fetch 2.7.0, the version the toolkit pins.
#[test]
fn oracle_as_the_cec_toolkit_talks_through_node_fetch() {
    run_client(node("node-fetch"), "oracle_cec.js", &[], &[]);
}

#[test]
fn itslearning_as_the_typescript_sdk_talks() {
    run_client(
        node("axios-itslearning-sdk"),
        "itslearning_axios.js",
        &[],
        &[],
    );
}

#[test]
fn itslearning_in_xml() {
    run_client_on(AND_REPLICAS, python(), "itslearning_xml.py", &[], &[]);
}

#[test]
fn dropbox_python_sdk() {
    run_client_on(AND_REPLICAS, python(), "dropbox_python.py", &[], &[]);
}
