"""The rendered services' Kubernetes manifests (deploy/kubernetes/), proven
without a cluster: rendered by kustomize (kubectl's own), validated strictly
against the schemas of the newest Kubernetes versions, and read for the
rules the service lives by, with every expected value taken from the
rendered files they must agree with (gunicorn.conf.py, the Dockerfile, the
settings, .env.example, the compose file)."""

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import Version, all_versions

from harness.answers import ROOT, VARIANTS, answers_for, package_of
from harness.docker import load_compose

BIN = Path(sys.executable).parent
KUBERNETES = "deploy/kubernetes"
PRODUCTION = "overlays/production"
# Every kustomization a service has: the base, the overlay teams deploy, and
# CI's kind overlay (which adds components/in-cluster-data).
KUSTOMIZATIONS = ["base", PRODUCTION, "overlays/kind"]
APP_COMPONENTS = {"web", "worker", "beat", "migrate"}
# The Secret the team creates (deploy/kubernetes/GUIDE.md).
SECRETS_MOUNT = "/run/secrets"

# What .env.example has that the pods never read: the Compose stack's own
# servers (the database superuser and the app's role, the backups, Redis's
# password and the cache's memory), images, memory limits, Caddy's site and
# options, the published port, web's watchdog (the kubelet restarts a pod
# whose liveness probe fails), the stack's own Prometheus (its image and
# port), and PROMETHEUS_MULTIPROC_DIR, which the image sets for the pods.
# deploy/kubernetes/GUIDE.md lists them.
STACK_ONLY = re.compile(
    r"POSTGRES_\w+|APP_DB_\w+|BACKUP_\w+|REDIS_PASSWORD|CACHE_MAX_MEMORY|(\w+_)?IMAGE|\w+_MEMORY_LIMIT"
    r"|DOMAIN|CADDY_\w+|LOCAL_\w+|WEB_BIND|WEB_PORT|WEB_WATCHDOG_FAILURES|PROMETHEUS_\w+"
)
# Settings whose value is a secret, or holds one (a URL with a password):
# read from the Secret's files, never in a ConfigMap or an env value. The
# name of such a file (SECRET_KEY_FILE) is no secret.
SECRET_NAME = re.compile(
    r"(?!\w+_FILE$)(?:SECRET_KEY|\w*_PASSWORD|\w*_SECRET\w*|DATABASE_URL|REDIS_URL|CACHE_URL|EMAIL_URL|SENTRY_DSN"
    r"|CELERY_BROKER_URL|CELERY_RESULT_BACKEND|AWS_ACCESS_KEY_ID|\w*_TOKEN|\w*_KEY)"
)
# Values the cluster needs other than the Compose stack's: who may set
# X-Forwarded-* is the Ingress controller, in the pod network.
CLUSTER_VALUES = {"FORWARDED_ALLOW_IPS"}


def kubectl():
    path = BIN / "kubectl"
    return str(path) if path.exists() else shutil.which("kubectl")


@functools.cache
def kustomize(directory):
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def objects(service, kustomization=PRODUCTION):
    return kustomize(service / KUBERNETES / kustomization)


def of_kind(documents, kind):
    return [document for document in documents if document["kind"] == kind]


def named(documents, kind, name):
    (found,) = [document for document in of_kind(documents, kind) if document["metadata"]["name"] == name]
    return found


def slug_of(variant):
    return answers_for(variant).get("project_slug", "obc-management-system")


def workloads(documents):
    """component -> pod template spec of every Deployment and Job."""
    return {
        document["metadata"]["labels"]["app.kubernetes.io/component"]: document["spec"]["template"]
        for document in documents
        if document["kind"] in ("Deployment", "Job")
    }


def app_pods(documents):
    return {name: template for name, template in workloads(documents).items() if name in APP_COMPONENTS}


def containers(pod, init=True):
    return [*(pod["spec"].get("initContainers", []) if init else []), *pod["spec"]["containers"]]


def config_map(documents):
    (found,) = of_kind(documents, "ConfigMap")
    return found


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions In/NotIn/Exists) selects these labels."""
    if not all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def gunicorn_default(service, name):
    text = (service / "gunicorn.conf.py").read_text()
    (default,) = re.findall(rf'env\.\w+\("{name}", default=("[^"]*"|\d+)', text)
    return default.strip('"')


def settings_default(service, variant, name):
    text = (service / f"src/{package_of(answers_for(variant))}/settings/base.py").read_text()
    (default,) = re.findall(rf'env\.int\("{name}", default=(\d+)', text)
    return int(default)


def env_example(service):
    """The variables .env.example sets (not those only shown in comments), as Compose reads them."""
    variables = {}
    for line in (service / ".env.example").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        variables[name] = value
    return variables


def port_number(container, port):
    if isinstance(port, int):
        return port
    (number,) = [entry["containerPort"] for entry in container.get("ports", []) if entry["name"] == port]
    return number


# --------------------------------------------------------------------------
# Rendered and valid
# --------------------------------------------------------------------------


def newest_versions(count=3):
    """The newest minor versions whose schemas kubernetes-validate ships."""
    versions = sorted({Version(version) for version in all_versions()})
    by_minor = {}
    for version in versions:
        by_minor[(version.major, version.minor)] = version
    return [str(version) for version in list(by_minor.values())[-count:]]


def test_validation_covers_the_three_newest_kubernetes_versions():
    versions = newest_versions()
    assert len({Version(version).minor for version in versions}) == 3
    assert versions[-1] == kubernetes_validate.latest_version()


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_kustomize_renders_every_kustomization(render, variant, kustomization):
    documents = objects(render(variant), kustomization)
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "Job", "ConfigMap", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert ("Ingress" in kinds) == (kustomization != "base")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_object_validates_strictly_against_kubernetes_schemas(render, variant, kustomization):
    documents = objects(render(variant), kustomization)
    errors = []
    for version in newest_versions():
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{version} {document['kind']}/{document['metadata']['name']}: {error.message}")
    assert errors == []


def test_the_strict_validation_refuses_an_unknown_field(render):
    # The check above can fail: a misspelt field is an error, not ignored.
    deployment = dict(named(objects(render("defaults")), "Deployment", "obc-management-system-web"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, newest_versions()[-1], strict=True)


# --------------------------------------------------------------------------
# Probes and shutdown
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_web_probes_ask_the_services_probes_on_gunicorns_port(render, variant):
    service = render(variant)
    documents = objects(service)
    port = int(gunicorn_default(service, "GUNICORN_BIND").rsplit(":", 1)[1])
    assert int(config_map(documents)["data"]["GUNICORN_BIND"].rsplit(":", 1)[1]) == port
    (web,) = containers(app_pods(documents)["web"], init=False)
    # The paths the service answers before its HTTPS redirect and host check.
    middleware = (service / "src/servicekit/middleware.py").read_text()
    probes = set(re.search(r"^PROBES = \{(.*)\}$", middleware, re.M).group(1).split(", "))
    answered = {entry.split(":")[0].strip('"') for entry in probes}
    # The Host header of the compose healthcheck's probe.
    host = re.search(r"Host: (\S+?)\\r", (service / "scripts/http_probe.sh").read_text()).group(1)
    paths = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = web[kind]["httpGet"]
        assert port_number(web, probe["port"]) == port, kind
        assert probe.get("scheme", "HTTP") == "HTTP", kind
        assert probe["httpHeaders"] == [{"name": "Host", "value": host}], kind
        assert probe["path"] in answered, kind
        paths[kind] = probe["path"]
    # Liveness asks the process alone; readiness its dependencies too.
    assert paths == {"startupProbe": "/health/", "livenessProbe": "/health/", "readinessProbe": "/ready/"}
    service_port = named(of_kind(documents, "Service"), "Service", f"{slug_of(variant)}-web")["spec"]["ports"]
    assert [port_number(web, entry["targetPort"]) for entry in service_port] == [port]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_worker_and_beat_probes_are_the_compose_healthchecks(render, variant):
    service = render(variant)
    documents = objects(service)
    compose = load_compose(service / "docker-compose.prod.yml")["services"]
    data = config_map(documents)["data"]
    pods = app_pods(documents)
    celery = ["worker", "beat"] if answers_for(variant).get("use_celery_beat", True) else ["worker"]
    assert {"worker", "beat"} & set(pods) == set(celery)
    for name in celery:
        (container,) = containers(pods[name], init=False)
        check = compose[name]["healthcheck"]["test"]
        assert check[0] == "CMD"
        for kind in ("startupProbe", "livenessProbe"):
            assert container[kind]["exec"]["command"] == check[1:], (name, kind)
        script, alive_file, _ = check[1:]
        assert (service / script).is_file()
        # The file the process touches is the one the probe reads.
        assert data[f"CELERY_{name.upper()}_ALIVE_FILE"] == alive_file
        assert any(alive_file.startswith(mount["mountPath"] + "/") for mount in container["volumeMounts"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_grace_periods_outlast_the_graceful_timeouts(render, variant):
    service = render(variant)
    documents = objects(service)
    data = config_map(documents)["data"]
    pods = app_pods(documents)
    graceful = max(int(gunicorn_default(service, "GUNICORN_GRACEFUL_TIMEOUT")), int(data["GUNICORN_GRACEFUL_TIMEOUT"]))
    (web,) = containers(pods["web"], init=False)
    # The preStop pause comes first: endpoints drain before SIGTERM.
    pause = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and int(pause[1]) > 0
    assert pods["web"]["spec"]["terminationGracePeriodSeconds"] > graceful + int(pause[1])
    time_limit = max(settings_default(service, variant, "CELERY_TASK_TIME_LIMIT"), int(data["CELERY_TASK_TIME_LIMIT"]))
    assert pods["worker"]["spec"]["terminationGracePeriodSeconds"] > time_limit


# --------------------------------------------------------------------------
# Security and resources
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_pod_runs_as_the_images_user_with_a_read_only_root(render, variant):
    service = render(variant)
    production_stage = (service / "Dockerfile").read_text().split("AS production", 1)[1].split("\nFROM ", 1)[0]
    uid, gid = map(int, re.search(r"^USER (\d+):(\d+)$", production_stage, re.M).groups())
    pods = app_pods(objects(service))
    assert set(pods) == APP_COMPONENTS - (set() if answers_for(variant).get("use_celery_beat", True) else {"beat"})
    for name, pod in pods.items():
        spec = pod["spec"]
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in containers(pod):
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, (name, container["name"])
            # The root filesystem is read-only: /tmp is in memory, and bounded.
            (tmp,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
            assert volumes[tmp["name"]]["emptyDir"]["medium"] == "Memory"
            assert volumes[tmp["name"]]["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("kustomization", [PRODUCTION, "overlays/kind"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_container_has_requests_and_limits(render, variant, kustomization):
    for name, pod in workloads(objects(render(variant), kustomization)).items():
        for container in containers(pod):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) == {"cpu", "memory"}, (name, container["name"], bound)


def quantity(text):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3}
    for unit, factor in units.items():
        if str(text).endswith(unit):
            return float(str(text)[: -len(unit)]) * factor
    return float(text)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_requests_fit_within_limits(render, variant):
    for name, pod in workloads(objects(render(variant))).items():
        for container in containers(pod):
            for resource in ("cpu", "memory"):
                requested, limit = (container["resources"][bound][resource] for bound in ("requests", "limits"))
                assert quantity(requested) <= quantity(limit), (name, container["name"], resource)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_web_and_worker_spread_over_the_nodes(render, variant):
    pods = app_pods(objects(render(variant)))
    for name in ("web", "worker"):
        (spread,) = pods[name]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert selects(spread["labelSelector"], pods[name]["metadata"]["labels"]), name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_overlay_tags_every_image(render, variant):
    service = render(variant)
    slug = slug_of(variant)
    base_images = {c["image"] for pod in app_pods(objects(service, "base")).values() for c in containers(pod)}
    # The base names the image, and leaves its tag to the overlay.
    assert base_images == {slug}
    images = {c["image"] for pod in workloads(objects(service)).values() for c in containers(pod)}
    assert len(images) == 1
    for image in images:
        name, _, tag = image.rpartition(":")
        assert "/" not in tag and tag and tag != "latest", image
        assert name.endswith(f"/{slug}"), image


# --------------------------------------------------------------------------
# Settings and secrets
# --------------------------------------------------------------------------


def secret_files(data):
    """variable -> file of every setting read from the Secret's files (X_FILE,
    a path in the Secret's mount)."""
    return {
        name.removesuffix("_FILE"): value
        for name, value in data.items()
        if name.endswith("_FILE") and value.startswith(f"{SECRETS_MOUNT}/")
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_object_holds_a_secret(render, variant, kustomization):
    documents = objects(render(variant), kustomization)
    assert of_kind(documents, "Secret") == []
    for name, pod in workloads(documents).items():
        for container in containers(pod):
            for variable in container.get("env", []):
                assert not ("value" in variable and SECRET_NAME.fullmatch(variable["name"])), (name, variable)
    data = config_map(documents)["data"]
    assert [name for name in data if SECRET_NAME.fullmatch(name)] == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_secrets_are_files_of_the_teams_secret(render, variant):
    service = render(variant)
    answers = answers_for(variant)
    documents = objects(service)
    files = secret_files(config_map(documents)["data"])
    expected = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL"}
    if answers.get("media_backend") == "s3":
        expected |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    if answers.get("use_sentry"):
        expected |= {"SENTRY_DSN"}
    assert set(files) == expected
    assert files == {name: f"{SECRETS_MOUNT}/{name}" for name in expected}
    # Every process of every pod (init containers too) sees the files.
    for name, pod in app_pods(documents).items():
        volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        for container in containers(pod):
            (mount,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == SECRETS_MOUNT]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == f"{slug_of(variant)}-secrets", name
            assert "items" not in secret and secret["defaultMode"] & 0o007 == 0
    # The command that creates the Secret names exactly these keys.
    readme = (service / KUBERNETES / "GUIDE.md").read_text()
    command = re.search(r"kubectl create secret generic .*?\n```", readme, re.S).group(0)
    assert set(re.findall(r"--from-(?:literal|file)=(\w+)=", command)) == expected


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_config_carries_every_setting_the_pods_read(render, variant):
    service = render(variant)
    example = env_example(service)
    applies = {name for name in example if not STACK_ONLY.fullmatch(name)}
    secrets = {name for name in applies if SECRET_NAME.fullmatch(name)}
    data = config_map(objects(service))["data"]
    assert set(data) == (applies - secrets) | {f"{name}_FILE" for name in secret_files(data)}
    # Every secret of .env.example is read from a file.
    assert secrets <= set(secret_files(data))
    # The same values as the Compose stack's, but where the cluster differs.
    differing = {name: data[name] for name in applies - secrets if data[name] != example[name]}
    assert set(differing) <= CLUSTER_VALUES, differing
    # Every variable is one the service reads.
    code = "".join(path.read_text() for path in [*service.glob("src/**/*.py"), service / "gunicorn.conf.py"])
    read = set(data) - {f"{name}_FILE" for name in secret_files(data)} | set(secret_files(data))
    unread = [name for name in read if f'"{name}"' not in code]
    assert unread == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_config_is_named_by_its_contents(render, variant):
    documents = objects(render(variant))
    name = config_map(documents)["metadata"]["name"]
    base_name = f"{slug_of(variant)}-config"
    # kustomize appends a hash of the contents: a changed value is a new
    # name, which rolls every pod that refers to it.
    assert re.fullmatch(rf"{re.escape(base_name)}-[a-z0-9]{{10}}", name)
    for component, pod in app_pods(documents).items():
        for container in containers(pod):
            assert container["envFrom"] == [{"configMapRef": {"name": name}}], (component, container["name"])
    # The overlay's values are merged into the same ConfigMap.
    production_env = (render(variant) / KUBERNETES / PRODUCTION / "production.env").read_text()
    for line in production_env.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert config_map(documents)["data"][key] == value


# --------------------------------------------------------------------------
# Workloads and the objects around them
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_one_migrator_and_pods_that_wait_for_it(render, variant):
    service = render(variant)
    documents = objects(service)
    slug = slug_of(variant)
    compose = load_compose(service / "docker-compose.prod.yml")["services"]
    job = named(documents, "Job", f"{slug}-migrate")
    (migrate,) = containers(job["spec"]["template"], init=False)
    assert migrate["command"] == compose["migrate"]["command"]
    assert "migrate_locked" in migrate["command"]
    assert (service / "src/servicekit/management/commands/migrate_locked.py").is_file()
    # The rollout's first step applies the Job and the settings it reads.
    first = [
        document
        for document in documents
        if document["metadata"].get("labels", {}).get("app.kubernetes.io/component") in ("config", "migrate")
    ]
    assert sorted(document["kind"] for document in first) == ["ConfigMap", "Job"]
    readme = (service / KUBERNETES / "GUIDE.md").read_text()
    assert "--selector 'app.kubernetes.io/component in (config,migrate)'" in readme
    assert f"kubectl wait job/{slug}-migrate" in readme and "--for condition=complete" in readme
    assert readme.index("kubectl wait job/") < readme.index('kubectl apply -k "$overlay"\n')
    assert "kustomize edit set image" in readme
    # No pod runs code newer than its schema, and nothing else migrates.
    for name, pod in app_pods(documents).items():
        if name == "migrate":
            continue
        (init,) = pod["spec"]["initContainers"]
        assert init["command"] == ["scripts/wait_for_migrations.sh"], name
        assert init["image"] == pod["spec"]["containers"][0]["image"], name
        for container in containers(pod):
            words = container.get("command", [])
            assert "migrate" not in words and "migrate_locked" not in words, (name, container["name"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_beat_is_one_pod_replaced_never_rolled(render, variant):
    documents = objects(render(variant))
    slug = slug_of(variant)
    beats = [
        document for document in of_kind(documents, "Deployment") if document["metadata"]["name"] == f"{slug}-beat"
    ]
    if not answers_for(variant).get("use_celery_beat", True):
        assert beats == []
        return
    (beat,) = beats
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    targets = [document["spec"]["scaleTargetRef"]["name"] for document in of_kind(documents, "HorizontalPodAutoscaler")]
    assert f"{slug}-beat" not in targets


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_autoscalers_and_budgets_target_the_deployments(render, variant):
    documents = objects(render(variant))
    deployments = {document["metadata"]["name"]: document for document in of_kind(documents, "Deployment")}
    slug = slug_of(variant)
    scaled = set()
    for autoscaler in of_kind(documents, "HorizontalPodAutoscaler"):
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in deployments
        # The autoscaler owns the count: a count in the Deployment would reset it.
        assert "replicas" not in deployments[target["name"]]["spec"]
        assert 2 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
        scaled.add(target["name"])
    assert scaled == {f"{slug}-web", f"{slug}-worker"}
    budgeted = set()
    for budget in of_kind(documents, "PodDisruptionBudget"):
        (target,) = [
            name
            for name, deployment in deployments.items()
            if selects(budget["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        ]
        budgeted.add(target)
    assert budgeted == scaled


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_policies_select_the_pods_they_are_for(render, variant):
    documents = objects(render(variant), "overlays/kind")
    pods = workloads(documents)
    labels = {name: pod["metadata"]["labels"] for name, pod in pods.items()}
    app = {name for name in labels if name in APP_COMPONENTS}
    policies = {
        policy["metadata"]["name"].rsplit("-", 1)[1]: policy["spec"] for policy in of_kind(documents, "NetworkPolicy")
    }
    assert set(policies) == {"app", "web", "metrics", "db", "redis"}

    def selected(selector):
        return {name for name, pod_labels in labels.items() if selects(selector, pod_labels)}

    # Every app pod is closed but for the ports of its servers.
    assert selected(policies["app"]["podSelector"]) == app
    assert set(policies["app"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in policies["app"]
    ports = {port["port"] for rule in policies["app"]["egress"] for port in rule["ports"]}
    assert {5432, 6379, 53} <= ports
    # web is reached on gunicorn's port.
    assert selected(policies["web"]["podSelector"]) == {"web"}
    (web,) = containers(pods["web"], init=False)
    (rule,) = policies["web"]["ingress"]
    assert [port_number(web, port["port"]) for port in rule["ports"]] == [web["ports"][0]["containerPort"]]
    # Prometheus, from its namespace, reaches web's port and the worker's metrics port.
    assert selected(policies["metrics"]["podSelector"]) == {"web", "worker"}
    (rule,) = policies["metrics"]["ingress"]
    assert [set(peer) for peer in rule["from"]] == [{"namespaceSelector"}]
    (worker,) = containers(pods["worker"], init=False)
    opened = {
        name: {port_number(container, port["port"]) for port in rule["ports"] if port["port"] in names}
        for name, container in (("web", web), ("worker", worker))
        for names in [{entry["name"] for entry in container.get("ports", [])}]
    }
    assert opened == {"web": {8000}, "worker": {9808}}
    # In the cluster, PostgreSQL and Redis are reached by the app's pods only.
    for name, port in (("db", 5432), ("redis", 6379)):
        assert selected(policies[name]["podSelector"]) == {name}
        (rule,) = policies[name]["ingress"]
        assert set().union(*(selected(peer["podSelector"]) for peer in rule["from"])) == app
        assert [entry["port"] for entry in rule["ports"]] == [port]
    # The stand-ins listen where CI's Secret says.
    services = {service["metadata"]["name"]: service for service in of_kind(documents, "Service")}
    for name, port in (("db", 5432), ("redis", 6379)):
        assert selected({"matchLabels": services[f"{slug_of(variant)}-{name}"]["spec"]["selector"]}) == {name}
        assert services[f"{slug_of(variant)}-{name}"]["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prometheus_scrapes_web_and_worker_where_they_serve_metrics(render, variant):
    service = render(variant)
    pods = app_pods(objects(service))
    config = yaml.safe_load((service / "deploy/prometheus/prometheus.yml").read_text())
    # The same ports as the Compose stack's scrape configuration.
    ports = {
        job["job_name"]: job["dns_sd_configs"][0]["port"] for job in config["scrape_configs"] if "dns_sd_configs" in job
    }
    for name in ("web", "worker"):
        annotations = pods[name]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        (container,) = containers(pods[name], init=False)
        declared = {entry["containerPort"] for entry in container["ports"]}
        assert int(annotations["prometheus.io/port"]) == ports[name]
        assert ports[name] in declared
    (worker,) = containers(pods["worker"], init=False)
    assert {"name": "metrics", "containerPort": 9808} in worker["ports"]
    # Annotations on no other pod: nothing else serves metrics.
    assert all("annotations" not in pod["metadata"] for name, pod in pods.items() if name not in ("web", "worker"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_ingress_serves_the_domain_over_tls(render, variant):
    service = render(variant)
    documents = objects(service)
    domain = answers_for(variant)["domain"]
    (ingress,) = of_kind(documents, "Ingress")
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [domain]
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [domain]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    backend = path["backend"]["service"]
    web_service = named(documents, "Service", backend["name"])
    assert backend["port"]["name"] in [port["name"] for port in web_service["spec"]["ports"]]
    assert selects({"matchLabels": web_service["spec"]["selector"]}, app_pods(documents)["web"]["metadata"]["labels"])
    # cert-manager is offered, not assumed.
    text = (service / KUBERNETES / PRODUCTION / "ingress.yaml").read_text()
    assert re.search(r"^  #   cert-manager\.io/cluster-issuer: ", text, re.M)
    assert config_map(documents)["data"]["ALLOWED_HOSTS"] == domain


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_local_media_are_one_shared_volume(render, variant):
    documents = objects(render(variant))
    claims = of_kind(documents, "PersistentVolumeClaim")
    pods = app_pods(documents)
    media_root = config_map(documents)["data"]["MEDIA_ROOT"]
    mounted = {
        name
        for name, pod in pods.items()
        for container in containers(pod)
        if any(mount["mountPath"] == media_root for mount in container["volumeMounts"])
    }
    if answers_for(variant).get("media_backend", "local") == "s3":
        assert claims == [] and mounted == set()
        return
    (claim,) = claims
    # Pods on several nodes share it.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert mounted == {"web", "worker"}
    for name in mounted:
        (volume,) = [volume for volume in pods[name]["spec"]["volumes"] if "persistentVolumeClaim" in volume]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


# --------------------------------------------------------------------------
# Ownership and the files themselves
# --------------------------------------------------------------------------


def test_the_production_overlay_is_the_services_and_the_rest_the_templates(render):
    service = render("defaults")
    owned = set(yaml.safe_load((ROOT / "copier.yml").read_text())["_skip_if_exists"])
    files = {path.relative_to(service).as_posix() for path in (service / KUBERNETES).rglob("*") if path.is_file()}
    overlay = {name for name in files if name.startswith(f"{KUBERNETES}/{PRODUCTION}/")}
    assert overlay and overlay <= owned
    assert (files - overlay) & owned == set()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_is_one_commented_document(render, variant):
    service = render(variant)
    for path in sorted((service / KUBERNETES).rglob("*.yaml")):
        text = path.read_text()
        # One object per file (read as plain YAML by tools and the suite).
        assert len([document for document in yaml.safe_load_all(text) if document]) == 1, path
        # Opens with why it is there.
        assert text.startswith("# "), path
        assert "\n\n\n" not in text, path
