"""The operator API as a client meets it: a real uvicorn server on loopback, real HTTP, real
MLflow SQLite store; every role against every mutation; bad tokens; quotes in a model name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from support import register_fixture_version, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SECRET = "test-secret-0123456789abcdef0123456789"
AUDIENCE = "modelops-api"
NAME = "o'brien scorer"  # a quote must not change any registry filter
BY_ALIAS = "promoted-by-alias"  # one staged version, promoted by naming its alias


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(
    sub: str, *roles: str, ttl: int = 600, aud: str | None = AUDIENCE, secret: str = SECRET
) -> str:
    claims: dict[str, Any] = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + ttl}
    if aud:
        claims["aud"] = aud
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api")
    env = {
        **os.environ,
        "MODELOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "MODELOPS_API_JWT_SECRET": SECRET,
        "MODELOPS_API_JWT_AUDIENCE": AUDIENCE,
        "PREFECT_API_URL": "",
    }
    saved = {k: os.environ.get(k) for k in ("MODELOPS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ.update({k: env[k] for k in saved})
    try:
        for _ in range(3):
            register_fixture_version(NAME)  # versions 1-3, 3 staged
        register_fixture_version("other")
        register_fixture_version(BY_ALIAS)
        from mlflow import MlflowClient

        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        for mv in client.search_model_versions('name = "o\'brien scorer"'):
            client.log_param(mv.run_id, "max_iter", "1000")
            parent = client.get_run(mv.run_id).data.tags["mlflow.parentRunId"]
            client.log_metric(parent, "roc_auc", 0.8 + int(mv.version) / 100)
        port = _port()
        log = (home / "api.log").open("w")  # a pipe nobody reads would fill and block it
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelops", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/healthz", proc)
            yield {"url": url, "env": env}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gql(api: dict[str, Any], query: str, bearer: str | None, **variables: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(
        f"{api['url']}/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=60,
    )


VERSIONS = """query($m: String!, $s: String) { mlModelVersions(modelName: $m, stage: $s) {
  version status createdAt runId params metrics aliases tags source description } }"""
PROMOTE = """mutation($m: String!, $v: String!, $s: String!) {
  promoteModelVersion(input: {modelName: $m, version: $v, stage: $s, reason: "test"}) {
  version status aliases } }"""
ROLLBACK = """mutation($m: String!) { rollbackModel(modelName: $m, reason: "bad latency") {
  version status } }"""
DEPLOY = """mutation($m: String!) { deployModelVersion(input: {modelName: $m, version: "1",
  target: "local"}) { jobName status flowRunId } }"""


def _code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def test_every_request_needs_a_valid_token(api: dict[str, Any]) -> None:
    for bearer, why in [
        (None, "Missing bearer token"),
        (token("a", "ADMIN", secret="another-secret-0123456789abcdef0123"), "Invalid token"),
        (token("a", "ADMIN", ttl=-60), "expired"),
        (token("a", "ADMIN", aud="someone-else"), "not for this API"),
        (token("a", "ADMIN", aud=None), "Invalid token"),
        ("not.a.jwt", "Invalid token"),
    ]:
        response = gql(api, VERSIONS, bearer, m=NAME)
        assert response.status_code == 401, (why, response.text)
        assert _code(response) == "UNAUTHENTICATED" and why in response.text
    health = httpx.get(f"{api['url']}/healthz", timeout=10)
    assert health.json() == {"status": "ok"}


def test_versions_with_params_metrics_and_a_quoted_name(api: dict[str, Any]) -> None:
    response = gql(api, VERSIONS, token("viewer", "VIEWER"), m=NAME)
    rows = response.json()["data"]["mlModelVersions"]
    assert [r["version"] for r in rows] == ["3", "2", "1"]
    assert rows[0]["status"] == "Staging" and rows[0]["aliases"] == ["staging"]
    assert rows[0]["params"]["max_iter"] == "1000"  # its training run's, read in a batch
    assert rows[0]["metrics"]["roc_auc"] == pytest.approx(0.83)  # its flow's parent run's
    assert rows[0]["createdAt"].endswith("+00:00") and rows[0]["runId"]
    staged = gql(api, VERSIONS, token("viewer"), m=NAME, s="Staging").json()["data"]
    assert [r["version"] for r in staged["mlModelVersions"]] == ["3"]
    missing = gql(api, VERSIONS, token("viewer"), m="nope' OR name = 'other")
    assert _code(missing) == "NOT_FOUND"


ALLOWED = {  # mutation -> roles that may run it
    "promote-staging": {"ADMIN", "OPERATOR", "ML_ENGINEER"},
    "promote-production": {"ADMIN", "OPERATOR"},
    "rollback": {"ADMIN", "OPERATOR", "ML_ENGINEER"},
    "deploy": {"ADMIN", "OPERATOR", "ML_ENGINEER"},
    "start-rollout": {"ADMIN", "OPERATOR"},  # it ends in a production promotion
    "abort-rollout": {"ADMIN", "OPERATOR"},
}
START_ROLLOUT = """mutation($m: String!) { startRollout(input: {modelName: $m}) { flowRunId } }"""
ABORT_ROLLOUT = """mutation($m: String!) { abortRollout(modelName: $m, reason: "test") {
  state } }"""


@pytest.mark.parametrize("role", ["VIEWER", "ML_ENGINEER", "OPERATOR", "ADMIN", None])
@pytest.mark.parametrize("mutation", list(ALLOWED))
def test_every_role_against_every_mutation(
    api: dict[str, Any], role: str | None, mutation: str
) -> None:
    bearer = token(f"user-{role}", *([role] if role else []))  # no role claim: VIEWER
    query, variables = {
        "promote-staging": (PROMOTE, {"m": "other", "v": "1", "s": "Staging"}),
        "promote-production": (PROMOTE, {"m": "other", "v": "1", "s": "Production"}),
        "rollback": (ROLLBACK, {"m": "other"}),
        "deploy": (DEPLOY, {"m": "other"}),
        "start-rollout": (START_ROLLOUT, {"m": "other"}),
        "abort-rollout": (ABORT_ROLLOUT, {"m": "other"}),
    }[mutation]
    response = gql(api, query, bearer, **variables)
    code = _code(response)
    if (role or "VIEWER") not in ALLOWED[mutation]:
        assert code == "FORBIDDEN", response.text
        assert f"user-{role}" in response.text
        return
    assert code != "FORBIDDEN", response.text
    if mutation in ("deploy", "start-rollout"):  # no Prefect server: refused, saying how
        assert code == "BAD_USER_INPUT" and "PREFECT_API_URL" in response.text
    elif mutation == "abort-rollout":  # none runs
        assert code == "NOT_FOUND" and "No rollout of 'other'" in response.text
    elif mutation == "rollback":  # "other" never had two production versions: refused
        assert code == "BAD_USER_INPUT" and "previous" in response.text, response.text
        assert "errors" in response.json() and not (response.json().get("data") or {}).get(
            "rollbackModel"
        )
    else:
        assert code is None, response.text


def test_a_rollout_on_an_unknown_target_is_refused_before_anything_starts(
    api: dict[str, Any],
) -> None:
    query = """mutation($m: String!, $t: String!) {
        startRollout(input: {modelName: $m, target: $t}) { flowRunId } }"""
    response = gql(api, query, token("olivia", "OPERATOR"), m="other", t="the-moon")
    assert _code(response) == "BAD_USER_INPUT"
    assert "target must be local or kubernetes, not 'the-moon'" in response.text


def _aliases(api: dict[str, Any], model: str) -> dict[str, list[str]]:
    rows = gql(api, VERSIONS, token("viewer"), m=model).json()["data"]["mlModelVersions"]
    return {r["version"]: sorted(r["aliases"]) for r in rows}


def _actions(api: dict[str, Any], model: str) -> list[str]:
    history = gql(
        api,
        """query($m: String!) { promotionHistory(modelName: $m, first: 500) {
        events { action } } }""",
        token("viewer"),
        m=model,
    ).json()["data"]["promotionHistory"]
    return [e["action"] for e in history["events"]]


def test_a_refused_rollback_moves_nothing_and_records_no_rollback(api: dict[str, Any]) -> None:
    """With one production version there is nothing to go back to: the answer is the refusal,
    production stays where it was, and no rollback event is written."""
    operator = token("sre", "OPERATOR")
    assert _code(gql(api, PROMOTE, operator, m="other", v="1", s="Production")) is None
    before, actions_before = _aliases(api, "other"), _actions(api, "other")
    assert "production" in before["1"]
    response = gql(api, ROLLBACK, operator, m="other")
    assert _code(response) == "BAD_USER_INPUT", response.text
    assert "previous" in response.text and response.json()["data"] is None
    assert _aliases(api, "other") == before
    actions = _actions(api, "other")
    assert not {"rollback", "rolled-back"} & set(actions)
    assert actions[len(actions) - len(actions_before) :] == actions_before


def test_promoting_the_staging_alias_to_production_answers_with_the_version(
    api: dict[str, Any],
) -> None:
    """ "staging" names version 1 until the move takes the alias away: the answer is the version
    that moved, read from the promotion, not "staging" looked up again afterwards."""
    response = gql(api, PROMOTE, token("ops", "ADMIN"), m=BY_ALIAS, v="staging", s="Production")
    assert _code(response) is None, response.text
    moved = response.json()["data"]["promoteModelVersion"]
    assert moved["version"] == "1" and moved["status"] == "Production"
    assert "production" in moved["aliases"] and "staging" not in moved["aliases"]
    assert _aliases(api, BY_ALIAS) == {"1": moved["aliases"]}


def test_promotion_goes_through_the_policy_and_leaves_history(api: dict[str, Any]) -> None:
    admin = token("ops-oncall", "ADMIN")
    refused = gql(api, PROMOTE, admin, m=NAME, v="1", s="Production")  # not staged
    assert (
        _code(refused) == "BAD_USER_INPUT" and "does not hold the 'staging' alias" in refused.text
    )
    first = gql(api, PROMOTE, admin, m=NAME, v="3", s="Production").json()["data"]
    assert first["promoteModelVersion"]["status"] == "Production"
    time.sleep(1.1)  # "between" is cut to whole seconds: after the first move, before the next
    between = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    time.sleep(1.1)
    assert _code(gql(api, PROMOTE, admin, m=NAME, v="2", s="Staging")) is None
    second = gql(api, PROMOTE, admin, m=NAME, v="2", s="Production").json()["data"]
    assert second["promoteModelVersion"]["status"] == "Production"
    back = gql(api, ROLLBACK, token("sre", "OPERATOR"), m=NAME).json()["data"]["rollbackModel"]
    assert back == {"version": "3", "status": "Production"}

    history = gql(
        api,
        """query($m: String!, $a: String) { promotionHistory(modelName: $m,
        first: 2, after: $a) { events { version action actor reason fromVersion toVersion time }
        total endCursor hasNextPage } }""",
        token("viewer"),
        m=NAME,
    ).json()["data"]["promotionHistory"]
    assert history["hasNextPage"] and len(history["events"]) == 2
    # The rollback writes two events: on the restored version and on the rolled-back one.
    newest = {e["action"]: e for e in history["events"]}
    assert set(newest) == {"rollback", "rolled-back"}
    rollback = newest["rollback"]
    assert (rollback["actor"], rollback["reason"]) == ("api:sre", "bad latency")
    assert (rollback["version"], rollback["fromVersion"], rollback["toVersion"]) == ("3", "2", "3")
    times = [e["time"] for e in history["events"]]
    assert times == sorted(times, reverse=True)
    rest = gql(
        api,
        """query($m: String!, $a: String) { promotionHistory(modelName: $m,
        first: 500, after: $a) { events { action } total hasNextPage } }""",
        token("viewer"),
        m=NAME,
        a=history["endCursor"],
    ).json()["data"]["promotionHistory"]
    assert len(rest["events"]) == history["total"] - 2 and not rest["hasNextPage"]

    at = """query($m: String!, $t: DateTime!) { productionAt(modelName: $m, time: $t) }"""
    assert gql(api, at, token("v"), m=NAME, t=between + "Z").json()["data"]["productionAt"] == "3"
    assert (
        gql(api, at, token("v"), m=NAME, t="2001-01-01T00:00:00Z").json()["data"]["productionAt"]
        is None
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    assert gql(api, at, token("v"), m=NAME, t=now).json()["data"]["productionAt"] == "3"


def test_a_refusal_is_recorded_on_the_model(api: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    response = gql(api, PROMOTE, token("intern", "VIEWER"), m=NAME, v="1", s="Staging")
    assert _code(response) == "FORBIDDEN"
    client = MlflowClient(api["env"]["MLFLOW_TRACKING_URI"])
    tags = client.get_model_version(NAME, "1").tags
    assert any("intern" in v and "promotion-refused" in v for v in tags.values())


def test_the_server_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_API_")}
    done = subprocess.run(
        [sys.executable, "-m", "modelops", "api", "--port", str(_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "MODELOPS_API_JWT_SECRET" in done.stderr and "no anonymous mode" in done.stderr


def test_token_helper_signs_what_the_server_accepts(api: dict[str, Any]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelops",
            "api",
            "token",
            "--sub",
            "ops-oncall",
            "--role",
            "OPERATOR",
            "--ttl",
            "120",
        ],
        env=api["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    minted = done.stdout.strip()
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == "ops-oncall" and claims["roles"] == ["OPERATOR"]
    assert gql(api, VERSIONS, minted, m=NAME).status_code == 200


def _rsa() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def _start(api: dict[str, Any], extra: dict[str, str], tmp: Path) -> tuple[Any, str, Any]:
    env = {k: v for k, v in api["env"].items() if not k.startswith("MODELOPS_API_")}
    env.update(extra)
    port = _port()
    log = (tmp / f"api-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelops", "api", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc)
    return proc, url, log


def test_rs256_with_a_public_key_and_with_a_jwks_endpoint(
    api: dict[str, Any], tmp_path: Path
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    key, public = _rsa()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            pass

    idp = HTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    claims = {"sub": "sso-user", "roles": ["OPERATOR"], "exp": int(time.time()) + 600}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    forged = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    try:
        for extra in (
            {"MODELOPS_API_JWT_PUBLIC_KEY": public},
            {"MODELOPS_API_JWKS_URL": f"http://127.0.0.1:{idp.server_port}/jwks"},
        ):
            proc, url, log = _start(api, extra, tmp_path)
            try:
                ok = httpx.post(
                    f"{url}/graphql",
                    json={"query": VERSIONS, "variables": {"m": NAME}},
                    headers={"Authorization": f"Bearer {good}"},
                    timeout=60,
                )
                assert ok.status_code == 200 and ok.json()["data"]["mlModelVersions"], ok.text
                bad = httpx.post(
                    f"{url}/graphql",
                    json={"query": VERSIONS, "variables": {"m": NAME}},
                    headers={"Authorization": f"Bearer {forged}"},
                    timeout=60,
                )
                assert bad.status_code == 401, (extra, bad.text)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                log.close()
    finally:
        idp.shutdown()


def test_bad_names_are_bad_user_input_and_versions_resolve_as_promotion_does(
    api: dict[str, Any],
) -> None:
    viewer = token("reader", "VIEWER")
    one = """query($m: String!, $v: String!) { mlModelVersion(modelName: $m, version: $v) {
      version } }"""
    history = "query($m: String!) { promotionHistory(modelName: $m) { total } }"
    at = 'query($m: String!) { productionAt(modelName: $m, time: "2026-01-01T00:00:00Z") }'
    for query, variables in [
        (VERSIONS, {"m": ""}),
        (VERSIONS, {"m": "a/b"}),
        (one, {"m": "", "v": "1"}),
        (history, {"m": " "}),
        (at, {"m": ""}),
    ]:
        response = gql(api, query, viewer, **variables)
        assert _code(response) == "BAD_USER_INPUT", response.text
        assert "Invalid model name" in response.text
    rollback = gql(api, ROLLBACK, token("ops", "ADMIN"), m="")
    assert _code(rollback) == "BAD_USER_INPUT", rollback.text
    latest = gql(api, one, viewer, m=NAME, v="latest").json()["data"]["mlModelVersion"]
    newest = max(
        int(r["version"])
        for r in gql(api, VERSIONS, viewer, m=NAME).json()["data"]["mlModelVersions"]
    )
    assert latest == {"version": str(newest)}
    by_uri = gql(api, one, viewer, m=NAME, v=f"models:/{NAME}/1").json()["data"]
    assert by_uri["mlModelVersion"] == {"version": "1"}
    assert _code(gql(api, one, viewer, m=NAME, v="no-such-alias")) == "NOT_FOUND"
    assert _code(gql(api, "{ nosuchfield }", viewer)) == "GRAPHQL_VALIDATION_FAILED"


TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
INTROSPECT = (
    "{ __schema { queryType { name } mutationType { name } types { kind name "
    f"fields {{ name type {{ {TYPE_REF} }} args {{ name type {{ {TYPE_REF} }} }} }} "
    f"inputFields {{ name type {{ {TYPE_REF} }} }} }} }} }}"
)
# Values a careless or hostile client sends: empty, blank, quotes, path characters, unicode,
# very long, references in every form the registry knows, numbers out of range.
STRINGS = [
    "",
    " ",
    "x",
    NAME,
    "other",
    'o\'brien "scorer"',
    "a/b",
    "名前",
    "x" * 300,
    "latest",
    "staging",
    "production",
    "models:/other/1",
    "99",
    "-1",
    "\u0000",
    "Production",
]
SCALARS: dict[str, list[Any]] = {
    "String": STRINGS,
    "ID": STRINGS,
    "Int": [0, -1, 1, 20, 501, 2**31 - 1],
    "Float": [0.0, -1.5, 1e308],
    "Boolean": [True, False],
    "DateTime": ["2020-01-01T00:00:00+00:00", "2999-12-31T23:59:59Z", "not a date", ""],
    "JSON": [{}, {"a": 1}, [], "x"],
}


def _type_text(ref: dict[str, Any]) -> str:
    if ref["kind"] == "NON_NULL":
        return _type_text(ref["ofType"]) + "!"
    if ref["kind"] == "LIST":
        return f"[{_type_text(ref['ofType'])}]"
    return str(ref["name"])


def _named(ref: dict[str, Any]) -> dict[str, Any]:
    while ref.get("ofType"):
        ref = ref["ofType"]
    return ref


def _value(ref: dict[str, Any], types: dict[str, Any], rng: Any) -> Any:
    named = _named(ref)
    if named["kind"] == "INPUT_OBJECT":
        return {
            f["name"]: _value(f["type"], types, rng)
            for f in types[named["name"]]["inputFields"]
            if f["type"]["kind"] == "NON_NULL" or rng.random() < 0.5
        }
    value = rng.choice(SCALARS.get(named["name"], STRINGS))
    inner = ref.get("ofType") or {}
    return [value] if "LIST" in (ref["kind"], inner.get("kind")) else value


def test_fuzzing_every_field_as_admin_and_viewer_never_breaks_the_api_or_the_registry(
    api: dict[str, Any],
) -> None:
    """Every query and mutation with generated arguments (about 600 requests), with an ADMIN
    and a VIEWER token: no 5xx, every error answer carries extensions.code, the API's log has
    no traceback for any of them, and the registry's aliases are consistent afterwards."""
    import random

    from mlflow import MlflowClient

    rng = random.Random(20261202)
    admin, viewer = token("fuzz-admin", "ADMIN"), token("fuzz-viewer", "VIEWER")
    schema = gql(api, INTROSPECT, viewer).json()["data"]["__schema"]
    types = {t["name"]: t for t in schema["types"]}
    roots = [(schema["queryType"]["name"], "query"), (schema["mutationType"]["name"], "mutation")]
    sent = 0
    for root, kind in roots:
        for field in types[root]["fields"]:
            returns = _named(field["type"])
            selection = " { __typename }" if returns["kind"] in ("OBJECT", "INTERFACE") else ""
            for _ in range(25):
                args = [
                    a
                    for a in field["args"]
                    if a["type"]["kind"] == "NON_NULL" or rng.random() < 0.5
                ]
                params = ", ".join(f"${a['name']}: {_type_text(a['type'])}" for a in args)
                call = ", ".join(f"{a['name']}: ${a['name']}" for a in args)
                query = (
                    f"{kind}{f'({params})' if params else ''} "
                    f"{{ {field['name']}{f'({call})' if call else ''}{selection} }}"
                )
                values = {a["name"]: _value(a["type"], types, rng) for a in args}
                for bearer in (admin, viewer):
                    response = gql(api, query, bearer, **values)
                    sent += 1
                    assert response.status_code < 500, (query, values, response.text)
                    for error in response.json().get("errors") or []:
                        assert (error.get("extensions") or {}).get("code"), (query, values, error)
    assert sent >= 400
    log = (Path(api["env"]["MODELOPS_HOME"]) / "api.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    client = MlflowClient(api["env"]["MLFLOW_TRACKING_URI"])
    for model in client.search_registered_models():
        assert not model.name.startswith("modelops-lock."), "a lock was left behind"
        versions = {str(v.version) for v in client.search_model_versions(f'name = "{model.name}"')}
        aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
        assert set(aliases.values()) <= versions, (model.name, aliases)
        if "production" in aliases:
            assert aliases.get("previous-production") != aliases["production"]
            assert aliases.get("staging") != aliases["production"], aliases
