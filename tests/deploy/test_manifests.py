"""Kubernetes manifests in deploy/kubernetes: schema-valid, hardened, and scanned by checkov."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from tests.deploy.environment import agent_reads, library_reads

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
BASE = K8S / "base"
NATIVE = K8S / "native-sidecar"
AGENT = "logshield-agent"
APP = "app"
AGENT_CONFIG, APP_CONFIG = "logshield-agent", "your-app-logshield"
AGENT_SECRET, APP_SECRET = "logshield-agent-keys", "your-app-logshield-keys"
#: Seconds the agent may take after LOGSHIELD_SHUTDOWN_GRACE before it exits anyway (commands/run.py).
GRACE_MARGIN = 1
# Oldest version with native sidecars on by default, and the newest schema the package ships.
K8S_VERSIONS = ("1.29.0", "1.30.0", kubernetes_validate.latest_version())

# Checks skipped in the checkov scan, each with the reason. Keep this list short.
CHECKOV_SKIPS = {
    # Both images are placeholders (example.com/...): there is no digest to pin. kustomization.yaml
    # and deploy/README.md show how to pin the real images by digest with `kustomize edit set image`.
    "CKV_K8S_43": "Image should use digest",
}


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Return the non-empty YAML documents of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes object file (not kustomizations, not patches)."""
    kustomization = load_documents(BASE / "kustomization.yaml")[0]
    return [BASE / name for name in kustomization["resources"]]


def render(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization the way kustomize does, for the features these files use.

    Supports resources (files and directories), namespace, images (newName/newTag/digest) and
    RFC 6902 patches with a kind/name target. Anything else fails loudly rather than silently
    rendering something different from kustomize.
    """
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    allowed = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
    unknown = set(kustomization) - allowed
    assert not unknown, f"render() does not support {sorted(unknown)}"
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        target = (directory / resource).resolve()
        objects += render(target) if target.is_dir() else load_documents(target)
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in pod_containers(obj):
                if container["image"].rsplit(":", 1)[0] == image["name"]:
                    name = image.get("newName", image["name"])
                    ref = f"{name}:{image.get('newTag', container['image'].rsplit(':', 1)[1])}"
                    container["image"] = ref + (f"@{image['digest']}" if "digest" in image else "")
    for patch in kustomization.get("patches", []):
        operations = load_documents(directory / patch["path"])[0]
        assert isinstance(operations, list), "only RFC 6902 patches are supported"
        selector = patch["target"]
        for index, obj in enumerate(objects):
            if obj["kind"] == selector["kind"] and obj["metadata"]["name"] == selector["name"]:
                objects[index] = jsonpatch.apply_patch(obj, operations)
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return obj["spec"]["template"]["spec"]
    return obj["spec"] if obj.get("kind") == "Pod" else None


def pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def find(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (match,) = [obj for obj in objects if obj["kind"] == kind]
    return match


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (match,) = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return match


def container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_containers(find(objects, "Deployment")) if c["name"] == name]
    return found


def agent_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return container(objects, AGENT)


def container_env(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The environment a container gets: its ConfigMaps (envFrom) and its own env values."""
    found = container(objects, name)
    env: dict[str, str] = {}
    for source in found.get("envFrom", []):
        env.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e.get("value", "") for e in found.get("env", [])})
    return env


def agent_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return container_env(objects, AGENT)


def volume_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)?", quantity).groups()
    return int(number) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[unit]


def security_violations(objects: list[dict[str, Any]]) -> list[str]:
    """Return every way the workload misses the hardening this project promises (empty: none)."""
    problems: list[str] = []
    env = agent_env(objects)
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod_ctx = spec.get("securityContext", {})
        if pod_ctx.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod runAsNonRoot is not true")
        if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append(f"{where}: shares a host namespace")
        for container in pod_containers(obj):
            name = f"{where}/{container['name']}"
            ctx = container.get("securityContext", {})
            uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
            if ctx.get("runAsNonRoot") is not True:
                problems.append(f"{name}: runAsNonRoot is not true")
            if not isinstance(uid, int) or uid < 10000:
                problems.append(f"{name}: runAsUser {uid!r} is not a numeric UID >= 10000")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: readOnlyRootFilesystem is not true")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if ctx.get("privileged"):
                problems.append(f"{name}: privileged")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities do not drop ALL")
            if ctx.get("capabilities", {}).get("add"):
                problems.append(f"{name}: adds capabilities")
            if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccompProfile is not RuntimeDefault")
            image = container.get("image", "")
            tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
            if tag in {"", "latest"}:
                problems.append(f"{name}: image {image!r} is not pinned by tag")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{name}: no {resource} {kind}")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{name}: no {probe}")
        for container in pod_containers(obj):
            if container["name"] != AGENT:
                continue
            name = f"{where}/{AGENT}"
            if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problems.append(f"{name}: liveness probe is not /healthz")
            if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                problems.append(f"{name}: readiness probe is not /readyz")
            native = container.get("restartPolicy") == "Always"
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            if not native and (pre_stop[:1] != ["sleep"] or len(pre_stop) != 2):
                problems.append(f"{name}: classic sidecar without a preStop sleep")
            sleep = int(pre_stop[1]) if len(pre_stop) == 2 else 0
            budget = sleep + int(env.get("LOGSHIELD_SHUTDOWN_GRACE", "10")) + GRACE_MARGIN
            if spec.get("terminationGracePeriodSeconds", 30) <= budget:
                problems.append(f"{where}: terminationGracePeriodSeconds does not exceed preStop + grace + margin")
            log_mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/var/log/app"]
            if not log_mounts or not all(m.get("readOnly") for m in log_mounts):
                problems.append(f"{name}: the application's log volume is not mounted read-only")
    return problems


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


@pytest.fixture(scope="module")
def native() -> list[dict[str, Any]]:
    return render(NATIVE)


class TestSchemas:
    @pytest.mark.parametrize("version", K8S_VERSIONS)
    @pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
    def test_file_is_valid(self, path: Path, version: str) -> None:
        """Every manifest file validates strictly (no unknown fields) against the offline schema."""
        for doc in load_documents(path):
            kubernetes_validate.validate(doc, version, strict=True)

    @pytest.mark.parametrize("version", K8S_VERSIONS)
    def test_rendered_native_sidecar_is_valid(self, native: list[dict[str, Any]], version: str) -> None:
        """The native-sidecar overlay renders to valid objects."""
        for doc in native:
            kubernetes_validate.validate(doc, version, strict=True)

    def test_validator_rejects_a_misspelled_field(self, base: list[dict[str, Any]]) -> None:
        """Strict validation catches a typo, so the test above can fail."""
        broken = copy.deepcopy(find(base, "Deployment"))
        broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, "1.30.0", strict=True)

    def test_kustomization_lists_every_manifest(self) -> None:
        """No manifest in base/ is left out of the kustomization (and so out of these tests)."""
        listed = {p.name for p in manifest_files()}
        present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present


class TestSecurity:
    def test_base_is_hardened(self, base: list[dict[str, Any]]) -> None:
        """The classic-sidecar workload meets every hardening rule."""
        assert security_violations(base) == []

    def test_native_sidecar_is_hardened(self, native: list[dict[str, Any]]) -> None:
        """The native-sidecar workload meets every hardening rule."""
        assert security_violations(native) == []

    @pytest.mark.parametrize(
        ("mutate", "expected"),
        [
            (lambda c, s: c["securityContext"].pop("runAsNonRoot"), "runAsNonRoot is not true"),
            (lambda c, s: c["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
            (lambda c, s: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "drop ALL"),
            (lambda c, s: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
            (lambda c, s: c["securityContext"].update(runAsUser=0), "runAsUser 0"),
            (lambda c, s: c.update(image="example.com/presidio-logshield-agent:latest"), "not pinned"),
            (lambda c, s: c.update(image="example.com/presidio-logshield-agent"), "not pinned"),
            (lambda c, s: c["resources"].pop("limits"), "no memory limits"),
            (lambda c, s: c.pop("readinessProbe"), "no readinessProbe"),
            (lambda c, s: c.pop("lifecycle"), "preStop"),
            (lambda c, s: c["volumeMounts"][0].pop("readOnly"), "read-only"),
            (lambda c, s: s.update(terminationGracePeriodSeconds=30), "terminationGracePeriodSeconds"),
            (lambda c, s: s.update(automountServiceAccountToken=True), "automountServiceAccountToken"),
            (lambda c, s: s["securityContext"].pop("seccompProfile"), "pod seccompProfile"),
        ],
    )
    def test_checker_catches_regression(self, base: list[dict[str, Any]], mutate: Any, expected: str) -> None:
        """Weakening one setting of the agent or its pod makes the checker report it."""
        objects = copy.deepcopy(base)
        spec = pod_spec(find(objects, "Deployment"))
        mutate(agent_container(objects), spec)
        assert any(expected in problem for problem in security_violations(objects)), security_violations(objects)

    def test_grace_period_covers_prestop_and_agent_grace(self, base: list[dict[str, Any]]) -> None:
        """The pod's grace period exceeds preStop sleep plus LOGSHIELD_SHUTDOWN_GRACE."""
        spec = pod_spec(find(base, "Deployment"))
        sleep = int(agent_container(base)["lifecycle"]["preStop"]["exec"]["command"][1])
        grace = int(agent_env(base)["LOGSHIELD_SHUTDOWN_GRACE"])
        assert spec["terminationGracePeriodSeconds"] > sleep + grace + GRACE_MARGIN

    def test_agent_resources(self, base: list[dict[str, Any]]) -> None:
        """The agent requests 100m/192Mi and is limited to 500m/384Mi: its measured 196 MB peak plus the
        memory-backed /tmp (which counts against the limit) plus headroom."""
        agent = agent_container(base)
        assert agent["resources"] == {
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"cpu": "500m", "memory": "384Mi"},
        }
        spec = pod_spec(find(base, "Deployment"))
        tmp = next(m["name"] for m in agent["volumeMounts"] if m["mountPath"] == "/tmp")
        (volume,) = [v for v in spec["volumes"] if v["name"] == tmp]
        assert volume["emptyDir"]["medium"] == "Memory"
        measured_peak = 196 * 10**6  # bench.agent, README "Measured"
        headroom = volume_bytes(agent["resources"]["limits"]["memory"]) - volume_bytes(volume["emptyDir"]["sizeLimit"])
        assert headroom > 1.5 * measured_peak

    def test_log_volume_fits_the_apps_rotation(self, base: list[dict[str, Any]]) -> None:
        """The app's rotation (max_bytes x (backup_count + 1) per file, the log and the audit file) fits in the
        app-logs volume: the agent mounts it read-only, so the app's rotation is all that bounds it."""
        app = container_env(base, APP)
        files = 1 + bool(app.get("LOGSHIELD_AUDIT_FILE"))
        worst = files * (int(app["LOGSHIELD_BACKUP_COUNT"]) + 1) * int(app["LOGSHIELD_MAX_BYTES"])
        spec = pod_spec(find(base, "Deployment"))
        logs = next(m["name"] for m in container(base, APP)["volumeMounts"] if m["mountPath"] == "/var/log/app")
        (volume,) = [v for v in spec["volumes"] if v["name"] == logs]
        assert worst <= 0.8 * volume_bytes(volume["emptyDir"]["sizeLimit"])
        assert app["LOGSHIELD_AUDIT_FILE"].startswith("/var/log/app/")

    def test_network_policy_selects_the_pod(self, base: list[dict[str, Any]]) -> None:
        """The NetworkPolicy applies to the workload and restricts both directions."""
        policy = find(base, "NetworkPolicy")
        labels = find(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert egress_ports == {53, 443}


class TestAgentWiring:
    def test_configmap_values(self, base: list[dict[str, Any]]) -> None:
        """The agent's environment is the documented sample configuration."""
        env = agent_env(base)
        assert env["LOGSHIELD_PATHS"] == "/var/log/app/*.log*"
        assert env["LOGSHIELD_SINK"] == "s3://my-audit-logs/app"
        assert env["LOGSHIELD_STATE_DIR"] == "/var/lib/logshield"
        assert env["LOGSHIELD_COMPRESSION"] == "zstd"
        assert env["LOGSHIELD_REDACT"] == "off"
        assert env["LOGSHIELD_HTTP_ADDR"] == "0.0.0.0:9870"
        assert env["LOGSHIELD_SHUTDOWN_GRACE"] == "30"

    @pytest.mark.parametrize("overlay", ["base", "native"])
    def test_every_variable_is_one_its_container_reads(self, overlay: str, request: pytest.FixtureRequest) -> None:
        """No typo, stale name or setting given to the wrong process: each variable of the agent container is one
        the agent reads (the library's redaction options only with LOGSHIELD_REDACT on), each of the app container
        one presidio_logshield's handler reads."""
        objects = request.getfixturevalue(overlay)
        agent = agent_env(objects)
        assert [n for n in agent if not agent_reads(n, redact=agent.get("LOGSHIELD_REDACT", "off"))] == []
        assert [n for n in container_env(objects, APP) if not library_reads(n)] == []

    @pytest.mark.parametrize(("where", "variable"), [
        (AGENT, "LOGSHIELD_CHAIN_KEY_FILE"),  # the library's key, given to the shipper
        (AGENT, "LOGSHIELD_PSEUDONYM_KEY_FILE"),  # only read with a redaction pass
        (AGENT, "LOGSHIELD_HTTP_PORT"),  # a name the agent never had
        (APP, "LOGSHIELD_DIGEST_KEY_FILE"),  # the agent's key, given to the app
        (APP, "LOGSHIELD_SINK"),
    ])
    def test_reader_check_catches_a_misplaced_variable(self, where: str, variable: str) -> None:
        """The per-container check above refuses a variable set for a process that does not read it."""
        reads = (lambda n: agent_reads(n, redact="off")) if where == AGENT else library_reads
        assert not reads(variable)

    def test_redaction_pass_may_get_the_pseudonym_key(self) -> None:
        """With LOGSHIELD_REDACT the agent reads the library's redaction keys, never the chain key."""
        assert agent_reads("LOGSHIELD_PSEUDONYM_KEY_FILE", redact="patterns")
        assert not agent_reads("LOGSHIELD_CHAIN_KEY_FILE", redact="full")

    def test_each_container_reads_its_own_configmap(self, base: list[dict[str, Any]]) -> None:
        """The agent and the app each take their environment from their own ConfigMap."""
        for name, config in ((AGENT, AGENT_CONFIG), (APP, APP_CONFIG)):
            assert [e["configMapRef"]["name"] for e in container(base, name)["envFrom"]] == [config]

    def test_keys_are_files_only_where_used(self, base: list[dict[str, Any]]) -> None:
        """Each Secret is mounted read-only into the one container that uses it, its keys as files that a *_FILE
        variable of that container names; the agent holds only the digest key, the app only the library's keys;
        no key is an environment variable."""
        spec = pod_spec(find(base, "Deployment"))
        expected = {AGENT: (AGENT_SECRET, {"LOGSHIELD_DIGEST_KEY"}),
                    APP: (APP_SECRET, {"LOGSHIELD_PSEUDONYM_KEY", "LOGSHIELD_CHAIN_KEY"})}
        secrets = {obj["metadata"]["name"]: obj for obj in base if obj["kind"] == "Secret"}
        assert set(secrets) == {AGENT_SECRET, APP_SECRET}
        for name, (secret_name, keys) in expected.items():
            secret_volumes = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
            mounted = [m for m in container(base, name)["volumeMounts"] if m["name"] in secret_volumes]
            (mount,) = mounted
            volume = secret_volumes[mount["name"]]
            assert volume["secretName"] == secret_name
            assert mount["mountPath"] == "/var/run/secrets/logshield" and mount["readOnly"] is True
            files = {item["key"]: f"{mount['mountPath']}/{item['path']}" for item in volume["items"]}
            assert set(files) == set(secrets[secret_name]["stringData"]) == keys
            env = container_env(base, name)
            for key, path in files.items():
                assert env[f"{key}_FILE"] == path
                assert key not in env
        for each in pod_containers(find(base, "Deployment")):
            assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in each.get("env", []))
            assert all("secretRef" not in e for e in each.get("envFrom", []))

    def test_state_and_tmp_are_writable_volumes(self, base: list[dict[str, Any]]) -> None:
        """With a read-only root, the agent writes only to its state and tmp volumes."""
        mounts = {m["mountPath"]: m for m in agent_container(base)["volumeMounts"]}
        assert not mounts["/var/lib/logshield"].get("readOnly")
        assert not mounts["/tmp"].get("readOnly")

    def test_probes_use_the_agent_port(self, base: list[dict[str, Any]]) -> None:
        """Probes hit the named port 9870 that LOGSHIELD_HTTP_ADDR listens on."""
        agent = agent_container(base)
        ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert ports[agent[probe]["httpGet"]["port"]] == 9870
        assert agent_env(base)["LOGSHIELD_HTTP_ADDR"].endswith(":9870")

    def test_service_account_identity_annotations(self, base: list[dict[str, Any]]) -> None:
        """The pod's ServiceAccount carries the IRSA and Azure workload identity annotations."""
        account = find(base, "ServiceAccount")
        assert pod_spec(find(base, "Deployment"))["serviceAccountName"] == account["metadata"]["name"]
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
        assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
        assert account["automountServiceAccountToken"] is False


class TestNativeSidecar:
    def test_agent_is_a_restartable_init_container(self, native: list[dict[str, Any]]) -> None:
        """The overlay turns the agent into an init container with restartPolicy Always."""
        spec = pod_spec(find(native, "Deployment"))
        assert [c["name"] for c in spec["initContainers"]] == [AGENT]
        assert spec["initContainers"][0]["restartPolicy"] == "Always"
        assert AGENT not in [c["name"] for c in spec["containers"]]
        assert "lifecycle" not in spec["initContainers"][0]
        assert "startupProbe" in spec["initContainers"][0]

    def test_patch_refuses_a_reordered_base(self, base: list[dict[str, Any]]) -> None:
        """The patch's test operation stops it from moving the wrong container."""
        deployment = copy.deepcopy(find(base, "Deployment"))
        deployment["spec"]["template"]["spec"]["containers"].reverse()
        operations = load_documents(NATIVE / "native-sidecar-patch.yaml")[0]
        with pytest.raises(jsonpatch.JsonPatchTestFailed):
            jsonpatch.apply_patch(deployment, operations)

    @pytest.mark.skipif(shutil.which("kubectl") is None, reason="cross-check needs kubectl (kustomize built in)")
    @pytest.mark.parametrize("directory", [BASE, NATIVE], ids=["base", "native-sidecar"])
    def test_render_matches_kustomize(self, directory: Path) -> None:
        """The Python rendering used by these tests agrees with kubectl kustomize."""
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        assert sorted(yaml.safe_load_all(out.stdout), key=key) == sorted(render(directory), key=key)


def checkov_reports(stdout: str) -> list[dict[str, Any]]:
    """Parse checkov's JSON output: one value per scanned directory, each a report or a list."""
    decoder, reports, position = json.JSONDecoder(), [], 0
    while position < len(stdout):
        if stdout[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(stdout, position)
        reports += value if isinstance(value, list) else [value]
    return reports


def checkov_binary() -> str:
    """Checkov lives in its own venv (.venv-tools): it pins boto3/packaging below the project's."""
    candidates = [os.environ.get("LOGSHIELD_CHECKOV", ""), str(REPO / ".venv-tools" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("checkov")
    if found:
        return found
    pytest.fail("checkov not found: run `make install` (creates .venv-tools) or set LOGSHIELD_CHECKOV")


class TestCheckov:
    def test_scan_is_clean(self, native: list[dict[str, Any]], tmp_path: Path) -> None:
        """checkov finds nothing in the manifests, the rendered overlay and the Dockerfile."""
        rendered = tmp_path / "native-sidecar-rendered.yaml"
        rendered.write_text(yaml.safe_dump_all(native))
        shutil.copy(REPO / "deploy" / "docker" / "Dockerfile", tmp_path / "Dockerfile")
        command = [
            checkov_binary(),
            "--quiet", "--compact", "--skip-download", "--output", "json",
            "--framework", "kubernetes", "dockerfile",
            "--skip-check", ",".join(CHECKOV_SKIPS),
            "--directory", str(BASE), "--directory", str(tmp_path),
        ]  # fmt: skip
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "PYTHONWARNINGS": "ignore"}
        out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert out.returncode in (0, 1), out.stderr
        reports = checkov_reports(out.stdout)
        frameworks = {r["check_type"] for r in reports if "check_type" in r}
        assert frameworks == {"kubernetes", "dockerfile"}, out.stdout[:2000]
        failed = [
            f"{c['check_id']} {c['check_name']} ({c['file_path']}: {c['resource']})"
            for r in reports
            for c in r["results"]["failed_checks"]
        ]
        assert failed == []
        passed = sum(r["summary"]["passed"] for r in reports)
        assert passed > 100, "checkov ran suspiciously few checks"
        assert out.returncode == 0

    def test_scan_catches_a_writable_root(self, base: list[dict[str, Any]], tmp_path: Path) -> None:
        """A container with a writable root filesystem fails the scan, so a clean scan means something."""
        objects = copy.deepcopy(base)
        agent_container(objects)["securityContext"]["readOnlyRootFilesystem"] = False
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump_all(objects))
        command = [
            checkov_binary(),
            "--quiet",
            "--compact",
            "--skip-download",
            "--output",
            "json",
            "--framework",
            "kubernetes",
            "--check",
            "CKV_K8S_22",
            "--directory",
            str(tmp_path),
        ]
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        )
        (report,) = checkov_reports(out.stdout)
        assert [c["check_id"] for c in report["results"]["failed_checks"]] == ["CKV_K8S_22"]
        assert out.returncode == 1


if __name__ == "__main__":  # pragma: no cover - manual use: print the problems of a rendered dir
    print("\n".join(security_violations(render(Path(sys.argv[1])))) or "ok")
