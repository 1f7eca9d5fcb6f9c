"""The deployment files in ``deploy/`` agree with each other and with ``handbook.serving``.

Nothing here needs Docker, kubectl, Prometheus or Grafana: every file is parsed (YAML with
``yaml.safe_load_all``, JSON with ``json``, the Dockerfile by a small line parser) and checked
against the code it deploys: the port, user, model folder and backend of the image; the probes,
selectors and names of the Kubernetes objects; and every metric the alerts and the dashboard
query, against a real scrape of :class:`handbook.serving.metrics.ServerMetrics`.

``ROUTES`` (in ``handbook.serving.app``) and ``BACKENDS`` (in ``handbook.serving.backends``) are
read from the modules' source with :mod:`ast` instead of imported: importing either loads PyTorch,
which would take this file from well under a second to several seconds.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import sys
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import dockerfiles
import pytest
import yaml
from prometheus_client import generate_latest

from handbook.serving import autoscale, metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"

METRIC = re.compile(r"\bhandbook_[a-z_]+")
SELECTOR = re.compile(r"\b(handbook_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"([^"]*)"')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: Labels Prometheus attaches to every scraped series (the scrape jobs add app, namespace, pod).
TARGET_LABELS = {"job", "instance", "app", "namespace", "pod"}


# --- reading the files -------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict]:
    """Every non-empty YAML document of ``path``."""
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


@cache
def k8s_objects() -> dict[str, dict]:
    """The objects of ``deploy/k8s/*.yaml`` by kind (each kind once)."""
    objects: dict[str, dict] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_documents(path):
            assert doc["kind"] not in objects, f"{path.name}: a second {doc['kind']}"
            objects[doc["kind"]] = doc
    return objects


def k8s(kind: str) -> dict:
    objects = k8s_objects()
    assert kind in objects, f"no {kind} in deploy/k8s (found {sorted(objects)})"
    return objects[kind]


def pod_spec() -> dict:
    return k8s("Deployment")["spec"]["template"]["spec"]


def server_container() -> dict:
    containers = pod_spec()["containers"]
    assert len(containers) == 1, f"expected one container, got {[c['name'] for c in containers]}"
    return containers[0]


def named_ports() -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in server_container().get("ports", [])}


@cache
def dockerfile_instructions() -> tuple[tuple[int, str, str], ...]:
    """``(stage index, INSTRUCTION, arguments)`` for each instruction of deploy/Dockerfile."""
    return dockerfiles.instructions(DOCKERFILE)


def final_stage(keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction of the last stage (the image that runs)."""
    last = dockerfile_instructions()[-1][0]
    return [
        args for stage, kw, args in dockerfile_instructions() if kw == keyword and stage == last
    ]


def only(values: list, what: str):
    assert len(values) == 1, f"expected exactly one {what}, found {len(values)}: {values}"
    return values[0]


def exec_form(arguments: str, what: str) -> list[str]:
    """A JSON-array instruction (``CMD ["python", ...]``): shell form would not get signals."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError as error:
        raise AssertionError(f"{what} must be in exec form (a JSON array): {arguments}") from error
    assert isinstance(argv, list) and all(isinstance(item, str) for item in argv), arguments
    return argv


def server_command() -> list[str]:
    """The image's command: ENTRYPOINT (if any) followed by CMD."""
    entrypoint = [exec_form(args, "ENTRYPOINT") for args in final_stage("ENTRYPOINT")]
    command = exec_form(only(final_stage("CMD"), "CMD in the final stage"), "CMD")
    argv = [*(entrypoint[-1] if entrypoint else []), *command]
    assert argv[:3] == ["python", "-m", "handbook.serving"], f"not the server: {argv}"
    return argv


def flag(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv`` (which must hold it exactly once)."""
    positions = [i for i, item in enumerate(argv) if item == name]
    assert len(positions) == 1, f"expected {name} once in {argv}"
    assert positions[0] + 1 < len(argv), f"{name} has no value in {argv}"
    return argv[positions[0] + 1]


def dockerfile_env() -> dict[str, str]:
    """``ENV KEY=VALUE ...`` of the final stage."""
    env = {}
    for arguments in final_stage("ENV"):
        for pair in shlex.split(arguments):
            key, equals, value = pair.partition("=")
            assert equals, f"use ENV KEY=VALUE, got {pair!r}"
            env[key] = value
    return env


def healthcheck_url() -> str:
    options, _, command = only(final_stage("HEALTHCHECK"), "HEALTHCHECK").partition("CMD")
    assert "--start-period" in options, "the model loads after start: give it time"
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(exec_form(command, "HEALTHCHECK CMD")))
    return only(urls, "URL in the HEALTHCHECK")


@cache
def module_constant(module: str, name: str):
    """The literal value of ``name = ...`` at the top level of ``module``'s source."""
    path = ROOT / (module.replace(".", "/") + ".py")
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", 0)]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{module} defines no top-level {name} = <literal>")


def routes() -> tuple[str, ...]:
    return module_constant("handbook.serving.app", "ROUTES")


def backends() -> tuple[str, ...]:
    return module_constant("handbook.serving.backends", "BACKENDS")


def cpu_cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity (``"2"``, ``"1500m"``, ``0.5``) in cores."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@cache
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def alert_rules() -> list[dict]:
    return [rule for group in yaml_documents(ALERTS)[0]["groups"] for rule in group["rules"]]


def queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the alerts, keyed by where it is."""
    found = {
        f"panel {panel['title']!r} target {target.get('refId')}": target["expr"]
        for panel in panels()
        for target in panel.get("targets", [])
        if target.get("expr")
    }
    found.update({f"alert {rule['alert']}": rule["expr"] for rule in alert_rules()})
    return found


@cache
def scrape() -> dict[str, set[str]]:
    """Series name -> label names, from a real ``/metrics`` text of a fresh ServerMetrics with
    every metric touched once (labelled metrics show no series until they are)."""
    server = metrics.ServerMetrics()
    server.requests.labels("/predict", "POST", "200").inc()
    server.latency.labels("/predict").observe(0.01)
    server.in_flight.inc()
    server.batch_size.observe(4)
    server.predictions.labels("sports").inc()
    server.model_info.labels("topics-0123456789ab", "int8").set(1)
    series: dict[str, set[str]] = {}
    for line in generate_latest(server.registry).decode().splitlines():
        if line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
            assert match, f"not a sample line: {line!r}"
            labels = re.findall(r'(\w+)="', match.group(2) or "")
            series.setdefault(match.group(1), set()).update(labels)
    return series


def base_name(series: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def dockerignore_excludes(name: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` leaves out the top-level path ``name`` (last match wins)."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if fnmatch(name, pattern) or fnmatch(name, pattern.removeprefix("**/")):
            excluded = not negated
    return excluded


# --- every file parses --------------------------------------------------------------------------


def test_every_deploy_file_parses():
    yaml_files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert {path.name for path in yaml_files} >= {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "prometheus.yml",
        "alerts.yml",
    }
    for path in yaml_files:
        assert yaml_documents(path), f"{path.relative_to(ROOT)} holds no YAML document"
    for kind, doc in k8s_objects().items():
        assert doc.get("apiVersion") and doc["metadata"].get("name"), f"{kind}: no apiVersion/name"
    assert isinstance(dashboard()["panels"], list)
    assert dockerfile_instructions()[0][1] == "FROM", "a Dockerfile starts with FROM"


# --- the image ---------------------------------------------------------------------------------


def test_image_is_multi_stage_on_python_slim():
    images = [args.split()[0] for _, kw, args in dockerfile_instructions() if kw == "FROM"]
    assert len(images) >= 2, f"expected a build stage and a runtime stage, got {images}"
    assert all(image == "python:3.11-slim" for image in images), images


def test_cpu_only_torch_is_installed_before_the_package():
    runs = [args for _, kw, args in dockerfile_instructions() if kw == "RUN"]
    cpu_index = "--index-url https://download.pytorch.org/whl/cpu"
    torch_at = [i for i, run in enumerate(runs) if cpu_index in run and "torch" in run.split()]
    package_at = [i for i, run in enumerate(runs) if re.search(r"pip install .*\s\.(\s|$)", run)]
    assert torch_at, f"no RUN installs torch with {cpu_index}"
    assert package_at, "no RUN installs the package with `pip install .`"
    assert torch_at[0] < package_at[0], (
        "torch must come from the CPU index before `pip install .`, or pip pulls the CUDA build"
    )


def test_exposed_port_is_the_server_port_the_container_port_and_the_scrape_port():
    exposed = int(only(final_stage("EXPOSE"), "EXPOSE").split("/")[0])
    argv = server_command()
    assert int(flag(argv, "--port")) == exposed, f"EXPOSE {exposed} but the server gets {argv}"
    assert flag(argv, "--host") == "0.0.0.0", "on 127.0.0.1 nothing outside the container connects"
    assert named_ports().get("http") == exposed, f"containerPort 'http' {named_ports()}"
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(exposed), annotations
    assert urlparse(healthcheck_url()).port == exposed, healthcheck_url()


def test_image_runs_as_the_numeric_non_root_user_the_pods_require():
    user = only(final_stage("USER"), "USER in the final stage")
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: runAsNonRoot can only verify a numeric UID"
    assert int(uid) != 0, "USER 0 is root"
    contexts = {
        "pod": pod_spec()["securityContext"],
        "container": server_container()["securityContext"],
    }
    for where, context in contexts.items():
        assert context.get("runAsNonRoot") is True, f"{where} securityContext: no runAsNonRoot"
        assert context.get("runAsUser") == int(uid), f"{where} runAsUser != Dockerfile USER {uid}"


def test_container_is_locked_down_with_a_writable_tmp():
    context = server_container()["securityContext"]
    assert context.get("readOnlyRootFilesystem") is True, context
    assert context.get("allowPrivilegeEscalation") is False, context
    mounts = {mount["mountPath"] for mount in server_container().get("volumeMounts", [])}
    assert "/tmp" in mounts, f"a read-only root filesystem needs a writable /tmp, got {mounts}"
    home = dockerfile_env().get("HOME", "")
    assert any(home.startswith(mount) for mount in mounts), f"HOME={home!r} is not writable"


def test_model_is_built_where_the_server_reads_it():
    model_dir = flag(server_command(), "--model-dir")
    builds = [
        shlex.split(args)
        for _, kw, args in dockerfile_instructions()
        if kw == "RUN" and "--build-only" in args
    ]
    build = only(builds, "RUN with --build-only")
    assert flag(build, "--model-dir") == model_dir, f"built in {build}, served from {model_dir}"
    if len({stage for stage, _, _ in dockerfile_instructions()}) > 1:
        copies = [args.split() for args in final_stage("COPY") if args.startswith("--from=")]
        assert any(copy[-2:] == [model_dir, model_dir] for copy in copies), (
            f"the runtime stage does not copy {model_dir} from the build stage: {copies}"
        )


def test_server_command_uses_a_known_backend_and_threads_within_the_cpu_limit():
    argv = server_command()
    assert flag(argv, "--backend") in backends(), f"{argv}: backends are {backends()}"
    threads = int(flag(argv, "--threads"))
    limit = cpu_cores(server_container()["resources"]["limits"]["cpu"])
    assert threads <= limit, f"--threads {threads} over the CPU limit {limit}: throttling"
    assert dockerfile_env().get("OMP_NUM_THREADS") == str(threads), dockerfile_env()
    assert dockerfile_env().get("PYTHONUNBUFFERED") == "1", "logs must not sit in a buffer"
    env = {item["name"]: item.get("value") for item in server_container().get("env", [])}
    assert env.get("OMP_NUM_THREADS", str(threads)) == str(threads), env


def test_healthcheck_asks_the_liveness_route():
    path = urlparse(healthcheck_url()).path
    assert path == "/health" and path in routes(), f"HEALTHCHECK asks {path}, routes {routes()}"


def test_dockerignore_keeps_people_s_work_and_build_output_out_but_not_the_sources():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for name in (".venv", "_build", ".git", "student", "grades"):
        assert dockerignore_excludes(name, patterns), f".dockerignore lets {name} into the image"
    sources = [
        source.removeprefix("./").rstrip("/")
        for _, keyword, args in dockerfile_instructions()
        if keyword == "COPY" and not args.startswith("--from=")
        for source in args.split()[:-1]
    ]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert not dockerignore_excludes(source, patterns), (
            f"COPY {source} but .dockerignore leaves it out of the context"
        )


# --- Kubernetes --------------------------------------------------------------------------------


def test_probes_ask_the_app_s_readiness_and_liveness_routes_on_the_named_port():
    container = server_container()
    expected = {"readinessProbe": "/ready", "livenessProbe": "/health"}
    for probe, path in expected.items():
        check = container[probe]["httpGet"]
        assert check["path"] == path, f"{probe} asks {check['path']}, expected {path}"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            check = container[probe]["httpGet"]
            assert check["path"] in routes(), f"{probe} asks {check['path']}: not in {routes()}"
            assert check["port"] in named_ports(), (
                f"{probe} port {check['port']!r} is not a named container port {named_ports()}"
            )


def test_service_selects_the_pods_and_targets_the_named_port():
    deployment, service = k8s("Deployment"), k8s("Service")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template_labels.items(), f"{selector} vs {template_labels}"
    assert service["spec"]["selector"].items() <= template_labels.items(), (
        f"Service selector {service['spec']['selector']} matches no pod label {template_labels}"
    )
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in named_ports(), (
            f"Service targetPort {port['targetPort']!r} is not a container port {named_ports()}"
        )


def test_deployment_has_replicas_and_resources_for_the_hpa():
    deployment = k8s("Deployment")
    assert deployment["spec"]["replicas"] >= 2, "one replica is one restart away from an outage"
    resources = server_container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{kind}: {resources}"
    assert cpu_cores(resources["requests"]["cpu"]) <= cpu_cores(resources["limits"]["cpu"])


def test_hpa_scales_the_deployment_as_the_chapter_simulates():
    hpa, deployment = k8s("HorizontalPodAutoscaler"), k8s("Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2", hpa["apiVersion"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert target["apiVersion"] == deployment["apiVersion"], target
    spec = hpa["spec"]
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"], spec
    assert spec["minReplicas"] <= deployment["spec"]["replicas"] <= spec["maxReplicas"]
    cpu = only([m["resource"] for m in spec["metrics"] if m["type"] == "Resource"], "metric")
    assert cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 70, cpu
    window_minutes = inspect.signature(autoscale.autoscaled_fleet).parameters["scale_down_window"]
    window = spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    assert window == 60 * window_minutes.default, (
        f"scale-down window {window} s, the chapter simulates {window_minutes.default} min"
    )


# --- Prometheus --------------------------------------------------------------------------------


def test_prometheus_scrapes_the_metrics_route():
    config = yaml_documents(PROMETHEUS)[0]
    jobs = config["scrape_configs"]
    assert len(jobs) >= 2, "expected a local job and a Kubernetes job"
    for job in jobs:
        path = job.get("metrics_path")
        assert path == "/metrics" and path in routes(), f"job {job['job_name']} scrapes {path}"
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true", annotations
    assert annotations["prometheus.io/path"] in routes(), annotations
    static = [
        target for job in jobs for s in job.get("static_configs", []) for target in s["targets"]
    ]
    assert "127.0.0.1:8000" in static, static
    for rule_file in config.get("rule_files", []):
        assert (PROMETHEUS.parent / rule_file).is_file(), f"rule file {rule_file} is missing"
    assert ALERTS.name in config.get("rule_files", []), "alerts.yml is not loaded"


def test_every_scrape_job_labels_the_targets_the_no_target_alert_counts():
    rule = only(
        [r for r in alert_rules() if r["alert"] == "HandbookServeNoReadyTarget"], "no-target alert"
    )
    assert "handbook_model_info" in rule["expr"], "count replicas with a loaded model, not `up`"
    app = re.search(r'\{app="([^"]+)"\}', rule["expr"]).group(1)
    template_labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    for job in yaml_documents(PROMETHEUS)[0]["scrape_configs"]:
        static = [s.get("labels", {}).get("app") for s in job.get("static_configs", [])]
        relabelled = [
            r["source_labels"][0].removeprefix("__meta_kubernetes_pod_label_")
            for r in job.get("relabel_configs", [])
            if r.get("target_label") == "app"
        ]
        from_pods = [
            value for key, value in template_labels.items() if re.sub(r"\W", "_", key) in relabelled
        ]
        assert app in static + from_pods, f"job {job['job_name']} never sets app={app!r}"


def test_alerts_cover_errors_latency_and_availability():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert 2 <= len(rules) <= 5, sorted(rules)
    expressions = " ".join(rule["expr"] for rule in rules.values())
    assert 'status=~"5.."' in expressions and "> 0.01" in expressions, "no 1% 5xx alert"
    assert "histogram_quantile(0.99" in expressions and "> 0.5" in expressions, "no p99 alert"
    for name, rule in rules.items():
        assert rule.get("for") and rule.get("labels", {}).get("severity"), f"{name}: for/severity"
        assert rule.get("annotations", {}).get("summary"), f"{name}: no summary"


# --- the metrics the alerts and the dashboard query ---------------------------------------------


def test_queries_name_only_metrics_the_app_defines():
    defined = set(metrics.METRIC_NAMES)
    for where, expr in queries().items():
        names = set(METRIC.findall(expr))
        unknown = {name for name in names if base_name(name) not in defined}
        assert not unknown, f"{where}: {sorted(unknown)} not in METRIC_NAMES {sorted(defined)}"


def test_every_queried_series_and_label_appears_in_a_real_scrape():
    series = scrape()
    for where, expr in queries().items():
        for name in METRIC.findall(expr):
            assert name in series, f"{where}: {name} is not in a /metrics scrape {sorted(series)}"
        for name, matchers in SELECTOR.findall(expr):
            for label, value in MATCHER.findall(matchers):
                known = series[name] | TARGET_LABELS
                assert label in known, f"{where}: {name} has no label {label!r} ({sorted(known)})"
                if label == "route":
                    assert value in routes(), f"{where}: route {value!r} not in {routes()}"


def test_dashboard_shows_every_metric_the_app_exposes():
    shown = {base_name(name) for panel in panels() for name in METRIC.findall(json.dumps(panel))}
    missing = set(metrics.METRIC_NAMES) - shown
    assert not missing, f"metrics on no dashboard panel: {sorted(missing)}"


# --- Grafana -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words", [("qps",), ("latency", "p99"), ("error rate",), ("batch size",), ("model version",)]
)
def test_dashboard_has_the_panel(words):
    titles = [panel.get("title", "").lower() for panel in panels()]
    assert any(all(word in title for word in words) for title in titles), (
        f"no panel titled with {words}: {titles}"
    )


def test_dashboard_panels_use_the_datasource_variable():
    board = dashboard()
    assert board.get("schemaVersion", 0) >= 36, board.get("schemaVersion")
    variables = {v["name"]: v for v in board["templating"]["list"] if v["type"] == "datasource"}
    assert variables, "no datasource template variable"
    uids = {f"${{{name}}}" for name in variables} | {f"${name}" for name in variables}
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    for panel in panels():
        if panel.get("type") == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} queries nothing"
        for source in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
            if source is not None:
                assert source.get("uid") in uids, f"panel {panel['title']!r} uses {source}"


def test_readme_names_only_files_that_exist():
    text = (DEPLOY / "README.md").read_text()
    for match in re.findall(r"`((?:deploy/|k8s/|prometheus/|grafana/)[\w./-]+)`", text):
        path = ROOT / match if match.startswith("deploy/") else DEPLOY / match
        assert path.exists(), f"deploy/README.md names {match}, which does not exist"
    assert "docker build -f deploy/Dockerfile" in text and "kubectl apply -f deploy/k8s" in text


def test_runtime_stage_installs_only_serving_dependencies_within_pyproject_floors():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # a dev dependency on Python 3.10 (see pyproject.toml)
        import tomli as tomllib
    declared = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        name, floor = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?(.*)", requirement).groups()
        declared[name.lower()] = floor.strip()
    runtime = " ".join(args for args in final_stage("RUN"))
    pinned = dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?(>=[^"]+)"', runtime))
    assert pinned, "the runtime stage installs no versioned requirement"
    for name, floor in pinned.items():
        assert declared.get(name.lower()) == floor, (
            f"runtime requirement {name}{floor} differs from pyproject.toml's "
            f"{name}{declared.get(name.lower())}"
        )
    assert "--no-deps" in runtime, "the package must go in without the book's toolchain"
    for heavy in ("jupyter-book", "jupyterlab", "papermill", "captum", "fairlearn"):
        assert heavy not in runtime, f"{heavy} has no place in the serving image"
