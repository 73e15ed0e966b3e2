//! Deployment files checked without a container engine: docker-compose.yml's structure
//! against the README and deploy/, the Dockerfile's references, and the Grafana
//! dashboard and spec/metrics.md against a real server's `/metrics`.

use pedigree_tests::{get, write_log_key, Server, E2E_ORIGIN};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn strings(node: &Yaml) -> Vec<String> {
    node.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The string value of `key = "..."` in a TOML file.
fn toml_string(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} in TOML"))
        .to_string()
}

#[test]
fn compose_file_runs_the_three_services_with_volumes_config_health_and_documented_ports() {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml")).expect("compose YAML");
    let compose = &docs[0];
    let services = &compose["services"];
    let readme = read("README.md");
    let run_section = readme
        .split("## Run the stack")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a \"Run the stack\" section");
    // service, its config file, its named volume and mount point, its published port
    let expected = [
        (
            "pedigree-server",
            "server.toml",
            "server-data:/var/lib/pedigree/server-data",
            Some("8080:8080"),
        ),
        (
            "pedigree-witness",
            "witness.toml",
            "witness-state:/var/lib/pedigree/witness-state",
            Some("7380:7380"),
        ),
        (
            "pedigree-monitor",
            "monitor.toml",
            "monitor-state:/var/lib/pedigree/monitor-state",
            None,
        ),
    ];
    let declared: BTreeSet<String> = compose["volumes"]
        .as_hash()
        .expect("top-level volumes")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for (name, config, volume, port) in expected {
        let s = &services[name];
        assert!(s.as_hash().is_some(), "service {name} missing");
        let volumes = strings(&s["volumes"]);
        assert!(
            volumes.iter().any(|v| v == volume),
            "{name} volumes {volumes:?}"
        );
        let named = volume.split(':').next().unwrap();
        assert!(declared.contains(named), "volume {named} not declared");
        assert!(
            volumes.iter().any(|v| v == "./deploy:/etc/pedigree:ro"),
            "{name} does not mount deploy/ read-only: {volumes:?}"
        );
        assert!(
            volumes
                .iter()
                .any(|v| v.starts_with("public-keys:") && v.ends_with(":ro")),
            "{name} does not read the public keys: {volumes:?}"
        );
        let command = strings(&s["command"]);
        assert!(
            command.contains(&format!("/etc/pedigree/{config}")),
            "{name} command {command:?} does not use {config}"
        );
        assert!(
            repo().join("deploy").join(config).is_file(),
            "deploy/{config} missing"
        );
        assert!(
            run_section.contains(config),
            "README does not name {config}"
        );
        let test = strings(&s["healthcheck"]["test"]);
        assert!(!test.is_empty(), "{name} has no health check");
        assert_eq!(
            s["restart"].as_str(),
            Some("unless-stopped"),
            "{name} restart"
        );
        let ports = strings(&s["ports"]);
        match port {
            Some(p) => {
                assert_eq!(ports, [p], "{name} ports");
                let host = p.split(':').next().unwrap();
                assert!(
                    run_section.contains(host),
                    "README does not document port {host}"
                );
            }
            None => assert!(ports.is_empty(), "{name} publishes {ports:?}"),
        }
    }
    // Overrides point at the other services by name; the monitor's peer is the witness's
    // view of the origin server.toml configures.
    let origin = toml_string(&read("deploy/server.toml"), "origin");
    let origin_hash = hex::encode(Sha256::digest(origin.as_bytes()));
    let peer = services["pedigree-monitor"]["environment"]["PEDIGREE_MONITOR_PEER"]
        .as_str()
        .expect("monitor peer");
    assert_eq!(peer, format!("http://pedigree-witness:7380/{origin_hash}"));
    assert!(read("deploy/monitor.toml").contains(&origin_hash));
    assert_eq!(
        services["pedigree-monitor"]["environment"]["PEDIGREE_MONITOR_LOG"].as_str(),
        Some("http://pedigree-server:8080")
    );
    // The one-shot key step runs the same script as scripts/stack.sh.
    assert_eq!(
        strings(&services["pedigree-init"]["command"]),
        ["pedigree-init", "/etc/pedigree"]
    );
    assert!(read("scripts/stack.sh").contains("deploy/init.sh"));
}

#[test]
fn dockerfile_copies_files_that_exist_and_builds_the_binaries_it_ships() {
    let dockerfile = read("Dockerfile");
    let mut copied = 0;
    for line in dockerfile.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "Dockerfile copies missing {source}"
            );
            copied += 1;
        }
    }
    assert!(copied >= 8, "only {copied} COPY sources");
    // The binaries it ships are the workspace's [[bin]] targets it builds.
    assert!(dockerfile.contains("-p pedigree-server -p pedigree-cli"));
    for (bin, manifest) in [
        ("pedigree-server", "server/Cargo.toml"),
        ("pedigree", "cli/Cargo.toml"),
    ] {
        assert!(
            read(manifest).contains(&format!("name = \"{bin}\"")),
            "{manifest}"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{bin}")),
            "{bin} not shipped"
        );
    }
    // Every workspace member is copied, or `cargo build --locked` cannot load the workspace.
    for member in ["core", "server", "cli", "tests", "bench"] {
        assert!(
            dockerfile.contains(&format!("COPY {member} {member}")),
            "{member}"
        );
    }
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("USER pedigree"));
    assert!(dockerfile.contains("libclang-dev"));
}

/// Metric names of a `/metrics` text, as sample lines spell them.
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

/// Words `pedigree_...` in a text.
fn metric_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pedigree_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn dashboard_queries_and_metrics_doc_name_only_metrics_a_server_exports() {
    let dir = tempfile::tempdir().unwrap();
    write_log_key(dir.path(), 61, E2E_ORIGIN);
    // A witness that never answers, so the witness metrics are exported too.
    let witness = pedigree_core::witness::WitnessSigner::new(
        "w.example/dash",
        ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
    )
    .unwrap()
    .verifier()
    .to_vkey();
    let server = Server::start(
        dir.path(),
        &["--witness", &format!("w1=http://127.0.0.1:9={witness}")],
    );
    assert_eq!(get(&format!("{}/healthz", server.url)).0, 200);
    let (status, body) = get(&format!("{}/metrics", server.url));
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    let names = exported(&metrics);

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/pedigree-dashboard.json"))
            .expect("dashboard JSON");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queried.extend(metric_words(target["expr"].as_str().expect("expr")));
        }
    }
    assert!(queried.len() >= 8, "dashboard queries {queried:?}");
    for name in &queried {
        assert!(
            names.contains(name),
            "dashboard queries {name}, /metrics has {names:?}"
        );
    }

    // spec/metrics.md documents every family /metrics exports, and nothing else.
    let families: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    let documented = metric_words(&read("spec/metrics.md"));
    for family in &families {
        assert!(
            documented.contains(family),
            "spec/metrics.md does not document {family}"
        );
    }
    for name in &documented {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            families.contains(family) || families.contains(name),
            "spec/metrics.md names {name}, which /metrics does not export"
        );
    }
}
