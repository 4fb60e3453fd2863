"""Schema checks of deploy/: Docker cannot run here, so every file is checked against the
schema of the tool that reads it (Dagster's own instance and workspace config validation, the
Helm chart's values schema for the keys we set) and against each other and settings.ENV_VARS.
The same dagster.yaml is run for real by test_postgres_e2e.py."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from aisg_pipelines.settings import ENV_VARS

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PG_ENV = ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT")
AUTH_ENV = ("OIDC_ISSUER_URL", "OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET")  # compose's oauth2-proxy
LIMITS = [{"key": "aisg/job", "value": "reindex", "limit": 1}, {"key": "aisg/job", "value": "erasure", "limit": 1}]


def load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@pytest.mark.parametrize("name", ["dagster.yaml", "workspace.yaml", "docker-compose.yml", "helm/values.yaml"])
def test_yaml_parses(name):
    assert isinstance(load(name), dict)


def test_dagster_yaml_passes_dagster_instance_validation(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    for k, v in zip(PG_ENV, ("aisg", "secret", "127.0.0.1", "dagster", "5432")):
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    cfg, custom_class = dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError
    assert custom_class is None

    pg = cfg["storage"]["postgres"]["postgres_db"]
    assert {pg[f]["env"] for f in ("username", "password", "hostname", "db_name", "port")} == set(PG_ENV)
    assert pg["scheme"] == "postgresql+psycopg2"
    rc = cfg["run_coordinator"]
    assert rc["class"] == "QueuedRunCoordinator"
    assert rc["config"]["tag_concurrency_limits"] == LIMITS
    assert cfg["run_monitoring"]["enabled"] is True
    assert cfg["run_retries"]["enabled"] is True and cfg["run_retries"]["max_retries"] == 2
    assert cfg["retention"]["sensor"]["purge_after_days"]["skipped"] == 7
    assert cfg["retention"]["schedule"]["purge_after_days"] == 90
    assert cfg["telemetry"] == {"enabled": False}
    assert cfg["nux"] == {"enabled": False}

    # the env-var indirection resolves to the connection string dagster-postgres will use
    from dagster_postgres.utils import pg_url_from_config

    from dagster._config import process_config
    from dagster_postgres import DagsterPostgresStorage

    ref = InstanceRef.from_dir(str(tmp_path))
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    resolved = process_config(DagsterPostgresStorage.config_type(), ref.storage_data.config_dict)
    assert resolved.success, resolved.errors
    url = pg_url_from_config(resolved.value)
    assert url == "postgresql+psycopg2://aisg:secret@127.0.0.1:5432/dagster"
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"


def test_instance_builds_on_postgres_when_available(tmp_path, monkeypatch):
    """With a server (CI), DagsterInstance is really constructed from the file."""
    import os
    from urllib.parse import urlsplit

    url = os.environ.get("AISG_TEST_PG_URL")
    if not url:
        pytest.skip("AISG_TEST_PG_URL is unset: no PostgreSQL server to build the instance against (.ci/run sets it)")
    p = urlsplit(url)
    for k, v in zip(PG_ENV, (p.username, p.password, p.hostname, p.path.lstrip("/"), str(p.port or 5432))):
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        assert instance.run_coordinator.get_run_queue_config().tag_concurrency_limits == LIMITS
    finally:
        instance.dispose()


def test_workspace_yaml_passes_dagster_workspace_validation():
    from dagster._core.workspace.config_schema import ensure_workspace_config

    ws = load("workspace.yaml")
    ensure_workspace_config(ws, str(DEPLOY / "workspace.yaml"))
    (entry,) = ws["load_from"]
    server = entry["grpc_server"]
    compose = load("docker-compose.yml")
    assert server["host"] in compose["services"]
    user_code_cmd = compose["services"][server["host"]]["command"]
    assert user_code_cmd[user_code_cmd.index("-p") + 1] == str(server["port"])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert server["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]


def test_compose_services_and_env_are_consistent():
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "webserver_readonly", "auth_proxy", "auth_proxy_readonly", "daemon"}
    # Dagster OSS has no login: no webserver publishes a port; only the authenticating proxies do,
    # and the second webserver is read-only (issue 13)
    assert "ports" not in services["webserver"] and "ports" not in services["webserver_readonly"]
    assert services["webserver_readonly"]["command"][-1] == "--read-only"
    assert "--upstream=http://webserver:3000/" in services["auth_proxy"]["command"]
    assert "--upstream=http://webserver_readonly:3001/" in services["auth_proxy_readonly"]["command"]
    assert "--allowed-group=aisg-platform" in services["auth_proxy"]["command"]
    assert "--allowed-group=aisg-compliance" not in services["auth_proxy"]["command"]
    module = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert services["user_code"]["command"][:5] == ["dagster", "api", "grpc", "-m", module]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in ("user_code", "webserver", "webserver_readonly", "daemon"):
        assert services[name]["env_file"] == [".env"], name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert services["postgres"]["image"] == "postgres:15"
    # every host port is bound to loopback only
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    assert "CREATE DATABASE aisg_ledger" in compose["configs"]["create-ledger-db"]["content"]

    env = env_example()
    expected = set(ENV_VARS) | set(PG_ENV) | set(AUTH_ENV)
    assert set(env) == expected, (
        f"deploy/.env.example is out of step with settings.ENV_VARS: missing {sorted(expected - set(env))}, "
        f"unknown {sorted(set(env) - expected)} (then regenerate the table in docs/deploy.md)"
    )
    assert env["AISG_LEDGER_URL"].startswith("postgresql+psycopg2://")
    assert env["AISG_LEDGER_URL"].endswith("@postgres:5432/aisg_ledger")
    assert env["DAGSTER_PG_HOST"] == "postgres"
    assert env["AISG_RUN_EXECUTOR"] == "in_process"


def test_dockerfile_matches_the_project():
    text = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = {re.split(r"[=<>]", d)[0]: d for d in pyproject["project"]["dependencies"]}
    assert re.search(r"^FROM python:3\.11", text, re.M)
    torch = text.index(f"pip install {deps['torch']}")
    assert torch < text.index("pip install . "), "torch (CPU index) must be installed before the project"
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    # dagster-k8s is released in lock-step with dagster-postgres (same 0.x version)
    pg_version = deps["dagster-postgres"].split("==")[1]
    assert f"dagster-k8s=={pg_version}" in text
    module = pyproject["tool"]["dagster"]["module_name"]
    assert f'CMD ["dagster", "api", "grpc", "-m", "{module}"' in text
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in text
    assert "HF_HUB_OFFLINE=1" in text


# Subset of the official chart's values.schema.json (helm/dagster/values.schema.json,
# dagster 1.13) covering every section deploy/helm/values.yaml sets. additionalProperties is
# false where the chart's schema says so, so a misspelt key fails here as it would in helm.
_SOURCE = {"type": "object", "properties": {"env": {"type": "string"}}, "required": ["env"], "additionalProperties": False}
_TAG_LIMIT = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "value": {"type": ["string", "object", "null"]}, "limit": {"type": "integer"}},
    "required": ["key", "limit"],
    "additionalProperties": False,
}
_TICK_RETENTION = {
    "type": "object",
    "properties": {
        "purgeAfterDays": {
            "anyOf": [
                {"type": "integer"},
                {
                    "type": "object",
                    "properties": {k: {"type": "integer"} for k in ("skipped", "success", "failure", "started")},
                    "required": ["skipped", "success", "failure", "started"],
                    "additionalProperties": False,
                },
            ]
        }
    },
    "required": ["purgeAfterDays"],
}
_IMAGE = {
    "type": "object",
    "properties": {"repository": {"type": "string"}, "tag": {"type": ["string", "integer", "null"]}, "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}},
    "required": ["repository", "pullPolicy"],
}
_USER_DEPLOYMENT_KEYS = [
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "deploymentNamespace",
    "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
    "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
    "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers", "deploymentStrategy", "service",
    "replicaCount",
]
HELM_SCHEMA = {
    "type": "object",
    "properties": {
        "global": {
            "type": "object",
            "properties": {k: {"type": "string"} for k in ("postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName")},
            "additionalProperties": False,
        },
        "telemetry": {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "required": ["enabled"], "additionalProperties": False},
        "dagsterWebserver": {"type": "object", "properties": {"image": _IMAGE, "replicaCount": {"type": "integer"}, "enableReadOnly": {"type": "boolean"}}},
        "ingress": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "ingressClassName": {"type": ["string", "null"]},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "labels": {"type": "object"},
                **{k: {
                    "type": "object",
                    "properties": {
                        "host": {"type": "string"}, "path": {"type": "string"}, "pathType": {"enum": ["Exact", "Prefix", "ImplementationSpecific"]},
                        "tls": {"type": "object", "properties": {"enabled": {"type": "boolean"}, "secretName": {"type": "string"}}, "additionalProperties": False},
                        "precedingPaths": {"type": "array"}, "succeedingPaths": {"type": "array"},
                    },
                    "additionalProperties": False,
                } for k in ("dagsterWebserver", "readOnlyDagsterWebserver", "flower")},
            },
            "additionalProperties": False,
        },
        "dagster-user-deployments": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "enableSubchart": {"type": "boolean"},
                "deployments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            **{k: {} for k in _USER_DEPLOYMENT_KEYS},
                            "image": _IMAGE,
                            "dagsterApiGrpcArgs": {"type": "array", "items": {"type": "string"}},
                            "port": {"type": "integer"},
                            "includeConfigInLaunchedRuns": {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "required": ["enabled"]},
                            "env": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                        },
                        "required": ["name", "image", "port"],
                        "additionalProperties": False,
                    },
                },
            },
        },
        "runLauncher": {
            "type": "object",
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {
                    "type": "object",
                    "properties": {
                        "k8sRunLauncher": {
                            "type": "object",
                            "properties": {
                                **{k: {} for k in ("image", "jobNamespace", "kubeconfigFile", "labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext")},
                                "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                                "loadInclusterConfig": {"type": "boolean"},
                                **{k: {"type": "array"} for k in ("envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes")},
                                "runK8sConfig": {
                                    "type": "object",
                                    "properties": {k: {"type": ["object", "null"]} for k in ("containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata")},
                                    "additionalProperties": False,
                                },
                            },
                            "required": ["imagePullPolicy", "loadInclusterConfig", "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes"],
                            "additionalProperties": False,
                        }
                    },
                    "required": ["k8sRunLauncher"],
                },
            },
            "required": ["type", "config"],
            "additionalProperties": False,
        },
        "postgresql": {
            "type": "object",
            "properties": {
                "image": {},
                "enabled": {"type": "boolean"},
                **{k: {"type": "string"} for k in ("postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase", "postgresqlScheme")},
                "postgresqlParams": {"type": "object"},
                "service": {"type": "object", "properties": {"port": {"type": "integer"}}, "required": ["port"]},
            },
            "additionalProperties": False,
        },
        "generatePostgresqlPasswordSecret": {"type": "boolean"},
        "dagsterDaemon": {
            "type": "object",
            "properties": {
                **{k: {} for k in ("enabled", "image", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations", "schedulerName", "volumeMounts", "volumes", "initContainerResources")},
                "runCoordinator": {
                    "type": "object",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                        "config": {
                            "type": "object",
                            "properties": {
                                "queuedRunCoordinator": {
                                    "type": "object",
                                    "properties": {
                                        "maxConcurrentRuns": {"anyOf": [{"type": "integer"}, _SOURCE]},
                                        "tagConcurrencyLimits": {"type": "array", "items": _TAG_LIMIT},
                                        "dequeueIntervalSeconds": {"anyOf": [{"type": "integer"}, _SOURCE]},
                                        "dequeueNumWorkers": {}, "dequeueUseThreads": {}, "blockOpConcurrencyLimitedRuns": {},
                                    },
                                    "additionalProperties": False,
                                }
                            },
                        },
                    },
                    "required": ["enabled", "type", "config"],
                    "additionalProperties": False,
                },
                # the chart passes these through to dagster.yaml (camelCase -> snake_case)
                "runMonitoring": {
                    "type": "object",
                    "properties": {k: {} for k in ("enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxRuntimeSeconds", "maxResumeRunAttempts", "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds")},
                    "additionalProperties": False,
                },
                "runRetries": {
                    "type": "object",
                    "properties": {"enabled": {"type": "boolean"}, "maxRetries": {"type": "integer"}, "retryOnAssetOrOpFailure": {"type": "boolean"}},
                    "additionalProperties": False,
                },
                "sensors": {"type": "object", "properties": {"useThreads": {"type": "boolean"}, "numWorkers": {"type": ["integer", "null"]}, "numSubmitWorkers": {}}, "required": ["useThreads"]},
                "schedules": {"type": "object", "properties": {"useThreads": {"type": "boolean"}, "numWorkers": {"type": ["integer", "null"]}, "numSubmitWorkers": {}}, "required": ["useThreads"]},
            },
            "additionalProperties": False,
        },
        "retention": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}, "sensor": _TICK_RETENTION, "schedule": _TICK_RETENTION, "autoMaterialize": _TICK_RETENTION},
            "required": ["enabled", "sensor", "schedule"],
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def test_helm_values_match_the_chart_schema_and_dagster_yaml():
    import jsonschema

    values = load("helm/values.yaml")
    jsonschema.validate(values, HELM_SCHEMA)

    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == LIMITS
    inst = load("dagster.yaml")
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": inst["run_retries"]["max_retries"]}
    assert daemon["runMonitoring"]["enabled"] is inst["run_monitoring"]["enabled"] is True
    assert values["retention"]["sensor"]["purgeAfterDays"]["skipped"] == inst["retention"]["sensor"]["purge_after_days"]["skipped"]
    assert values["telemetry"] == {"enabled": False}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == inst["storage"]["postgres"]["postgres_db"]["scheme"]

    (dep,) = values["dagster-user-deployments"]["deployments"]
    module = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert dep["dagsterApiGrpcArgs"] == ["-m", module]
    assert dep["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = {e["name"]: e.get("value") for e in dep["env"]}
    assert set(env) <= set(ENV_VARS) | {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}, set(env) - set(ENV_VARS)
    assert env["AISG_LANCEDB_URI"].startswith("s3://")
    assert env["AISG_RUN_EXECUTOR"] == "in_process"
    # secrets (ledger URL with password, S3 storage options) come from a Secret, never values
    assert "AISG_LEDGER_URL" not in env and "AISG_LANCEDB_STORAGE_OPTIONS" not in env
    assert dep["envSecrets"] == [{"name": "aisg-pipelines-secrets"}]
    # issue 13: a read-only webserver, and every request authenticated in front of both
    assert values["dagsterWebserver"]["enableReadOnly"] is True
    assert values["ingress"]["enabled"] is True and "oauth2/auth" in values["ingress"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
    assert env["AISG_INBOX_HMAC_KEY_FILE"].startswith("/secrets/inbox/")


def test_deploy_doc_lists_every_environment_variable():
    doc = REPO / "docs" / "deploy.md"
    text = doc.read_text()
    missing = [v for v in [*ENV_VARS, *PG_ENV] if f"`{v}`" not in text]
    assert not missing, f"docs/deploy.md lacks {missing}"


# The configuration reference in docs/deploy.md is generated from settings.ENV_VARS:
#   .venv/bin/python -m aisg_pipelines_tests.test_deploy_config --write-env-table
PG_ENV_DOC = {
    "DAGSTER_PG_USERNAME": "PostgreSQL user of the Dagster instance storage (deploy/dagster.yaml)",
    "DAGSTER_PG_PASSWORD": "its password (a secret: .env / Kubernetes Secret)",
    "DAGSTER_PG_HOST": "PostgreSQL host (compose: `postgres`)",
    "DAGSTER_PG_PORT": "PostgreSQL port (5432)",
    "DAGSTER_PG_DB": "database of the Dagster run, event-log and schedule storage (`dagster`)",
}


def env_table() -> str:
    rows = ["| Variable | Meaning (default) |", "|---|---|"]
    rows += [f"| `{k}` | {v.replace('|', '/')} |" for k, v in ENV_VARS.items()]
    rows += [f"| `{k}` | {v} |" for k, v in PG_ENV_DOC.items()]
    return "\n".join(rows) + "\n"


def write_env_table(doc: Path = REPO / "docs" / "deploy.md") -> None:
    text = doc.read_text()
    text = re.sub(
        r"(<!-- BEGIN ENV TABLE[^\n]*-->\n).*?(<!-- END ENV TABLE -->)",
        lambda m: m.group(1) + env_table() + m.group(2), text, flags=re.S,
    )
    doc.write_text(text)


def test_deploy_doc_env_table_is_generated_from_settings():
    text = (REPO / "docs" / "deploy.md").read_text()
    assert env_table() in text, "regenerate: .venv/bin/python -m aisg_pipelines_tests.test_deploy_config --write-env-table"


if __name__ == "__main__":
    import sys

    if "--write-env-table" in sys.argv:
        write_env_table()
        print("docs/deploy.md: configuration reference regenerated")
