"""A class past one machine: the Zero to JupyterHub values, the course image and the grading Jobs.

``deploy/jupyterhub/config.yaml`` (the chart's values), ``deploy/Dockerfile.singleuser`` (the
course image and its ``grader`` stage), ``deploy/jupyterhub/grade-job.yaml`` (an Indexed Job, one
pod per shard of the class) and ``merge-job.yaml`` are parsed and checked against each other and
against the code they run, as ``tests/test_deploy.py`` does for the server: the image each one
names, the chart's version, the non-root user, the student edition, the pods' security fields,
the shard count and the grader's limits. ``deploy/jupyterhub/grade_shard.py``, the wrapper the
grading pods run, is tested on folders made here, and one class is graded in two shards and
merged for real. Nothing here needs Docker, Helm or a cluster.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shlex
import sys
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import dockerfiles
import nbformat
import pytest
import yaml

from handbook import config
from handbook.exercises import grading, sandbox, student

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
HUB = DEPLOY / "jupyterhub"
DOCKERFILE = DEPLOY / "Dockerfile.singleuser"
DOCKERIGNORE = DEPLOY / "Dockerfile.singleuser.dockerignore"
BOOK_PAGE = ROOT / "book" / "classroom.md"
#: Where the grader stage installs the wrapper, and what the Jobs run.
WRAPPER_IN_IMAGE = "/usr/local/bin/handbook-grade-shard"
#: Beside each cell's limit, the pool process grading the submission and its sandbox's
#: supervisor, each with PyTorch imported (a Python that imports torch peaks near 0.5 GiB).
PER_SANDBOX_MIB = 1536
#: The grader's main process (it reads the chapter's checks, which import torch).
GRADER_MIB = 1024
#: JupyterLab and a kernel with PyTorch imported, beside the largest cell a student may run.
SERVER_MIB = 1024


# --- reading the files -------------------------------------------------------------------------


@cache
def wrapper():
    spec = importlib.util.spec_from_file_location("grade_shard", HUB / "grade_shard.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@cache
def values() -> dict:
    return yaml.safe_load((HUB / "config.yaml").read_text())


def documents(name: str) -> dict[str, dict]:
    docs = [doc for doc in yaml.safe_load_all((HUB / name).read_text()) if doc]
    return {doc["kind"]: doc for doc in docs}


def grade_job() -> dict:
    return documents("grade-job.yaml")["Job"]


def merge_job() -> dict:
    return documents("merge-job.yaml")["Job"]


def container(job: dict) -> dict:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def wrapper_arguments(job: dict):
    command = container(job)["command"]
    assert command[:2] == ["python", WRAPPER_IN_IMAGE], f"not the shard wrapper: {command}"
    return wrapper().parser().parse_args(command[2:])


@cache
def stages() -> list[dict]:
    """The Dockerfile's stages: ``{"from", "name", "lines": [(INSTRUCTION, arguments)]}``,
    continuation lines joined, comments dropped."""
    result = []
    for _, keyword, arguments in dockerfiles.instructions(DOCKERFILE):
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append({"from": words[0], "name": name, "lines": []})
        else:
            assert result, "an instruction before the first FROM"
            result[-1]["lines"].append((keyword, arguments))
    return result


def stage(name: str) -> dict:
    found = [item for item in stages() if item["name"] == name]
    assert len(found) == 1, f"expected one stage {name!r}, found {len(found)}"
    return found[0]


def lineage(item: dict) -> list[dict]:
    """A stage and every stage it is built FROM."""
    chain = [item]
    names = {other["name"]: other for other in stages()}
    while chain[-1]["from"] in names:
        chain.append(names[chain[-1]["from"]])
    return chain


def instructions(item: dict, keyword: str) -> list[str]:
    return [arguments for kw, arguments in item["lines"] if kw == keyword]


def build_tags() -> dict[str, str]:
    """``docker build`` commands in the Dockerfile's header: target (None = last stage) -> tag."""
    tags = {}
    for line in DOCKERFILE.read_text().splitlines():
        if "docker build" in line:
            words = shlex.split(line.lstrip("# "))
            target = words[words.index("--target") + 1] if "--target" in words else None
            tags[target] = words[words.index("-t") + 1]
    return tags


def chart_version() -> str:
    found = set(re.findall(r"--version (\S+)", (HUB / "config.yaml").read_text()))
    assert len(found) == 1, f"config.yaml must pin the chart with one --version, found {found}"
    return found.pop()


def package_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1)


def mebibytes(quantity: str) -> float:
    units = {
        "Ki": 2**-10,
        "Mi": 1,
        "Gi": 2**10,
        "K": 1e3 / 2**20,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
    }
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(quantity)).groups()
    return float(number) * (units[unit] if unit else 2**-20)


def cores(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


# --- the course image --------------------------------------------------------------------------


def test_every_stage_starts_from_a_pinned_image_or_an_earlier_stage():
    names = set()
    for item in stages():
        base = item["from"]
        if base not in names:
            repository, _, tag = base.rpartition(":")
            assert repository and tag and tag != "latest" and "/" not in tag, (
                f"FROM {base}: pin the base image by tag"
            )
        names.add(item["name"])


def test_the_base_is_the_chart_s_sample_image_at_the_pinned_chart_version():
    base = stages()[0]["from"]
    assert base == f"quay.io/jupyterhub/k8s-singleuser-sample:{chart_version()}", (
        f"the base {base} and the chart --version {chart_version()} differ"
    )
    assert f"--version {chart_version()}" in BOOK_PAGE.read_text(), (
        "book/classroom.md's helm command pins another chart version"
    )


def test_the_image_runs_as_the_numeric_user_the_hub_and_the_jobs_use():
    final = stages()[-1]
    user = instructions(final, "USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {user}: a numeric user that is not root"
    assert values()["singleuser"]["uid"] == int(user), "singleuser.uid differs from the image's"
    for job in (grade_job(), merge_job()):
        context = job["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == int(user), context
    grader_user = instructions(stage("grader"), "USER")[-1].split(":")[0]
    assert grader_user == user, f"the grader stage runs as {grader_user}, the Jobs as {user}"


def test_the_book_s_kernel_and_jupyterlab_myst_are_installed_with_cpu_torch():
    runs = " ".join(instructions(stages()[0], "RUN"))
    kernel = json.loads((ROOT / "notebooks" / "00_digits.ipynb").read_text())["metadata"]
    name = kernel["kernelspec"]["name"]
    assert f"ipykernel install --sys-prefix --name {name} " in runs, f"no kernel named {name}"
    assert kernel["kernelspec"]["display_name"] in runs
    assert "jupyterlab-myst" in runs, "the image does not check that jupyterlab-myst is there"
    assert "--index-url https://download.pytorch.org/whl/cpu torch" in runs
    assert "torch.version.cuda is None" in runs
    assert "command -v unshare && command -v setpriv" in runs, "the sandbox needs util-linux"


def test_the_student_edition_is_built_and_is_all_the_final_image_holds_of_the_notebooks():
    edition = stage("edition")
    (built,) = [shlex.split(run) for run in instructions(edition, "RUN") if "student" in run]
    assert built[:4] == ["python", "-m", "handbook", "student"], built
    out = built[built.index("--out") + 1]
    final = stages()[-1]
    copies = [args.split() for args in instructions(final, "COPY")]
    assert [f"--from={edition['name']}", out, "./notebooks"] in copies, copies
    workdirs = [w for item in reversed(lineage(final)) for w in instructions(item, "WORKDIR")]
    assert "/opt/book" in workdirs, "the edition must land in /opt/book/notebooks"
    hook = " ".join(values()["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert "cp -R -n /opt/book/notebooks/. " in hook, f"the hook copies something else: {hook}"
    assert hook.rstrip().endswith("|| true"), "a failing postStart hook kills the server"
    for item in lineage(final):  # the solution cells never reach a student's image
        for args in instructions(item, "COPY"):
            if not args.startswith("--from="):
                assert "notebooks" not in args.split()[:-1], (
                    f"stage {item['name']} copies the source notebooks into the student image"
                )
    assert "edition" not in {item["name"] for item in lineage(final)}
    assert any(args.split()[0] == "notebooks" for args in instructions(stage("grader"), "COPY")), (
        "the grader reads its checks from the source notebooks"
    )


def test_the_build_context_holds_what_the_image_copies_and_nobody_s_work():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(name: str) -> bool:
        result = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            pattern = pattern.removeprefix("!").strip("/")
            if fnmatch(name, pattern) or fnmatch(name, pattern.removeprefix("**/")):
                result = not negated
        return result

    for name in (".venv", "_build", ".git", "student", "grades", "submissions"):
        assert excluded(name), f"{DOCKERIGNORE.name} lets {name} into the image"
    sources = [
        source.removeprefix("./").rstrip("/")
        for item in stages()
        for args in instructions(item, "COPY")
        if not args.startswith("--from=")
        for source in args.split()[:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not excluded(source), f"COPY {source}, but {DOCKERIGNORE.name} leaves it out"


def test_what_the_chapters_write_goes_to_the_student_s_persistent_home():
    final = stages()[-1]
    env = " ".join(instructions(final, "ENV"))
    (build,) = re.findall(r"HANDBOOK_BUILD_DIR=(\S+)", env)
    home = values()["singleuser"]["storage"]["homeMountPath"]
    assert build.startswith(home + "/"), f"HANDBOOK_BUILD_DIR={build} is not under {home}"


def test_the_package_is_installed_editable_in_a_checkout_the_sandbox_can_mask():
    """Installed into site-packages, the package would leave /opt/book (with the grader's source
    notebooks, their solution cells) readable inside the sandbox: the sandbox masks the book's
    checkout only when the package is imported from it."""
    base = stages()[0]
    assert instructions(base, "WORKDIR")[-1] == "/opt/book"
    copied = {source for args in instructions(base, "COPY") for source in args.split()[:-1]}
    assert {"_toc.yml", "pyproject.toml", "handbook"} <= copied, copied
    installs = [shlex.split(run) for run in instructions(base, "RUN") if "pip install" in run]
    editable = [words for words in installs if "-e" in words]
    assert any(words[words.index("-e") + 1] == "." for words in editable), (
        "install the package with pip install -e . (editable, from /opt/book)"
    )


def test_the_grader_stage_installs_the_wrapper_the_jobs_run():
    copies = [args.split() for args in instructions(stage("grader"), "COPY")]
    assert ["deploy/jupyterhub/grade_shard.py", WRAPPER_IN_IMAGE] in copies, copies


# --- the hub's values --------------------------------------------------------------------------


def test_the_hub_runs_the_course_image_tagged_with_the_package_version():
    image = values()["singleuser"]["image"]
    tags = build_tags()
    assert tags[None] == f"handbook-course:{package_version()}", tags
    assert tags["grader"] == f"handbook-course-grader:{package_version()}", tags
    assert f"{image['name'].rsplit('/', 1)[-1]}:{image['tag']}" == tags[None], image
    registry = image["name"].rsplit("/", 1)[0]
    for job in (grade_job(), merge_job()):
        assert container(job)["image"] == f"{registry}/{tags['grader']}", container(job)["image"]
    for init in values()["singleuser"].get("initContainers", []):
        assert init["image"] == f"{image['name']}:{image['tag']}", init["image"]


def test_a_real_authenticator_and_the_instructor_as_admin():
    hub = values()["hub"]["config"]
    authenticator = hub["JupyterHub"]["authenticator_class"]
    assert "dummy" not in authenticator.lower() and authenticator != "null", authenticator
    assert authenticator == "ltiauthenticator.lti13.auth.LTI13Authenticator", authenticator
    lti = hub["LTI13Authenticator"]
    for key in ("issuer", "authorize_url", "jwks_endpoint", "client_id", "username_key"):
        assert lti.get(key), f"LTI13Authenticator.{key} is missing"
    for key in ("authorize_url", "jwks_endpoint"):
        assert lti[key].startswith("https://"), f"{key} must be HTTPS: {lti[key]}"
    assert hub["Authenticator"]["admin_users"], "no instructor among the admin users"
    assert values()["proxy"]["https"]["enabled"] is True, "LTI launches need HTTPS"


def test_each_student_has_storage_resources_and_a_server_that_is_culled():
    single = values()["singleuser"]
    assert single["storage"]["type"] == "dynamic" and single["storage"]["capacity"]
    memory = grading_settings(grade_job())["memory"]
    limit = mebibytes(single["memory"]["limit"])
    assert limit >= memory + SERVER_MIB, (
        f"a student's server ({single['memory']['limit']}) cannot run a cell the grader allows "
        f"({memory} MiB) beside JupyterLab and its kernel"
    )
    assert mebibytes(single["memory"]["guarantee"]) <= limit
    assert 0 < single["cpu"]["guarantee"] <= single["cpu"]["limit"]
    cull = values()["cull"]
    assert cull["enabled"] is True and 0 < cull["every"] < cull["timeout"], cull
    assert cull.get("users") is False, "culling users would delete the students"


def test_student_servers_reach_only_the_hub_and_dns():
    policy = values()["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    rules = policy["egressAllowRules"]
    for rule in ("nonPrivateIPs", "privateIPs", "cloudMetadataServer"):
        assert rules[rule] is False, f"singleuser egress {rule} is allowed"


def test_each_student_mounts_only_their_own_submit_and_feedback_folders():
    storage = values()["singleuser"]["storage"]
    mounts = {mount["mountPath"]: mount for mount in storage["extraVolumeMounts"]}
    submit, feedback = mounts["/home/jovyan/submit"], mounts["/home/jovyan/feedback"]
    assert submit["subPath"] == "{username}", submit
    assert feedback["subPath"].endswith("/{username}") and feedback["readOnly"] is True
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in storage["extraVolumes"]
    }
    names = {
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all((HUB / "course-volumes.yaml").read_text())
        if doc
    }
    assert set(claims.values()) <= names, f"{claims} vs {names}"
    job_claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in grade_job()["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert job_claims["submissions"] == claims[submit["name"]]
    assert feedback["subPath"].startswith("class/feedback/"), "the merge writes class/feedback"
    assert job_claims["grades"] == claims[feedback["name"]]


# --- the grading Jobs --------------------------------------------------------------------------


def grading_settings(job: dict) -> dict:
    return wrapper().settings_of(wrapper_arguments(job))


def test_the_grading_job_is_indexed_with_one_completion_per_shard():
    spec = grade_job()["spec"]
    assert spec["completionMode"] == "Indexed"
    arguments = wrapper_arguments(grade_job())
    assert arguments.command == "shard" and arguments.index is None, "the index is the Job's"
    assert spec["completions"] == arguments.shards, (
        f"completions {spec['completions']} but --shards {arguments.shards}: students would be "
        "graded twice or never"
    )
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] >= arguments.notebook_timeout


def test_the_merge_grades_with_the_settings_the_shards_graded_with():
    shard, merge = wrapper_arguments(grade_job()), wrapper_arguments(merge_job())
    assert merge.command == "merge"
    assert wrapper().settings_of(shard) == wrapper().settings_of(merge)
    assert (shard.submissions, shard.out) == (merge.submissions, merge.out)
    mounts = {m["mountPath"] for m in container(merge_job())["volumeMounts"]}
    assert str(merge.roster.parent) in mounts, f"--roster {merge.roster} is in no mounted volume"
    assert str(merge.out) in mounts and str(merge.submissions) in mounts


def test_a_grading_pod_holds_its_sandboxes_within_its_limits():
    arguments = wrapper_arguments(grade_job())
    limits = container(grade_job())["resources"]["limits"]
    needed = arguments.jobs * (arguments.memory + PER_SANDBOX_MIB) + GRADER_MIB
    assert mebibytes(limits["memory"]) >= needed, (
        f"memory limit {limits['memory']} under {arguments.jobs} x ({arguments.memory} MiB per "
        f"cell + {PER_SANDBOX_MIB} MiB for its grading process and supervisor) + {GRADER_MIB} "
        "MiB for the grader: the OOM killer would take the whole shard"
    )
    assert cores(limits["cpu"]) >= arguments.jobs, f"{arguments.jobs} sandboxes on {limits['cpu']}"
    requests = container(grade_job())["resources"]["requests"]
    assert requests == limits, "a grading pod that can be squeezed times its cells out unfairly"


@pytest.mark.parametrize("job", ["grade", "merge"])
def test_the_grading_pods_are_locked_down(job):
    manifest = grade_job() if job == "grade" else merge_job()
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False, "a cell could use the pod's token"
    assert pod.get("enableServiceLinks") is False
    box = container(manifest)
    context = box["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
    unconfined = pod["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    if unconfined or context.get("procMount") == "Unmasked":
        assert pod.get("hostUsers") is False, "unconfined only inside the pod's user namespace"
    mounts = {mount["mountPath"]: mount for mount in box["volumeMounts"]}
    assert mounts["/submissions"].get("readOnly") is True, "the grader never writes submissions"
    home = {item["name"]: item["value"] for item in box["env"]}["HOME"]
    writable = [path for path, mount in mounts.items() if not mount.get("readOnly")]
    assert any(home.startswith(path) for path in writable), f"HOME={home} is read-only"
    assert "/tmp" in writable, "the sandbox's scratch and the grader's temporary files"


def test_the_grading_pods_are_denied_all_traffic():
    policy = documents("grade-job.yaml")["NetworkPolicy"]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["spec"]["egress"] == [] and policy["spec"]["ingress"] == []
    (expression,) = policy["spec"]["podSelector"]["matchExpressions"]
    for job in (grade_job(), merge_job()):
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert labels[expression["key"]] in expression["values"], labels


# --- the wrapper: which notebooks each shard grades --------------------------------------------


def make_class(root: Path) -> Path:
    """alice/ and bob/ with a notebook each (bob two), carol.ipynb, and what must be skipped."""
    submissions = root / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "alice" / "00_digits.ipynb").write_text("{}")
    (submissions / "alice" / "notes.txt").write_text("not a notebook")
    (submissions / "alice" / ".ipynb_checkpoints").mkdir()
    (submissions / "alice" / ".ipynb_checkpoints" / "00_digits-checkpoint.ipynb").write_text("{}")
    (submissions / "bob" / "extra").mkdir(parents=True)
    (submissions / "bob" / "00_digits.ipynb").write_text("{}")
    (submissions / "bob" / "extra" / "01_attention.ipynb").write_text("{}")
    (submissions / "bob" / "alice.ipynb").symlink_to(submissions / "alice" / "00_digits.ipynb")
    os.mkfifo(submissions / "bob" / "pipe.ipynb")
    (submissions / "carol.ipynb").write_text("{}")
    (submissions / "dave").symlink_to(submissions / "alice")
    (submissions / ".hidden").mkdir()
    (submissions / "empty").mkdir()
    return submissions


def test_the_class_is_every_regular_notebook_and_the_rest_is_skipped_with_why(tmp_path):
    selection = wrapper().select_class(make_class(tmp_path))
    assert selection.students == {
        "alice": ["alice/00_digits.ipynb"],
        "bob": ["bob/00_digits.ipynb", "bob/extra/01_attention.ipynb"],
        "carol": ["carol.ipynb"],
    }
    assert selection.skipped == {
        "alice/notes.txt": "not a notebook (.ipynb)",
        "bob/alice.ipynb": "a symbolic link",
        "bob/pipe.ipynb": "not a regular file",
        "dave": "a symbolic link",
    }
    with pytest.raises(FileNotFoundError, match="no submissions folder"):
        wrapper().select_class(tmp_path / "nowhere")


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_grade_every_student_exactly_once(count):
    students = [f"student{number:03d}" for number in range(20)]
    shards = [wrapper().shard_students(students, index, count) for index in range(count)]
    graded = [name for shard in shards for name in shard]
    assert sorted(graded) == sorted(students), "a student graded twice or never"
    assert max(map(len, shards)) - min(map(len, shards)) <= 1, "unbalanced shards"
    with pytest.raises(ValueError, match=f"shard index in 0..{count - 1}"):
        wrapper().shard_students(students, count, count)


def test_a_shard_refuses_to_grade_without_the_sandbox_s_namespaces(tmp_path, monkeypatch):
    submissions = make_class(tmp_path)
    monkeypatch.setattr(
        sandbox, "isolation", lambda: sandbox.Isolation((), False, "unshare failed (test)")
    )
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    arguments = ["shard", "--submissions", str(submissions), "--out", str(tmp_path / "g")]
    with pytest.raises(SystemExit, match=r"no namespaces here \(unshare failed \(test\)\)"):
        wrapper().main([*arguments, "--shards", "2"])
    assert not (tmp_path / "g" / "shards" / "0" / "manifest.json").exists()


def test_a_shard_without_students_completes_at_once(tmp_path):
    submissions = make_class(tmp_path)
    out = tmp_path / "g"
    arguments = ["shard", "--submissions", str(submissions), "--out", str(out), "--shards", "5"]
    assert wrapper().main([*arguments, "--index", "4"]) == 0  # 3 students, shard 4 is empty
    manifest = json.loads((out / "shards" / "4" / "manifest.json").read_text())
    assert manifest["submissions"] == {} and manifest["shards"] == 5


def test_the_merge_says_what_keeps_it_from_joining_the_shards(tmp_path, capsys):
    submissions = make_class(tmp_path)
    out = tmp_path / "g"
    merge = ["merge", "--submissions", str(submissions), "--out", str(out), "--memory", "2048"]
    assert wrapper().main(merge) == 2
    assert "run the grading Job first" in capsys.readouterr().err

    def manifest(index: int, names: list[str], memory: int | None = 2048) -> None:
        folder = out / "shards" / str(index)
        folder.mkdir(parents=True, exist_ok=True)
        settings = dict.fromkeys(wrapper().SETTINGS) | {"memory": memory}
        record = {
            "index": index,
            "shards": 3,
            "settings": settings,
            "submissions": {name: wrapper().digest(submissions / name) for name in names},
        }
        (folder / "manifest.json").write_text(json.dumps(record))

    manifest(0, ["alice/00_digits.ipynb"])
    manifest(1, ["bob/00_digits.ipynb", "bob/extra/01_attention.ipynb"], memory=1024)
    assert wrapper().main(merge) == 2
    err = capsys.readouterr().err
    assert "shard(s) [2] of 3 have not finished" in err
    assert "shard 1 was graded with" in err and "'memory': 1024" in err
    manifest(1, ["bob/00_digits.ipynb", "bob/extra/01_attention.ipynb"])
    manifest(2, [])
    (submissions / "alice" / "00_digits.ipynb").write_text('{"changed": true}')
    assert wrapper().main(merge) == 2
    err = capsys.readouterr().err
    assert "carol.ipynb is in no shard: it was submitted after the grading Job ran" in err
    assert "alice/00_digits.ipynb changed after it was graded" in err
    assert "not finished" not in err and "was graded with" not in err


# --- one class, graded in two shards and merged -----------------------------------------------

#: The same solution of exercise 0.2, written apart from the book's, in two students' words.
COPIED = (
    "def accuracy(logits, labels):\n"
    "    total = len(labels)\n"
    "    if total == 0:\n"
    "        raise ValueError('no rows')\n"
    "    hits = 0\n"
    "    for guess, truth in zip(logits.argmax(dim=1).tolist(), labels.tolist()):\n"
    "        hits += int(guess == truth)\n"
    "    return hits / total\n"
)
RENAMED = (
    COPIED.replace("total", "n")
    .replace("hits", "right")
    .replace("guess", "g")
    .replace("truth", "t")
)


def rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_two_shards_merged_grade_the_class_and_find_a_copy_across_them(tmp_path, capfd):
    """Alice and Bob hand in the same exercise 0.2 under other names, Carol the student edition.
    Shard 0 grades Alice and Carol, shard 1 Bob; the merge grades nobody again, shows the class's
    table and flags the copy that no shard could see alone."""
    source = config.project_root() / "notebooks" / "00_digits.ipynb"
    submissions = tmp_path / "submissions"
    for name, solution in (("alice", COPIED), ("bob", RENAMED), ("carol", None)):
        path = submissions / name / "00_digits.ipynb"
        student.make_student_edition(source, path)
        if solution:
            notebook = nbformat.read(path, as_version=4)
            for cell in notebook.cells:
                if "exercise-0.2" in cell.metadata.get("tags", []):
                    cell.source = solution
            nbformat.write(notebook, path)
    out = tmp_path / "grades"
    common = ["--submissions", str(submissions), "--out", str(out), "--chapter", "0"]
    for index in (0, 1):
        status = wrapper().main(
            ["shard", *common, "--shards", "2", "--index", str(index), "--allow-unisolated"]
        )
        assert status == 0, f"shard {index} failed"
    shard_rows = [rows(out / "shards" / str(index) / "grades.csv") for index in (0, 1)]
    assert [len(table) for table in shard_rows] == [2, 1]
    capfd.readouterr()
    assert wrapper().main(["merge", *common]) == 0
    printed = capfd.readouterr()
    table = {row["submission"]: row for row in rows(out / "class" / "grades.csv")}
    assert sorted(table) == [f"{name}/00_digits.ipynb" for name in ("alice", "bob", "carol")]
    assert table["alice/00_digits.ipynb"]["0.2"].startswith("passed"), table
    assert table["bob/00_digits.ipynb"]["0.2"].startswith("passed"), table
    assert table["carol/00_digits.ipynb"]["0.2"] == "not done", table
    copies = rows(out / "class" / "copies.csv")
    assert [(row["first"], row["second"]) for row in copies if row["exercise"] == "0.2"] == [
        ("alice/00_digits.ipynb", "bob/00_digits.ipynb")
    ], copies
    assert (out / "class" / "feedback" / "alice" / "00_digits.md").is_file()
    assert "3 submission(s) already graded" in printed.out
    assert "[1/" not in printed.out, "the merge graded a submission again"
    assert grading.chapter_checks(0), "the chapter's checks are read from the source notebook"
