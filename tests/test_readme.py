"""Every line of README.md runs, and the example YAML shows every field of a spec.

The README is read as a user reads it: its fenced blocks in order (``python``, ``bash``, ``yaml``).

- ``bash`` lines are commands. Those that can run here run, in README order, in one temporary
  folder standing for a checkout (``examples/`` linked in), as a user would type them: ``make run``,
  ``tuneorch validate/run/ui``. Those that need what no test machine has (a Docker daemon, a
  registry, a Kubernetes cluster) are listed in :data:`NOT_RUNNABLE` with the reason, and are
  checked offline as far as they can be (files, names and tags they refer to). A command that is
  neither runnable nor listed fails the test, and so does a listed one the README no longer has.
- ``python`` blocks run in a subprocess in the same folder.
- ``yaml`` blocks go through ``tuneorch validate``: a whole spec as it is, a fragment merged into
  ``examples/digits_mlp.yaml``; so do ``examples/*.yaml``.
- Inline ``tuneorch ...`` commands in the prose are parsed by the CLI's own parser.

Only the sizes shrink (see :data:`TINY_RUN_ARGS`, :data:`SHRINK`): the runs use the README's own
commands and options, with fewer and shorter trials added through the documented ``--set`` (and
``RUN_ARGS`` for ``make run``); anything else the README changes (a renamed option, a file that
moved) fails here. The slow part (three short tuning runs on the session's Ray, the MLflow UI,
loading the registered model) took 2 min with the 2 cores shared by 10 busy processes (the
fast checks ~10 s).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = ROOT / "examples" / "digits_mlp.yaml"

#: Appended to every ``tuneorch run`` (and ``make run``) of the README: two trials of two epochs.
#: Later ``--set`` options win, so the README's own options are all applied first.
TINY_RUN_ARGS = ["--set", "num_samples=2", "--set", "space.epochs=2"]

#: Python blocks: (text in the README, what the test runs instead). Each must match exactly once.
SHRINK = [
    ("num_samples=20", "num_samples=2"),
    ('"epochs": 10', '"epochs": 2'),
]

#: Commands of the README that cannot run on a test machine, each with why. Keys are the commands
#: as written (continuation lines joined, comments and repeated spaces dropped).
NOT_RUNNABLE: dict[str, str] = {
    "make test":
        "runs the whole test suite, this test included (it would run itself); CI runs it (.ci/run)",
    "docker build -f deploy/kuberay/Dockerfile -t registry.example.com/ml/tuneorch:0.1.0-ray2.60.0-py311-gpu .":
        "needs a Docker daemon and pulls a multi-GB base image; checked offline: Dockerfile, context, tag",
    "docker build -t registry.example.com/ml/tuneorch-mlflow:3.18.0 deploy/kuberay/mlflow-image":
        "needs a Docker daemon; checked offline: the context holds the Dockerfile, the tag is the kustomization's",
    "docker push registry.example.com/ml/tuneorch:0.1.0-ray2.60.0-py311-gpu":
        "needs a registry and its credentials; checked offline: it pushes an image built above",
    "docker push registry.example.com/ml/tuneorch-mlflow:3.18.0":
        "needs a registry and its credentials; checked offline: it pushes an image built above",
    "kubectl create namespace tuneorch":
        "needs a Kubernetes cluster; checked offline: the kustomizations use this namespace",
    "kubectl -n tuneorch create secret generic tuneorch-s3 --from-literal=S3_BUCKET='<bucket>' "
    "--from-literal=AWS_ENDPOINT_URL='<https://s3.example.com>' --from-literal=AWS_ACCESS_KEY_ID='<access key id>' "
    "--from-literal=AWS_SECRET_ACCESS_KEY='<secret access key>'":
        "needs a Kubernetes cluster; tests/test_deploy.py checks its keys against the manifests",
    "kubectl -n tuneorch create secret generic mlflow-postgres --from-literal=POSTGRES_PASSWORD=\"$(openssl rand -hex 24)\"":
        "needs a Kubernetes cluster; tests/test_deploy.py checks its keys against the manifests",
    "kubectl -n tuneorch create secret generic tuneorch-ray-token --from-literal=auth_token=\"$(openssl rand -hex 32)\"":
        "needs a Kubernetes cluster; tests/test_deploy.py checks it is the RayCluster's token Secret",
    "kubectl apply -k deploy/kuberay/rayjob":
        "needs a cluster with the KubeRay operator; tests/test_deploy.py builds this kustomization "
        "offline and validates it against the KubeRay CRDs",
    "kubectl apply -k deploy/kuberay/raycluster":
        "needs a cluster with the KubeRay operator; tests/test_deploy.py builds this kustomization "
        "offline and validates it against the KubeRay CRDs",
    "kubectl -n tuneorch logs -f job/tuneorch-digits":
        "needs the running RayJob; checked offline: the RayJob (and so its submitter Job) has this name",
    "kubectl -n tuneorch port-forward svc/mlflow 5000":
        "needs the running cluster; checked offline: the Service and its port exist",
    "kubectl -n tuneorch port-forward svc/tuneorch-head-svc 8265 &":
        "needs the running cluster; checked offline: KubeRay names the head Service <RayCluster>-head-svc",
    "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=\"$(kubectl -n tuneorch get secret tuneorch-ray-token -o "
    "jsonpath='{.data.auth_token}' | base64 -d)\"":
        "reads the token from the cluster's Secret; tests/test_deploy.py runs token-authenticated "
        "`ray job submit` against a local head",
    "ray job submit --address http://127.0.0.1:8265 -- bash -c 'tuneorch run /home/ray/experiment/experiment.yaml "
    "--set storage_path=s3://$S3_BUCKET/tuneorch'":
        "needs the RayCluster's head; checked offline: the command the head runs parses, and the mounted "
        "spec validates with it",
}


# ----- reading the README ---------------------------------------------------------------------

@dataclasses.dataclass
class Block:
    lang: str
    text: str
    line: int  # README line of the block's first content line


@dataclasses.dataclass
class Command:
    text: str  # continuation lines joined, comment and repeated spaces dropped
    line: int


def readme_blocks(text: str | None = None) -> list[Block]:
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.fullmatch(r"\s*```(\w*)\s*", lines[i])
        if fence:
            start, i = i + 1, i + 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            if i == len(lines):
                raise AssertionError(f"README line {start}: a code block that is never closed")
            blocks.append(Block(fence.group(1).lower(), "\n".join(lines[start:i]) + "\n", start + 1))
        i += 1
    return blocks


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` at a word start, outside quotes)."""
    quote = None
    for k, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip()
    return line.rstrip()


def commands(block: Block) -> list[Command]:
    out, pending, first = [], "", None
    for k, raw in enumerate(block.text.splitlines()):
        line = strip_comment(raw)
        if first is None:
            first = block.line + k
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = " ".join((pending + line).split())
        pending = ""
        if text:
            out.append(Command(text, first))
        first = None
    assert not pending, f"README line {first}: a command continues past the end of its block"
    return out


def all_commands() -> list[Command]:
    return [c for b in readme_blocks() if b.lang in SHELL_LANGS for c in commands(b)]


SHELL_LANGS = ("bash", "sh", "shell", "console")
KNOWN_LANGS = SHELL_LANGS + ("python", "yaml")
RUNNABLE = re.compile(r"(make run|tuneorch (validate|run|ui|export|resume))(\s|$)")


def runnable(command: Command) -> bool:
    return RUNNABLE.match(command.text) is not None


def inline_spans(text: str) -> list[str]:
    """The inline code spans of the prose (fenced blocks left out)."""
    prose = re.sub(r"^\s*```.*?^\s*```\s*$", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


# ----- fast checks ----------------------------------------------------------------------------

def test_every_command_runs_here_or_says_why_it_cannot():
    blocks = readme_blocks()
    assert blocks, "README.md has no code blocks"
    unknown = [f"line {b.line}: ```{b.lang}" for b in blocks if b.lang not in KNOWN_LANGS]
    assert not unknown, f"code blocks of a kind this test cannot run: {unknown}; tag them bash, python or yaml"
    seen = all_commands()
    missing = [f"README line {c.line}: {c.text!r}" for c in seen if not runnable(c) and c.text not in NOT_RUNNABLE]
    assert not missing, ("commands that neither run here nor are listed in NOT_RUNNABLE with the reason "
                         "(a new line, or a listed one that changed):\n" + "\n".join(missing))
    stale = sorted(set(NOT_RUNNABLE) - {c.text for c in seen})
    assert not stale, f"NOT_RUNNABLE lists commands the README no longer has: {stale}"
    python = "".join(b.text for b in blocks if b.lang == "python")
    for old, _ in SHRINK:
        assert python.count(old) == 1, f"SHRINK: {old!r} appears {python.count(old)} times in the python blocks"
    assert any(c.text.startswith("make run") for c in seen) and any(c.text.startswith("tuneorch run") for c in seen)


def test_the_comment_of_a_command_is_not_part_of_it():
    block = Block("bash", "make run    # installs, then #1 tunes\necho 'a # b' \\\n  c  # d\n", 10)
    assert [(c.text, c.line) for c in commands(block)] == [("make run", 10), ("echo 'a # b' c", 11)]


def _validate(path: pathlib.Path, *overrides: str, cwd: pathlib.Path = ROOT) -> None:
    """``tuneorch validate`` itself (the CLI's main, in this process: no interpreter start)."""
    from orchestrator import cli

    args = ["validate", str(path)] + [a for o in overrides for a in ("--set", o)]
    old = os.getcwd()
    os.chdir(cwd)
    try:
        assert cli.main(args) == 0, f"tuneorch {' '.join(args)} refused it (see the error above)"
    finally:
        os.chdir(old)
        if sys.path and sys.path[0] == str(cwd):
            sys.path.pop(0)  # cli.main puts the working directory first, as the script does


def yaml_block_spec(block: Block, folder: pathlib.Path) -> pathlib.Path:
    """A YAML block as a spec file: a whole spec as it is, a fragment on top of the example."""
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), f"README line {block.line}: a YAML block that is not a mapping"
    if "trainable" not in data:
        data = {**yaml.safe_load(EXAMPLE.read_text()), **data}
    path = folder / f"readme-line-{block.line}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_blocks_pass_tuneorch_validate(tmp_path, capsys):
    blocks = [b for b in readme_blocks() if b.lang == "yaml"]
    assert blocks, "the README shows no YAML block"
    for block in blocks:
        _validate(yaml_block_spec(block, tmp_path))
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_yamls_pass_tuneorch_validate(path, capsys):
    _validate(path)
    assert f"{path}: valid" in capsys.readouterr().out


def _field_lines(text: str) -> dict[str, tuple[bool, str]]:
    """Top-level ``field:`` lines of a spec file: name -> (commented out, the whole line)."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"(# ?)?([a-z_]+):(\s|$)", line)
        if match:
            out.setdefault(match.group(2), (bool(match.group(1)), line))
    return out


def test_the_example_yaml_shows_every_field_of_a_spec(monkeypatch, tmp_path):
    from orchestrator.spec import ExperimentSpec

    text = EXAMPLE.read_text()
    shown = _field_lines(text)
    fields = [f.name for f in dataclasses.fields(ExperimentSpec)]
    missing = [name for name in fields if name not in shown]
    assert not missing, (f"{EXAMPLE.relative_to(ROOT)} does not show the spec fields {missing}: add each, "
                         f"commented out if it stays at its default ('# {missing[0]}: ...  # what it does; default ...')")
    for name in fields:
        commented, line = shown[name]
        if commented:  # one line: the field, an example value, what it does and its default
            assert re.search(r"\s#\s.*\bdefault\b", line[1:]), f"say what {name} does and its default: {line!r}"
    # Every commented field, uncommented, is valid as shown (secrets: the variable must be set).
    uncommented = re.sub(r"^# ?(?=[a-z_]+:(\s|$))", "", text, flags=re.M)
    for name in yaml.safe_load(uncommented).get("secrets") or []:
        monkeypatch.setenv(name, "set-for-the-test")
    path = tmp_path / "every-field.yaml"
    path.write_text(uncommented)
    _validate(path)
    assert set(yaml.safe_load(uncommented)) == set(fields)


def test_the_field_lines_of_a_spec_file():
    shown = _field_lines("name: x\n# stop: {a: 1}  # stops; default null\n#   tuneorch run x.yaml\n")
    assert shown == {"name": (False, "name: x"), "stop": (True, "# stop: {a: 1}  # stops; default null")}


def test_inline_commands_of_the_prose_parse():
    """``tuneorch ...``, ``--option`` and ``make target`` in the prose name what exists."""
    from orchestrator.cli import _parser

    parser = _parser()
    options = {o for action in parser._subparsers._group_actions for sub in action.choices.values()
               for a in sub._actions for o in a.option_strings}
    makefile = (ROOT / "Makefile").read_text()
    checked = 0
    for span in inline_spans(README.read_text()):
        words = shlex.split(span.replace("<", "_").replace(">", "_"))
        if span.startswith("tuneorch ") and len(words) == 2:  # a verb named in a sentence
            verbs = parser._subparsers._group_actions[0].choices
            assert words[1] in verbs, f"README's `{span}`: tuneorch has no verb {words[1]!r} ({sorted(verbs)})"
            checked += 1
        elif span.startswith("tuneorch "):
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"README's `{span}` is not a valid tuneorch command (see the usage above)")
            checked += 1
        elif span.startswith("--"):
            assert words[0] in options, f"README's `{span}`: tuneorch has no option {words[0]} ({sorted(options)})"
            checked += 1
        elif span.startswith("make ") and len(words) > 1:
            assert re.search(rf"^{re.escape(words[1])}:", makefile, re.M), f"README's `{span}`: no such target"
            checked += 1
    assert checked >= 5


# ----- the commands that cannot run here, checked offline ------------------------------------

def _kustomization(overlay: str) -> dict:
    return yaml.safe_load((ROOT / "deploy" / "kuberay" / overlay / "kustomization.yaml").read_text())


def _kuberay_docs() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "kuberay").rglob("*.yaml")):
        if path.name not in ("kustomization.yaml", "experiment.yaml"):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_deploy_commands_name_files_images_and_objects_that_exist():
    cmds = [c.text for c in all_commands() if not runnable(c)]
    docs = _kuberay_docs()
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    images = {i["name"]: i for overlay in ("rayjob", "raycluster") for i in _kustomization(overlay)["images"]}
    built = set()
    for text in cmds:
        words = shlex.split(text.rstrip("&"))
        if words[:2] == ["docker", "build"]:
            tag, context = words[words.index("-t") + 1], ROOT / words[-1]
            dockerfile = ROOT / words[words.index("-f") + 1] if "-f" in words else context / "Dockerfile"
            assert dockerfile.is_file() and context.is_dir(), text
            repository, version = tag.rsplit(":", 1)
            image = images[repository.rsplit("/", 1)[-1]]  # the kustomization maps this image name
            assert version == image["newTag"], f"{text}: the kustomizations deploy {image['newTag']}"
            built.add(tag)
        elif words[:2] == ["docker", "push"]:
            assert words[2] in built, f"{text}: pushes an image no line above builds"
        elif words[0] == "kubectl":
            namespace = _kustomization("rayjob")["namespace"]
            given = words[words.index("-n") + 1] if "-n" in words else words[3] if words[1:3] == ["create", "namespace"] else None
            assert given in (None, namespace), f"{text}: the kustomizations use the namespace {namespace}"
        if words[:3] == ["kubectl", "apply", "-k"]:
            assert (ROOT / words[3] / "kustomization.yaml").is_file(), text
        for word in words if words[0] == "kubectl" else []:
            kind, _, name = word.partition("/")
            if kind == "job":  # the submitter Job is named after its RayJob
                assert ("RayJob", name) in names, text
            elif kind == "svc":
                heads = {f"{n}-head-svc" for k, n in names if k == "RayCluster"}
                assert ("Service", name) in names or name in heads, text
                if ("Service", name) in names and len(words) > words.index(word) + 1:
                    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name)
                    assert int(words[words.index(word) + 1]) in {p["port"] for p in service["spec"]["ports"]}, text
    assert len(built) == 2


def test_the_command_ray_job_submit_gives_the_head_validates(monkeypatch):
    """``ray job submit -- bash -c '...'``: what the head's shell runs, with the Secret's S3_BUCKET."""
    from orchestrator.cli import _parser

    (text,) = [c.text for c in all_commands() if c.text.startswith("ray job submit")]
    entry = shlex.split(text)[shlex.split(text).index("--") + 1:]
    assert entry[:2] == ["bash", "-c"], text
    inner = shlex.split(entry[2].replace("$S3_BUCKET", "example-bucket"))
    assert inner[0] == "tuneorch"
    args = _parser().parse_args(inner[1:])
    mount = "/home/ray/experiment/"
    assert args.spec.startswith(mount)
    _validate(ROOT / "deploy" / "kuberay" / "base" / args.spec[len(mount):], *args.overrides)


# ----- running the README ---------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


class ReadmeSession:
    """One user's session in a fresh folder: the README's commands and snippets, in order."""

    def __init__(self, folder: pathlib.Path, ray_address: str | None = None):
        self.folder = folder
        (folder / "examples").symlink_to(ROOT / "examples")
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        if ray_address:
            # The runs join the test session's Ray, as the README says a run does when RAY_ADDRESS
            # is set (under `ray job submit`), instead of each starting a private one (~15 s each).
            self.env["RAY_ADDRESS"] = ray_address
        # `tuneorch ui` serves with one worker and no job runner (MLflow's own settings; FACTS.md:
        # its defaults start 11 processes, ~2.5 GB, whose workers time out on a loaded machine).
        self.env.update(MLFLOW_WORKERS="1", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.bin = pathlib.Path(sys.executable).parent
        self.log: list[str] = []

    def run(self, argv: list[str], where: str, timeout: int = 300) -> subprocess.CompletedProcess:
        start = time.monotonic()
        done = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.log.append(f"{time.monotonic() - start:5.1f} s  {where}")
        assert done.returncode == 0, f"{where} failed:\n{_tail(done)}"
        return done

    def tuneorch(self, words: list[str]) -> list[str]:
        script = self.bin / "tuneorch"
        return [str(script)] + words if script.exists() else [sys.executable, "-m", "orchestrator.cli"] + words

    def command(self, command: Command) -> None:
        where = f"README line {command.line}: {command.text}"
        words = shlex.split(command.text)
        if words[:2] == ["make", "run"]:
            # The Makefile's own run target from this folder, on this interpreter's environment,
            # without re-installing it (-o: the install stamp counts as up to date).
            venv = sys.prefix
            self.run(["make", "-f", str(ROOT / "Makefile"), "-o", f"{venv}/.installed", f"VENV={venv}",
                      *words[1:], "RUN_ARGS=" + " ".join(TINY_RUN_ARGS)], where)
        elif words[:2] == ["tuneorch", "run"]:
            done = self.run(self.tuneorch(words[1:] + TINY_RUN_ARGS), where)
            assert "best metric" in done.stdout, done.stdout[-2000:]
        elif words[:2] == ["tuneorch", "ui"]:
            self.ui(self.tuneorch(words[1:] + ["--port", str(_free_port())]), where)
        else:
            self.run(self.tuneorch(words[1:]), where)

    def ui(self, argv: list[str], where: str) -> None:
        """Start it, see it serve the recorded experiments, stop it (its own process group)."""
        port = argv[-1]
        start = time.monotonic()
        log = open(self.folder / f"ui-{port}.log", "wb")
        proc = subprocess.Popen(argv, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            names, deadline = None, time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
                        data=json.dumps({"max_results": 100}).encode(), headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=5) as answer:
                        names = {e["name"]: e["experiment_id"] for e in json.load(answer).get("experiments", [])}
                        break
                except OSError:
                    time.sleep(0.5)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
            log.close()
        self.log.append(f"{time.monotonic() - start:5.1f} s  {where}")
        output = (self.folder / f"ui-{port}.log").read_text(errors="replace")[-3000:]
        assert names is not None, f"{where}: the UI never answered (exit {proc.returncode}):\n{output}"
        assert "digits-mlp" in names, f"{where}: the UI does not show the run's experiment: {names}"
        # The link it prints opens that experiment's runs (not MLflow 3's GenAI home page).
        link = f"digits-mlp: http://127.0.0.1:{port}/#/experiments/{names['digits-mlp']}?workflowType=machine_learning"
        assert link in (self.folder / f"ui-{port}.log").read_text(errors="replace"), \
            f"{where}: no link to the experiment's runs page:\n{output}"

    def python(self, block: Block) -> None:
        code = block.text
        for old, new in SHRINK:
            code = code.replace(old, new)
        path = self.folder / f"readme_line_{block.line}.py"
        path.write_text(code)
        self.run([sys.executable, str(path)], f"README line {block.line}: the python block")


@pytest.mark.slow
def test_every_readme_line_runs(tmp_path, ray_local):
    from mlflow import MlflowClient

    session = ReadmeSession(tmp_path, ray_local.get_runtime_context().gcs_address)
    ran = 0
    try:
        for block in readme_blocks():
            if block.lang in SHELL_LANGS:
                for command in commands(block):
                    if runnable(command):
                        session.command(command)
                        ran += 1
            elif block.lang == "python":
                session.python(block)
                ran += 1
            elif block.lang == "yaml":
                _validate(yaml_block_spec(block, tmp_path), cwd=tmp_path)
                ran += 1
    finally:
        print("\n".join(session.log))
    assert ran >= 7
    # `make run` registered the best model, with its alias, where the README says.
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("digits-mlp", "champion")
    assert champion.status == "READY" and int(champion.version) >= 1
