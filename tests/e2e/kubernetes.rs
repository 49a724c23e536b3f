//! The Kustomize base (`deploy/kubernetes/base`), rendered by Debian's `kubectl
//! kustomize`, and what it must keep true: the probes read the admin listener's
//! `/readyz` and `/healthz` on the port the configuration listens on, the pod runs as
//! the image's user with a read-only root filesystem, two replicas with a disruption
//! budget, a grace period longer than the drain, trusted proxies that are not everyone,
//! and a ConfigMap whose configuration `verdict check` accepts. And the gateway examples
//! point at verdict's endpoints.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::*;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The base as `kubectl kustomize` renders it, one document per object.
fn rendered() -> Option<Vec<Yaml>> {
    let kubectl = require_binary("kubectl", &["/usr/bin/kubectl"])?;
    let out = std::process::Command::new(kubectl)
        .args(["kustomize"])
        .arg(repo("deploy/kubernetes/base"))
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(YamlLoader::load_from_str(&String::from_utf8_lossy(&out.stdout)).expect("YAML"))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn the_kubernetes_base_renders_and_keeps_its_promises() {
    let Some(docs) = rendered() else {
        return;
    };
    let deployment = of_kind(&docs, "Deployment")[0];
    let spec = &deployment["spec"];
    assert!(
        spec["replicas"].as_i64().unwrap() >= 2,
        "at least two replicas"
    );
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];

    // the configuration the ConfigMap holds: verdict check accepts it
    let configmap = of_kind(&docs, "ConfigMap")[0];
    let text = configmap["data"]["verdict.toml"]
        .as_str()
        .expect("verdict.toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("verdict.toml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verdict check refuses the ConfigMap's configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = verdict::config::Config::load(&verdict::config::Source {
        file: Some(file.clone()),
        env: Some(Default::default()),
    })
    .unwrap();

    // the container's ports are the configuration's listeners
    let port_named = |name: &str| {
        container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port {name}"))
    };
    assert_eq!(
        port_named("decisions"),
        i64::from(config.server.listen.port())
    );
    assert_eq!(
        port_named("admin"),
        i64::from(config.server.admin_listen.port())
    );
    // the probes read the admin listener
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("admin"), "{probe}");
    }
    // the configuration is mounted where the arguments say
    let args: Vec<&str> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mounted = container["volumeMounts"].as_vec().unwrap().iter().any(|m| {
        m["name"].as_str() == Some("config")
            && config_path.starts_with(m["mountPath"].as_str().unwrap())
    });
    assert!(mounted, "the ConfigMap is mounted where --config points");
    assert!(config.server.watch, "a ConfigMap change reloads in place");

    // the image's user, never root, a read-only root filesystem
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let uid: i64 = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .and_then(|u| u.split(':').next())
        .and_then(|u| u.trim().parse().ok())
        .expect("the Dockerfile's USER");
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(uid));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(
        container["resources"]["limits"]["memory"]
            .as_str()
            .is_some()
    );

    // a stop drains within the grace period, the preStop pause included
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap_or(0);
    assert!(
        grace > config.server.drain_timeout.as_secs() as i64 + pause,
        "terminationGracePeriodSeconds {grace} must exceed drain_timeout + preStop"
    );

    // forwarded facts trusted from the pod network only, never from everyone
    let trusted = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("VERDICT__SERVER__TRUSTED_PROXIES"))
        .and_then(|e| e["value"].as_str())
        .expect("trusted proxies set");
    for everyone in ["0.0.0.0/0", "::/0"] {
        assert!(!trusted.contains(everyone), "trusted_proxies: {trusted}");
    }
    let with_env = verdict::config::Config::load(&verdict::config::Source {
        file: Some(file),
        env: Some(
            [(
                "VERDICT__SERVER__TRUSTED_PROXIES".to_string(),
                trusted.to_string(),
            )]
            .into_iter()
            .collect(),
        ),
    });
    assert!(with_env.is_ok(), "{:?}", with_env.err());

    // a disruption budget over the same pods; the Services select them too
    let labels = &spec["selector"]["matchLabels"];
    let pdb = of_kind(&docs, "PodDisruptionBudget")[0];
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert!(pdb["spec"]["minAvailable"].as_i64().unwrap() >= 1);
    for service in of_kind(&docs, "Service") {
        for (key, value) in labels.as_hash().unwrap() {
            assert_eq!(&service["spec"]["selector"][key.as_str().unwrap()], value);
        }
    }
    // the secrets come from a Secret, never from the ConfigMap
    assert!(
        pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|v| !v["secret"]["secretName"].is_badvalue())
    );
    assert!(!text.contains("secret = "));
}

#[test]
fn the_gateway_examples_point_at_verdicts_endpoints() {
    let read = |name: &str| {
        let text =
            std::fs::read_to_string(repo(&format!("deploy/kubernetes/gateways/{name}"))).unwrap();
        let docs = YamlLoader::load_from_str(&text).expect("YAML");
        (text, docs)
    };
    let (_, traefik) = read("traefik.yaml");
    let forward = &traefik[0]["spec"]["forwardAuth"];
    assert!(
        forward["address"]
            .as_str()
            .unwrap()
            .ends_with(":8080/_resolver/forward-auth")
    );
    assert_eq!(forward["trustForwardHeader"].as_bool(), Some(false));
    let (_, eg) = read("envoy-gateway.yaml");
    assert_eq!(eg[0]["spec"]["extAuth"]["failOpen"].as_bool(), Some(false));
    assert_eq!(
        eg[0]["spec"]["extAuth"]["http"]["path"].as_str(),
        Some("/_resolver/ext-authz")
    );
    assert_eq!(eg[1]["spec"]["extAuth"]["failOpen"].as_bool(), Some(false));
    let (istio_text, istio) = read("istio.yaml");
    assert_eq!(istio[0]["spec"]["action"].as_str(), Some("CUSTOM"));
    assert!(istio_text.contains("pathPrefix: /_resolver/ext-authz"));
    let (_, contour) = read("contour.yaml");
    assert_eq!(contour[0]["kind"].as_str(), Some("ExtensionService"));
    assert_eq!(
        contour[1]["spec"]["virtualhost"]["authorization"]["failOpen"].as_bool(),
        Some(false)
    );
    // every example copies the same identity headers the shipped proxies do
    for name in ["traefik.yaml", "envoy-gateway.yaml", "istio.yaml"] {
        let (text, _) = read(name);
        for header in ["x-authgear-user-id", "x-authgear-user-roles"] {
            assert!(text.contains(header), "{name} does not pass {header} on");
        }
    }
}
