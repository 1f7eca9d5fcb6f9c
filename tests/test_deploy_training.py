"""Chapter 10's deployment files, parsed and checked against the code they run.

``deploy/k8s-training/pytorchjob.yaml`` must run, on each node, exactly the command that
``handbook.distributed.torchrun_command`` builds for a multi-node run (the command the tests of
``tests/test_distributed.py`` run on this machine); ``deploy/elk/filebeat.yml`` must decode the
ECS lines that ``handbook.toolchain.ecs_handler`` writes. Nothing here needs a cluster.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from handbook import distributed, toolchain

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "deploy" / "k8s-training" / "pytorchjob.yaml"
FILEBEAT = ROOT / "deploy" / "elk" / "filebeat.yml"


def _job() -> dict:
    return yaml.safe_load(JOB.read_text())


def _containers() -> dict[str, dict]:
    replicas = _job()["spec"]["pytorchReplicaSpecs"]
    return {role: spec["template"]["spec"]["containers"][0] for role, spec in replicas.items()}


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_job_is_a_pytorchjob_with_one_master_and_workers():
    job = _job()
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"} and replicas["Master"]["replicas"] == 1
    assert all(spec["restartPolicy"] == "Never" for spec in replicas.values())
    assert job["spec"]["runPolicy"]["backoffLimit"] == 0
    assert all(container["name"] == "pytorch" for container in _containers().values())


def test_every_node_runs_the_command_the_tests_run_here():
    replicas = _job()["spec"]["pytorchReplicaSpecs"]
    nodes = sum(spec["replicas"] for spec in replicas.values())
    for role, container in _containers().items():
        command = container["command"]
        script = command[command.index("handbook.distributed") + 1 :]
        expected = distributed.torchrun_command(
            script,
            processes=int(_flag(command, "--nproc-per-node")),
            nodes=nodes,
            rendezvous="$(MASTER_ADDR):$(MASTER_PORT)",
            job_id=_job()["metadata"]["name"],
        )
        assert command[:1] == ["python"] and command[1:] == expected[1:], role
        arguments = distributed.parse_arguments(script)  # the script accepts its flags
        assert arguments.out == Path("/output")
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/output" in mounts, f"{role}: the checkpoint folder is not writable"
        limit = float(container["resources"]["limits"]["cpu"])
        assert arguments.threads <= limit, f"{role}: --threads {arguments.threads} over {limit}"
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["OMP_NUM_THREADS"] == str(arguments.threads)


def test_filebeat_decodes_the_ecs_lines_the_server_would_write():
    config = yaml.safe_load(FILEBEAT.read_text())
    (source,) = config["filebeat.inputs"]
    assert source["type"] == "filestream" and source["paths"]
    (parser,) = source["parsers"]
    assert parser["ndjson"]["target"] == "" and parser["ndjson"]["expand_keys"] is True
    assert config["output.elasticsearch"]["hosts"]

    line = toolchain.log_line(
        logging.getLogger("handbook.serve"),
        toolchain.ecs_handler(None),
        "request",
        request_id="abc",
        method="POST",
        path="/health",
        route="/health",
        status=200,
        duration_ms=1.5,
    )
    event = toolchain.flatten(json.loads(line))
    assert {"@timestamp", "log.level", "message", "ecs.version"} <= set(event)
    (dropping,) = [p["drop_event"] for p in config["processors"] if "drop_event" in p]
    ((field, value),) = dropping["when"]["equals"].items()
    assert event[field] == value, f"the drop condition reads {field}, the line has {event}"
