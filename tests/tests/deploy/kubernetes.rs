//! `examples/kubernetes/`: references between the manifests, and agreement with the server and
//! the Dockerfile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use crate::compose::image_name;
use crate::dockerfile::{non_root_uid, stage, stages};
use crate::support::{Help, at, scalar, strings, walk, workspace_root, yaml_documents};
use crate::{BINARY, KUBERNETES_DIR, SERVER_IMAGE};

/// Every manifest of `examples/kubernetes`, with the file it is in.
pub(crate) fn manifests() -> Vec<(String, Value)> {
    let dir = workspace_root().join(KUBERNETES_DIR);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/kubernetes")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|file| {
            yaml_documents(&Path::new(KUBERNETES_DIR).join(&file))
                .into_iter()
                .map(move |document| (file.clone(), document))
        })
        .collect()
}

pub(crate) fn of_kind<'m>(manifests: &'m [(String, Value)], kind: &str) -> Vec<&'m Value> {
    manifests
        .iter()
        .map(|(_, m)| m)
        .filter(|m| scalar(at(m, &["kind"])).as_deref() == Some(kind))
        .collect()
}

pub(crate) fn name_of(manifest: &Value) -> String {
    scalar(at(manifest, &["metadata", "name"])).expect("metadata.name")
}

/// Name → keys of every Secret or ConfigMap (`kind`).
pub(crate) fn key_sets(
    manifests: &[(String, Value)],
    kind: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    of_kind(manifests, kind)
        .into_iter()
        .map(|m| {
            let keys = ["data", "stringData", "binaryData"]
                .iter()
                .filter_map(|field| at(m, &[field]).as_mapping())
                .flat_map(|map| map.keys().filter_map(Value::as_str).map(str::to_owned))
                .collect();
            (name_of(m), keys)
        })
        .collect()
}

/// The pod specs of every Deployment and CronJob, with the workload's name.
pub(crate) fn pod_specs(manifests: &[(String, Value)]) -> Vec<(String, &Value)> {
    let deployments = of_kind(manifests, "Deployment")
        .into_iter()
        .map(|d| (name_of(d), at(d, &["spec", "template", "spec"])));
    let cronjobs = of_kind(manifests, "CronJob").into_iter().map(|c| {
        (
            name_of(c),
            at(c, &["spec", "jobTemplate", "spec", "template", "spec"]),
        )
    });
    deployments.chain(cronjobs).collect()
}

/// The containers (of the server's image) in a pod spec.
pub(crate) fn server_containers(pod: &Value) -> Vec<&Value> {
    at(pod, &["containers"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|c| image_name(at(c, &["image"])) == SERVER_IMAGE)
        .collect()
}

/// The environment a container gets: `envFrom` ConfigMaps and literal `env` values (values
/// from Secrets as `None`).
pub(crate) fn container_environment(
    manifests: &[(String, Value)],
    container: &Value,
) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for source in at(container, &["envFrom"])
        .as_sequence()
        .into_iter()
        .flatten()
    {
        if let Some(name) = scalar(at(source, &["configMapRef", "name"])) {
            let config_map = of_kind(manifests, "ConfigMap")
                .into_iter()
                .find(|m| name_of(m) == name)
                .unwrap_or_else(|| panic!("envFrom names an unknown ConfigMap {name}"));
            for (k, v) in at(config_map, &["data"]).as_mapping().into_iter().flatten() {
                env.insert(k.as_str().unwrap_or_default().to_owned(), scalar(v));
            }
        }
        if let Some(name) = scalar(at(source, &["secretRef", "name"])) {
            for key in key_sets(manifests, "Secret")
                .get(&name)
                .unwrap_or_else(|| panic!("envFrom names an unknown Secret {name}"))
            {
                env.insert(key.clone(), None);
            }
        }
    }
    for var in at(container, &["env"]).as_sequence().into_iter().flatten() {
        let name = scalar(at(var, &["name"])).expect("env[].name");
        let value = scalar(at(var, &["value"]));
        let from_config_map = at(var, &["valueFrom", "configMapKeyRef"]);
        let value = value.or_else(|| {
            let name = scalar(at(from_config_map, &["name"]))?;
            let key = scalar(at(from_config_map, &["key"]))?;
            of_kind(manifests, "ConfigMap")
                .into_iter()
                .find(|m| name_of(m) == name)
                .and_then(|m| scalar(at(m, &["data", &key])))
        });
        env.insert(name, value);
    }
    env
}

#[test]
fn references_resolve_and_kustomization_lists_every_manifest() {
    let manifests = manifests();
    for (file, manifest) in &manifests {
        for field in ["apiVersion", "kind"] {
            assert!(scalar(at(manifest, &[field])).is_some(), "{file}: {field}");
        }
        assert!(
            scalar(at(manifest, &["metadata", "name"])).is_some()
                || scalar(at(manifest, &["kind"])).as_deref() == Some("Kustomization"),
            "{file}: metadata.name"
        );
    }

    let kustomization = of_kind(&manifests, "Kustomization");
    assert_eq!(kustomization.len(), 1, "one kustomization.yaml");
    let listed: BTreeSet<String> = strings(at(kustomization[0], &["resources"]))
        .into_iter()
        .collect();
    let files: BTreeSet<String> = manifests
        .iter()
        .filter(|(_, m)| scalar(at(m, &["kind"])).as_deref() != Some("Kustomization"))
        .map(|(file, _)| file.clone())
        .collect();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest");
    let images: BTreeSet<String> = at(kustomization[0], &["images"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|image| scalar(at(image, &["name"])))
        .collect();
    assert!(
        images.contains(SERVER_IMAGE),
        "kustomization sets the server's image"
    );

    let secrets = key_sets(&manifests, "Secret");
    let config_maps = key_sets(&manifests, "ConfigMap");
    let mut references = 0;
    for (file, manifest) in &manifests {
        walk(manifest, "", &mut |key, value| {
            let resolve = |kind: &str,
                           names: &BTreeMap<String, BTreeSet<String>>,
                           name_field: &str,
                           keys: Vec<String>| {
                let name = scalar(at(value, &[name_field]))
                    .unwrap_or_else(|| panic!("{file}: {key} without {name_field}"));
                let defined = names.get(&name).unwrap_or_else(|| {
                    panic!("{file}: {key} names {kind} {name}, which no manifest defines")
                });
                for k in keys {
                    assert!(
                        defined.contains(&k),
                        "{file}: {key} reads key {k} of {kind} {name}, which has {defined:?}"
                    );
                }
            };
            let key_field = || scalar(at(value, &["key"])).into_iter().collect::<Vec<_>>();
            let item_keys = || {
                at(value, &["items"])
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|item| scalar(at(item, &["key"])))
                    .collect::<Vec<_>>()
            };
            match key {
                "secretKeyRef" => resolve("Secret", &secrets, "name", key_field()),
                "configMapKeyRef" => resolve("ConfigMap", &config_maps, "name", key_field()),
                "secretRef" => resolve("Secret", &secrets, "name", Vec::new()),
                "configMapRef" => resolve("ConfigMap", &config_maps, "name", Vec::new()),
                "secret" if value.get("secretName").is_some() => {
                    resolve("Secret", &secrets, "secretName", item_keys());
                }
                "configMap" if value.get("name").is_some() => {
                    resolve("ConfigMap", &config_maps, "name", item_keys());
                }
                _ => return,
            }
            references += 1;
        });
    }
    assert!(
        references >= 4,
        "the manifests use their Secret and ConfigMap"
    );
}

#[tokio::test]
async fn ports_probes_and_users_match_the_server_and_the_dockerfile() {
    let help = Help::of(BINARY).await;
    let manifests = manifests();
    let stages = stages();
    let image_uid = non_root_uid(&stages, stage(&stages, "server"));

    let deployments = of_kind(&manifests, "Deployment");
    assert_eq!(deployments.len(), 1);
    let deployment = deployments[0];
    assert_eq!(
        at(deployment, &["spec", "replicas"]).as_u64(),
        Some(2),
        "two replicas"
    );
    let pod = at(deployment, &["spec", "template", "spec"]);
    let pod_labels = at(deployment, &["spec", "template", "metadata", "labels"])
        .as_mapping()
        .expect("pod labels");
    for (k, v) in at(deployment, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .expect("selector")
    {
        assert_eq!(pod_labels.get(k), Some(v), "the selector matches the pods");
    }
    let containers = server_containers(pod);
    assert_eq!(containers.len(), 1, "one server container");
    let container = containers[0];
    let env = container_environment(&manifests, container);
    let setting = |name: &str| -> Option<String> {
        env.get(name)
            .cloned()
            .flatten()
            .or_else(|| help.default_of(name).map(str::to_owned))
    };

    // Ports: the server's default for the external API; INTERNAL_PORT apart, on all interfaces.
    let port = setting("PORT").expect("PORT");
    assert_eq!(port, "8080");
    let internal_port = setting("INTERNAL_PORT").expect("INTERNAL_PORT is set");
    assert_ne!(internal_port, port);
    let internal_host = setting("INTERNAL_HOST").unwrap_or_default();
    assert!(
        !internal_host.starts_with("127.") && internal_host != "localhost",
        "INTERNAL_HOST={internal_host}: the internal Service cannot reach a loopback listener"
    );
    let container_ports: BTreeMap<String, String> = at(container, &["ports"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                scalar(at(p, &["name"]))?,
                scalar(at(p, &["containerPort"]))?,
            ))
        })
        .collect();
    assert_eq!(container_ports.get("http"), Some(&port));
    assert_eq!(container_ports.get("internal"), Some(&internal_port));
    let resolve_port =
        |port: &Value| scalar(port).map(|p| container_ports.get(&p).cloned().unwrap_or(p));

    // Probes: liveness on /health, readiness on /health/ready, both on the external port.
    for (probe, path) in [
        ("livenessProbe", "/health"),
        ("readinessProbe", "/health/ready"),
    ] {
        let get = at(container, &[probe, "httpGet"]);
        assert_eq!(scalar(at(get, &["path"])).as_deref(), Some(path), "{probe}");
        assert_eq!(
            resolve_port(at(get, &["port"])),
            Some(port.clone()),
            "{probe} port"
        );
    }

    // Security: the image's non-root uid, no escalation, a read-only root filesystem.
    assert_eq!(
        at(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        scalar(at(pod, &["securityContext", "runAsUser"])),
        Some(image_uid.clone())
    );
    assert_eq!(
        at(container, &["securityContext", "readOnlyRootFilesystem"]).as_bool(),
        Some(true)
    );
    assert_eq!(
        at(container, &["securityContext", "allowPrivilegeEscalation"]).as_bool(),
        Some(false)
    );
    assert!(at(container, &["resources", "requests"]).is_mapping());
    assert!(at(container, &["resources", "limits"]).is_mapping());

    // The key file is where the Secret is mounted.
    let key_path = setting("RSA_PRIVATE_KEY_PATH").expect("RSA_PRIVATE_KEY_PATH");
    let mounted = at(container, &["volumeMounts"])
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|mount| {
            let volume = scalar(at(mount, &["name"])).unwrap_or_default();
            let dir = scalar(at(mount, &["mountPath"])).unwrap_or_default();
            at(pod, &["volumes"])
                .as_sequence()
                .into_iter()
                .flatten()
                .filter(|v| scalar(at(v, &["name"])).as_deref() == Some(&volume))
                .flat_map(|v| {
                    at(v, &["secret", "items"])
                        .as_sequence()
                        .into_iter()
                        .flatten()
                })
                .filter_map(|item| scalar(at(item, &["path"])))
                .any(|file| key_path == format!("{dir}/{file}"))
        });
    assert!(
        mounted,
        "RSA_PRIVATE_KEY_PATH={key_path} is a file of a mounted Secret"
    );

    // Draining fits in the grace period: a preStop sleep (if any), DRAIN_DELAY of serving with
    // readiness failing, then SHUTDOWN_TIMEOUT for in-flight requests.
    let shutdown: u64 = setting("SHUTDOWN_TIMEOUT")
        .and_then(|s| s.parse().ok())
        .expect("SHUTDOWN_TIMEOUT");
    let drain: u64 = setting("DRAIN_DELAY")
        .and_then(|s| s.parse().ok())
        .expect("DRAIN_DELAY");
    let pre_stop = at(container, &["lifecycle", "preStop", "sleep", "seconds"])
        .as_u64()
        .unwrap_or(0);
    assert!(
        at(container, &["lifecycle", "preStop", "exec"]).is_null(),
        "a preStop command would run before the drain, unaccounted for"
    );
    let grace = at(pod, &["terminationGracePeriodSeconds"])
        .as_u64()
        .unwrap_or(30);
    assert!(
        pre_stop + drain + shutdown < grace,
        "preStop {pre_stop} s + DRAIN_DELAY {drain} s + SHUTDOWN_TIMEOUT {shutdown} s must end \
         before terminationGracePeriodSeconds {grace} s"
    );
    // The readiness probe sees the 503 before the listener closes.
    let readiness = at(container, &["readinessProbe"]);
    let period = at(readiness, &["periodSeconds"]).as_u64().unwrap_or(10);
    let failures = at(readiness, &["failureThreshold"]).as_u64().unwrap_or(3);
    assert!(
        period * failures <= drain,
        "readiness fails after {period} s × {failures}, within DRAIN_DELAY {drain} s"
    );

    // Services: the external one on PORT, a ClusterIP one on INTERNAL_PORT.
    let services = of_kind(&manifests, "Service");
    let mut service_ports = BTreeMap::new();
    for service in &services {
        for (k, v) in at(service, &["spec", "selector"])
            .as_mapping()
            .expect("selector")
        {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "{} selects the pods",
                name_of(service)
            );
        }
        for p in at(service, &["spec", "ports"])
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let target = resolve_port(at(p, &["targetPort"]))
                .or_else(|| scalar(at(p, &["port"])))
                .expect("a port");
            assert!(
                target == port || target == internal_port,
                "{} targets port {target}, which the server does not listen on",
                name_of(service)
            );
            service_ports.insert(target, (*service, scalar(at(p, &["port"]))));
        }
    }
    let (external, external_port) = &service_ports[&port];
    assert_eq!(name_of(external), "jwthenticator");
    assert_eq!(external_port.as_deref(), Some(port.as_str()));
    let (internal, _) = service_ports
        .get(&internal_port)
        .expect("a Service for INTERNAL_PORT");
    assert_ne!(
        name_of(internal),
        name_of(external),
        "the internal Service is separate"
    );
    assert!(
        scalar(at(internal, &["spec", "type"])).is_none_or(|t| t == "ClusterIP"),
        "the internal Service stays inside the cluster"
    );
    if let Some(scrape_port) = scalar(at(
        internal,
        &["metadata", "annotations", "prometheus.io/port"],
    )) {
        assert_eq!(
            scrape_port, internal_port,
            "Prometheus scrapes /metrics on the internal port"
        );
    }

    // NetworkPolicies open only the server's ports.
    for policy in of_kind(&manifests, "NetworkPolicy") {
        let mut opened = Vec::new();
        walk(policy, "", &mut |key, value| {
            if key == "ports" {
                opened.extend(scalar(at(value, &["port"])));
            }
        });
        for p in opened {
            assert!(p == port || p == internal_port, "NetworkPolicy opens {p}");
        }
    }

    // Every workload runs a subcommand the server has, as the image's non-root user.
    for (workload, pod) in pod_specs(&manifests) {
        assert_eq!(
            scalar(at(pod, &["securityContext", "runAsUser"])),
            Some(image_uid.clone()),
            "{workload} runs as the image's user"
        );
        for container in server_containers(pod) {
            if let Some(command) = strings(at(container, &["args"])).first() {
                assert!(
                    help.commands.contains(command),
                    "{workload} runs `{command}`, which --help does not list: {:?}",
                    help.commands
                );
            }
        }
    }
    let cronjobs = of_kind(&manifests, "CronJob");
    assert!(
        cronjobs.iter().any(|c| server_containers(at(
            c,
            &["spec", "jobTemplate", "spec", "template", "spec"]
        ))
        .iter()
        .any(|container| strings(at(container, &["args"])) == ["purge"])),
        "a CronJob runs `purge`"
    );
}
