"""Drives a running n8n (with n8n-nodes-genhook installed) against a live genhook over REST.

Run by scripts/e2e-n8n, which starts both; standard library only. Environment:
  N8N_URL                    n8n's base URL (also its WEBHOOK_URL)
  GENHOOK_URL, GENHOOK_API_KEY, GENHOOK_SIGNING_SECRET   the live genhook and its demo account
  E2E_N8N_PLUMBING=1         only check owner/login/credentials/workflows/executions with n8n's
                             built-in nodes (no genhook nodes needed)

Prints one PASS/FAIL line per check and a final "N passed, N failed" line; exits 1 on any
failure. Each check compares what n8n and genhook report against what this script sent, so
each one can fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

N8N = os.environ["N8N_URL"].rstrip("/")
GH = os.environ.get("GENHOOK_URL", "").rstrip("/")
GH_KEY = os.environ.get("GENHOOK_API_KEY", "")
GH_SECRET = os.environ.get("GENHOOK_SIGNING_SECRET", "")
PLUMBING = os.environ.get("E2E_N8N_PLUMBING") == "1"
RUN = uuid.uuid4().hex[:10]  # tags everything this run creates

GENERATE = "Generate and Wait"
#: The importable sample of integrations/n8n-node/README.md, run as scenario 1.
SAMPLE_WORKFLOW = (
    Path(__file__).resolve().parents[2]
    / "integrations/n8n-node/examples/listing-video.workflow.json"
)
TRIGGER = "Genhook Trigger"

passed = 0
failed = 0


def report(name: str, ok: bool, detail: str = "", info: str = "") -> bool:
    """One check: PASS (with `info`, if any) or FAIL (with `detail`, what was seen instead)."""
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    line = f"{'PASS' if ok else 'FAIL'}  {name}"
    extra = info if ok else detail
    if extra:
        line += f"  ({extra})"
    print(line, flush=True)
    return ok


class Stop(Exception):
    """A check that later checks depend on failed; it was already reported."""


def require(name: str, ok: bool, detail: str = "") -> None:
    if not report(name, ok, detail):
        raise Stop(name)


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def text(self, limit: int = 300) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    method: str,
    url: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    data = raw
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, err.headers, err.read())


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Calls probe until it returns something truthy; returns it, or None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# n8n REST (the editor's /rest API, with the session cookie)


class N8n:
    BROWSER_ID = "genhook-e2e-browser"  # the auth cookie is bound to a hash of this header

    def __init__(self) -> None:
        self.cookie = ""

    def call(self, method: str, path: str, body: Any = None) -> Response:
        headers = {"browser-id": self.BROWSER_ID}
        if self.cookie:
            headers["Cookie"] = self.cookie
        resp = http(method, f"{N8N}/rest{path}", body=body, headers=headers)
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            if name.strip() == "n8n-auth":
                self.cookie = f"n8n-auth={rest.split(';')[0]}"
        return resp

    def data(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.call(method, path, body)
        if resp.status >= 300:
            raise RuntimeError(f"{method} /rest{path} -> {resp.status}: {resp.text(500)}")
        payload = resp.json()
        return payload.get("data", payload) if isinstance(payload, dict) else payload

    def executions(self, workflow_id: str) -> list[dict[str, Any]]:
        flt = urllib.parse.quote(json.dumps({"workflowId": workflow_id}))
        got = self.data("GET", f"/executions?filter={flt}&limit=100")
        return list(got.get("results", []))

    def execution(self, execution_id: str) -> dict[str, Any]:
        got: dict[str, Any] = self.data("GET", f"/executions/{execution_id}")
        data = got.get("data")
        if isinstance(data, str):
            got["data"] = unflatten(data)
        return got

    def create_workflow(
        self, name: str, nodes: list[dict[str, Any]], connections: dict[str, Any]
    ) -> dict[str, Any]:
        created: dict[str, Any] = self.data(
            "POST",
            "/workflows",
            {
                "name": name,
                "nodes": nodes,
                "connections": connections,
                "settings": {"executionOrder": "v1"},
            },
        )
        return created

    def activate(self, workflow: dict[str, Any]) -> Response:
        return self.call(
            "POST", f"/workflows/{workflow['id']}/activate", {"versionId": workflow["versionId"]}
        )

    def published(self, workflow: dict[str, Any], timeout: float = 30) -> tuple[bool, str]:
        """n8n 2.41 publishes (activates) through an outbox: POST .../activate returns before the
        triggers are registered. Waits until GET .../publication-status has settled."""
        last: dict[str, Any] = {}

        def settled() -> bool:
            nonlocal last
            last = self.data("GET", f"/workflows/{workflow['id']}/publication-status")
            return last.get("status") in ("published", "partial", "failed")

        wait_for("publication", settled, timeout, 0.2)
        return last.get("status") == "published", json.dumps(last)[:300]

    def deactivate(self, workflow: dict[str, Any]) -> Response:
        return self.call("POST", f"/workflows/{workflow['id']}/deactivate", {})


def unflatten(text: str) -> Any:
    """Parses n8n's `flatted` execution data: a JSON array whose first entry is the root and
    in which every string inside an object or array is the index of another entry."""
    table = json.loads(text)
    done: dict[int, Any] = {}

    def resolve(index: int) -> Any:
        value = table[index]
        if not isinstance(value, (dict, list)):
            return value
        if index in done:
            return done[index]
        if isinstance(value, list):
            out_list: list[Any] = []
            done[index] = out_list
            out_list.extend(resolve(int(v)) if isinstance(v, str) else v for v in value)
            return out_list
        out: dict[str, Any] = {}
        done[index] = out
        for key, v in value.items():
            out[key] = resolve(int(v)) if isinstance(v, str) else v
        return out

    return resolve(0)


def node_output(execution: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The JSON of the node's items on its first output, from its last run."""
    runs = (((execution.get("data") or {}).get("resultData") or {}).get("runData") or {}).get(
        node
    ) or []
    if not runs:
        return []
    main = ((runs[-1].get("data") or {}).get("main") or [[]])[0] or []
    return [item.get("json", {}) for item in main]


def execution_error(execution: dict[str, Any]) -> str:
    err = ((execution.get("data") or {}).get("resultData") or {}).get("error")
    return json.dumps(err)[:400] if err else ""


# ---------------------------------------------------------------------------------------------
# genhook and Standard Webhooks


def gh(method: str, path: str, body: Any = None) -> Response:
    return http(method, f"{GH}{path}", body=body, headers={"Authorization": f"Bearer {GH_KEY}"})


def gh_data(method: str, path: str, body: Any = None) -> Any:
    resp = gh(method, path, body)
    if resp.status >= 300:
        raise RuntimeError(f"genhook {method} {path} -> {resp.status}: {resp.text(500)}")
    return resp.json()


def sign(secret: str, msg_id: str, timestamp: int, raw: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def post_signed(
    url: str, payload: dict[str, Any], secret: str, *, age: int = 0, msg_id: str | None = None
) -> Response:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    msg_id = msg_id or f"msg_e2e_{uuid.uuid4().hex}"
    ts = int(time.time()) - age
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, raw),
    }
    return http("POST", url, raw=raw, headers=headers)


def fake_event(job_id: str, **overrides: Any) -> dict[str, Any]:
    """A plausible genhook payload: what an attacker (or a replay) would send."""
    payload = {
        "event": "video.generation.completed",
        "id": job_id,
        "object": "video.generation",
        "status": "completed",
        "model": "kling-v3",
        "output_url": "https://attacker.example/forged.mp4",
        "credits": 3,
        "credits_billed": 0,
    }
    payload.update(overrides)
    return payload


def png(width: int, height: int) -> bytes:
    """An RGB gradient PNG, written by hand (zlib + CRCs)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // width, y * 255 // height, 128))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def find_generation(nonce: str) -> dict[str, Any] | None:
    got = gh_data("GET", "/v1/video/generations?limit=100")
    for job in got.get("data", []):
        if nonce in str(job.get("prompt", "")):
            return dict(job)
    return None


def endpoints() -> list[dict[str, Any]]:
    return list(gh_data("GET", "/v1/webhook-endpoints").get("data", []))


# ---------------------------------------------------------------------------------------------
# Scenarios


def setup(n8n: N8n) -> None:
    email, password = f"owner-{RUN}@example.com", f"E2e-{RUN}-Password1"
    resp = n8n.call(
        "POST",
        "/owner/setup",
        {"email": email, "firstName": "E2E", "lastName": "Owner", "password": password},
    )
    require(
        "n8n: owner set up (POST /rest/owner/setup)",
        resp.status == 200,
        f"HTTP {resp.status} {resp.text(200)}",
    )
    n8n.cookie = ""
    resp = n8n.call("POST", "/login", {"emailOrLdapLoginId": email, "password": password})
    require(
        "n8n: login (POST /rest/login) issues a session cookie",
        resp.status == 200 and bool(n8n.cookie),
        f"HTTP {resp.status}",
    )


def plumbing(n8n: N8n) -> None:
    """n8n's own nodes only: a production webhook runs a workflow whose execution is readable."""
    path = f"e2e-plumbing-{RUN}"
    wf = n8n.create_workflow(
        f"e2e plumbing {RUN}",
        [
            webhook_node(path),
            {
                "id": str(uuid.uuid4()),
                "name": "Set",
                "type": "n8n-nodes-base.set",
                "typeVersion": 3.4,
                "position": [220, 0],
                "parameters": {
                    "assignments": {
                        "assignments": [
                            {
                                "id": "a1",
                                "name": "echo",
                                "value": "={{ $json.body.nonce }}",
                                "type": "string",
                            }
                        ]
                    },
                    "options": {},
                },
            },
        ],
        {"Webhook": {"main": [[{"node": "Set", "type": "main", "index": 0}]]}},
    )
    require("plumbing: workflow created", bool(wf.get("id")))
    resp = n8n.activate(wf)
    require(
        "plumbing: workflow activated", resp.status == 200, f"HTTP {resp.status} {resp.text(300)}"
    )
    require("plumbing: workflow published (publication-status)", *n8n.published(wf))
    resp = http("POST", f"{N8N}/webhook/{path}", body={"nonce": RUN})
    require(
        "plumbing: production webhook answers",
        resp.status == 200,
        f"HTTP {resp.status} {resp.text(200)}",
    )
    ex = wait_for(
        "execution", lambda: [e for e in n8n.executions(wf["id"]) if e["status"] == "success"], 20
    )
    require("plumbing: execution found and succeeded", bool(ex))
    out = node_output(n8n.execution(ex[0]["id"]), "Set")
    report(
        "plumbing: execution data carries the posted value",
        out[:1] == [{"echo": RUN}],
        json.dumps(out)[:200],
    )


def webhook_node(path: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": [0, 0],
        "webhookId": str(uuid.uuid4()),
        "parameters": {
            "httpMethod": "POST",
            "path": path,
            "responseMode": "onReceived",
            "options": {},
        },
    }


def create_credential(n8n: N8n) -> dict[str, Any]:
    cred = n8n.data(
        "POST",
        "/credentials",
        {
            "name": f"genhook e2e {RUN}",
            "type": "genhookApi",
            "data": {"baseUrl": GH, "apiKey": GH_KEY, "signingSecret": GH_SECRET},
        },
    )
    require(
        "credential genhookApi created",
        bool(cred.get("id")) and cred.get("type") == "genhookApi",
        str(cred)[:200],
    )
    resp = n8n.call(
        "POST",
        "/credentials/test",
        {
            "credentials": {
                "id": cred["id"],
                "name": cred["name"],
                "type": "genhookApi",
                "data": {"baseUrl": GH, "apiKey": GH_KEY, "signingSecret": GH_SECRET},
            }
        },
    )
    result = (resp.json() or {}).get("data") or {}
    report(
        "credential test (GET /v1/account with the key) is OK",
        resp.status == 200 and result.get("status") == "OK",
        f"HTTP {resp.status} {json.dumps(result)[:200]}",
    )
    return {"id": cred["id"], "name": cred["name"]}


def generate_and_wait(n8n: N8n, cred: dict[str, Any]) -> None:
    path = f"e2e-generate-{RUN}"
    nonce = f"e2e-{RUN}-gen"
    prompt = f"A slow dolly shot over a gradient test card ({nonce})"
    image_url = "data:image/png;base64," + base64.b64encode(png(320, 320)).decode()
    # The README's sample, imported as it is; only its credential is picked (as a user does
    # in the editor) and its webhook path made unique to this run.
    sample = json.loads(SAMPLE_WORKFLOW.read_text())
    for node in sample["nodes"]:
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = path
        if node["name"] == GENERATE:
            node["credentials"] = {"genhookApi": cred}
    wf = n8n.create_workflow(f"{sample['name']} {RUN}", sample["nodes"], sample["connections"])
    resp = n8n.activate(wf)
    require(
        "generate: workflow Webhook -> Generate and Wait activated",
        resp.status == 200,
        f"HTTP {resp.status} {resp.text(300)}",
    )
    require("generate: workflow published, its webhook registered", *n8n.published(wf))
    resp = http(
        "POST",
        f"{N8N}/webhook/{path}",
        body={"prompt": prompt, "photo_url": image_url, "listing_id": RUN},
    )
    require(
        "generate: production webhook accepted the request",
        resp.status == 200,
        f"HTTP {resp.status} {resp.text(200)}",
    )

    started = wait_for("execution", lambda: n8n.executions(wf["id"]), 20)
    require("generate: an execution of the workflow exists", bool(started))
    exec_id = str(started[0]["id"])
    status = wait_for(
        "waiting",
        lambda: (
            (s := n8n.execution(exec_id)["status"])
            in ("waiting", "success", "error", "crashed", "canceled")
            and s
        ),
        20,
        0.15,
    )
    if status != "waiting":
        detail = execution_error(n8n.execution(exec_id)) if status else "timed out"
        require(
            "generate: execution is waiting for genhook's webhook",
            False,
            f"status {status!r} {detail}",
        )
    report(
        "generate: execution is waiting for genhook's webhook", True, info=f"execution {exec_id}"
    )

    # The waiting node's run data holds the job it submitted; genhook's list is the fallback.
    held = node_output(n8n.execution(exec_id), GENERATE)
    held_id = str(held[0].get("id", "")) if held else ""
    job = (
        gh_data("GET", f"/v1/video/generations/{held_id}") if held_id.startswith("vgen_") else None
    )
    job = job or wait_for("generation", lambda: find_generation(nonce), 10)
    require(
        "generate: genhook has the generation the node submitted (our prompt)",
        bool(job) and job.get("prompt") == prompt,
        f"held {held_id or 'nothing'}",
    )
    job_id = job["id"]
    resume_url = str(job.get("webhook_url") or "")
    require(
        "generate: its webhook_url is this execution's resume URL",
        resume_url.startswith(f"{N8N}/webhook-waiting/{exec_id}"),
        resume_url[:120],
    )

    # -- tampering while the execution waits ------------------------------------------------
    wrong_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    attempts = [
        ("forged signature (wrong secret)", fake_event(job_id), wrong_secret, 0),
        ("stale replay (genuine secret, timestamp 1 h old)", fake_event(job_id), GH_SECRET, 3600),
        ("signed, but for another generation", fake_event("vgen_not_this_one"), GH_SECRET, 0),
    ]

    # These POSTs carry n8n's own resume token (the URL genhook stored), so n8n hands them to
    # the node's webhook(): a 401 here is our signature check, not n8n's "Invalid token".
    def node_rejected(resp: Response) -> bool:
        return resp.status == 401 and "Invalid token" not in resp.text()

    for label, payload, secret, age in attempts:
        resp = post_signed(resume_url, payload, secret, age=age)
        still = n8n.execution(exec_id)["status"]
        report(
            f"tamper: {label} -> 401 from the node, still waiting",
            node_rejected(resp) and still == "waiting",
            f"HTTP {resp.status} {resp.text(100)}, execution {still}",
        )
    unsigned = http("POST", resume_url, body=fake_event(job_id))
    still = n8n.execution(exec_id)["status"]
    report(
        "tamper: unsigned POST -> 401 from the node, still waiting",
        node_rejected(unsigned) and still == "waiting",
        f"HTTP {unsigned.status} {unsigned.text(100)}, execution {still}",
    )
    bare = resume_url.split("?")[0]
    no_token = post_signed(bare, fake_event(job_id), GH_SECRET)
    still = n8n.execution(exec_id)["status"]
    report(
        "tamper: genuine signature but no n8n resume token -> 401 (n8n), still waiting",
        no_token.status == 401 and still == "waiting",
        f"HTTP {no_token.status} {no_token.text(100)}, execution {still}",
    )
    current = gh_data("GET", f"/v1/video/generations/{job_id}")
    report(
        "tamper: the checks above ran before genhook finished the job",
        current.get("status") not in ("completed", "failed", "canceled") or still == "waiting",
        f"job {current.get('status')}; raise GENHOOK_SIMULATOR_RENDER_SECONDS if this fails",
    )

    # -- the genuine webhook resumes it -----------------------------------------------------
    final = wait_for(
        "finished",
        lambda: (e := n8n.execution(exec_id))["status"] not in ("waiting", "running", "new") and e,
        90,
        0.5,
    )
    require(
        "generate: genhook's signed webhook resumed the execution",
        bool(final),
        "still waiting after 90 s",
    )
    report(
        "generate: execution ended with success",
        final["status"] == "success",
        f"{final['status']} {execution_error(final)}",
    )
    out = node_output(final, GENERATE)
    item = out[0] if len(out) == 1 else {}
    report("generate: one output item", len(out) == 1, f"{len(out)} items")
    report(
        "generate: output status is completed",
        item.get("status") == "completed",
        str(item.get("status")),
    )
    report(
        "generate: output has an output_url",
        bool(item.get("output_url")),
        str(item.get("output_url"))[:100],
    )
    report(
        "generate: output is genhook's job",
        item.get("id") == job_id,
        f"{item.get('id')} vs {job_id}",
        info=job_id,
    )
    report(
        "generate: output is genhook's payload (event video.generation.completed)",
        item.get("event") == "video.generation.completed",
        str(item.get("event")),
    )
    report(
        "generate: output is not the forged one",
        "attacker.example" not in str(item.get("output_url")),
    )

    known = gh_data("GET", f"/v1/video/generations/{job_id}")
    report(
        "genhook: GET generation says completed",
        known.get("status") == "completed",
        str(known.get("status")),
    )
    report(
        "genhook: the job was submitted as kling-v3 with our prompt",
        known.get("model") == "kling-v3" and known.get("prompt") == prompt,
    )
    report(
        "genhook: the job has the PNG as its first frame",
        bool(known.get("image_id")),
        str(known.get("image_id")),
    )
    report(
        "genhook: the job carries the workflow's metadata",
        (known.get("metadata") or {}).get("listing_id") == RUN,
        json.dumps(known.get("metadata")),
    )
    out_url = str(known.get("output_url") or "")
    if out_url:
        video = http("GET", out_url, headers={"Range": "bytes=0-63"})
        report(
            "genhook: the output_url serves the video",
            video.status in (200, 206) and len(video.body) > 0,
            f"HTTP {video.status}",
        )
    deliveries = gh_data("GET", f"/v1/video/generations/{job_id}/deliveries").get("data", [])
    to_n8n = [d for d in deliveries if str(d.get("url", "")).startswith(f"{N8N}/webhook-waiting/")]
    codes = [a.get("response_status") for d in to_n8n for a in d.get("attempts", [])]
    bodies = [str(a.get("response_body"))[:60] for d in to_n8n for a in d.get("attempts", [])]
    report(
        "genhook: its delivery to the resume URL was answered 2xx",
        any(200 <= (c or 0) < 300 for c in codes),
        f"attempts {codes} {bodies}",
    )
    report(
        "genhook: the node answered the resume with its own JSON",
        any(b.replace(" ", "").startswith('{"received":true') for b in bodies),
        f"answers {bodies}",
    )
    result = node_output(final, "Video Result")
    row = result[0] if result else {}
    report(
        "sample: Video Result has the listing, status and video URL",
        row.get("listing_id") == RUN
        and row.get("status") == "completed"
        and row.get("video_url") == item.get("output_url"),
        json.dumps(row)[:200],
    )


def declarative(n8n: N8n, cred: dict[str, Any]) -> None:
    """The declarative Genhook node (generated routing) reads a generation in real n8n."""
    jobs = gh_data("GET", "/v1/video/generations?limit=1").get("data", [])
    require("declarative: genhook has a generation to read", bool(jobs))
    job = jobs[0]
    path = f"e2e-declarative-{RUN}"
    hook = webhook_node(path)
    hook["parameters"]["responseMode"] = "lastNode"
    hook["parameters"]["responseData"] = "firstEntryJson"
    wf = n8n.create_workflow(
        f"e2e declarative {RUN}",
        [
            hook,
            {
                "id": str(uuid.uuid4()),
                "name": "Genhook",
                "type": "n8n-nodes-genhook.genhook",
                "typeVersion": 1,
                "position": [220, 0],
                "credentials": {"genhookApi": cred},
                "parameters": {
                    "resource": "generation",
                    "operation": "get",
                    "jobId": "={{ $json.body.id }}",
                },
            },
        ],
        {"Webhook": {"main": [[{"node": "Genhook", "type": "main", "index": 0}]]}},
    )
    resp = n8n.activate(wf)
    require("declarative: workflow Webhook -> Genhook (get) activated", resp.status == 200)
    require("declarative: workflow published", *n8n.published(wf))
    resp = http("POST", f"{N8N}/webhook/{path}", body={"id": job["id"]})
    got = resp.json() if resp.status == 200 else None
    report(
        "declarative: Genhook 'Get a generation' returns genhook's generation",
        isinstance(got, dict)
        and got.get("id") == job["id"]
        and got.get("status") == job["status"]
        and got.get("object") == "video.generation",
        f"HTTP {resp.status} {resp.text(200)}",
    )
    n8n.deactivate(wf)


def trigger(n8n: N8n, cred: dict[str, Any]) -> None:
    before = {e["id"] for e in endpoints()}
    webhook_id = str(uuid.uuid4())
    wf = n8n.create_workflow(
        f"e2e trigger {RUN}",
        [
            {
                "id": str(uuid.uuid4()),
                "name": TRIGGER,
                "type": "n8n-nodes-genhook.genhookTrigger",
                "typeVersion": 1,
                "position": [0, 0],
                "webhookId": webhook_id,
                "credentials": {"genhookApi": cred},
                "parameters": {"events": ["video.generation.completed"]},
            }
        ],
        {},
    )
    resp = n8n.activate(wf)
    require(
        "trigger: workflow with Genhook Trigger activated",
        resp.status == 200,
        f"HTTP {resp.status} {resp.text(300)}",
    )
    require(
        "trigger: workflow published (the trigger's create() ran without error)", *n8n.published(wf)
    )
    trigger_url = f"{N8N}/webhook/{webhook_id}/webhook"
    new = [e for e in endpoints() if e["id"] not in before]
    report(
        "trigger: activation registered one genhook endpoint at the trigger's URL",
        len(new) == 1 and new[0].get("url") == trigger_url,
        json.dumps([(e.get("url"), e.get("events")) for e in new])[:300],
    )
    require("trigger: endpoint exists", bool(new))
    endpoint = new[0]
    report(
        "trigger: the endpoint subscribes to video.generation.completed only",
        endpoint.get("events") == ["video.generation.completed"]
        and endpoint.get("enabled") is True,
        json.dumps(endpoint.get("events")),
    )

    # A forged event before anything real happens: 401, and no execution.
    forged = post_signed(
        trigger_url, fake_event("vgen_forged"), "whsec_" + base64.b64encode(os.urandom(32)).decode()
    )
    endpoint_secret = str(
        gh_data("GET", f"/v1/webhook-endpoints/{endpoint['id']}/secret").get("secret", "")
    )
    stale = post_signed(trigger_url, fake_event("vgen_forged"), endpoint_secret, age=3600)
    account_signed = post_signed(trigger_url, fake_event("vgen_forged"), GH_SECRET)
    time.sleep(1.0)
    runs = n8n.executions(wf["id"])
    report(
        "trigger: forged POST -> 401",
        forged.status == 401,
        f"HTTP {forged.status} {forged.text(120)}",
    )
    report(
        "trigger: replay with the endpoint's secret but a 1 h old timestamp -> 401",
        stale.status == 401,
        f"HTTP {stale.status}",
    )
    report(
        "trigger: POST signed with the account secret, not the endpoint's -> 401",
        account_signed.status == 401,
        f"HTTP {account_signed.status}",
    )
    report(
        "trigger: the rejected POSTs started no execution", runs == [], f"{len(runs)} executions"
    )

    nonce = f"e2e-{RUN}-trigger"
    job = gh_data(
        "POST",
        "/v1/video/generations",
        {"model": "kling-v3", "prompt": f"Trigger test {nonce}", "duration": "5s"},
    )
    job_id = job["id"]
    done = wait_for(
        "trigger execution",
        lambda: [e for e in n8n.executions(wf["id"]) if e["status"] not in ("running", "new")],
        90,
        0.5,
    )
    require("trigger: genhook's event started an execution", bool(done), "none within 90 s")
    ex = n8n.execution(str(done[0]["id"]))
    report(
        "trigger: execution ended with success",
        ex["status"] == "success",
        f"{ex['status']} {execution_error(ex)}",
    )
    out = node_output(ex, TRIGGER)
    item = out[0] if out else {}
    report(
        "trigger: payload event is video.generation.completed",
        item.get("event") == "video.generation.completed",
        str(item.get("event")),
    )
    report(
        "trigger: payload is the submitted job",
        item.get("id") == job_id,
        f"{item.get('id')} vs {job_id}",
        info=job_id,
    )
    report(
        "trigger: payload has status completed and an output_url",
        item.get("status") == "completed" and bool(item.get("output_url")),
    )

    # A redelivery carries the same webhook-id: the trigger must not run the workflow twice.
    deliveries = gh_data("GET", f"/v1/video/generations/{job_id}/deliveries").get("data", [])
    mine = [d for d in deliveries if d.get("url") == trigger_url]
    if report(
        "trigger: genhook logged its delivery to the trigger",
        len(mine) == 1,
        f"{len(mine)} deliveries",
    ):
        delivery = mine[0]
        attempts_before = len(delivery.get("attempts", []))
        resp = gh("POST", f"/v1/deliveries/{delivery['id']}/redeliver")

        def redelivered() -> Any:
            d = gh_data("GET", f"/v1/deliveries/{delivery['id']}")
            attempts = d.get("attempts", [])
            return (
                attempts[-1]
                if len(attempts) > attempts_before and attempts[-1].get("response_status")
                else None
            )

        last = wait_for("redelivery", redelivered, 30, 0.5) if resp.status < 300 else None
        time.sleep(1.5)
        runs = n8n.executions(wf["id"])
        static = n8n.data("GET", f"/workflows/{wf['id']}").get("staticData") or {}
        seen = {
            k: sorted((v or {}).get("seen", {})) for k, v in static.items() if isinstance(v, dict)
        }
        report(
            "trigger: its static data, as n8n saved it, remembers the delivered webhook-id",
            delivery["id"] in json.dumps(seen),
            f"webhook-id {delivery['id']}, seen {json.dumps(seen)[:200]}",
        )
        report(
            "trigger: a redelivery (same webhook-id) gets 2xx but starts no second execution",
            last is not None and 200 <= (last.get("response_status") or 0) < 300 and len(runs) == 1,
            f"redeliver HTTP {resp.status}, n8n answered {last and last.get('response_status')} "
            f"{last and str(last.get('response_body'))[:80]}, {len(runs)} executions",
        )

    resp = n8n.deactivate(wf)
    report(
        "trigger: workflow deactivated", resp.status == 200, f"HTTP {resp.status} {resp.text(200)}"
    )
    # Deactivation, like activation, goes through n8n's publication outbox: poll.
    gone = wait_for(
        "endpoint deleted",
        lambda: not [e for e in endpoints() if e["id"] == endpoint["id"]],
        20,
        0.3,
    )
    left = [e for e in endpoints() if e["id"] == endpoint["id"]]
    report("trigger: deactivation deleted the genhook endpoint", bool(gone), json.dumps(left)[:200])


def main() -> int:
    n8n = N8n()
    started = time.monotonic()
    try:
        setup(n8n)
        if PLUMBING:
            plumbing(n8n)
        else:
            cred = create_credential(n8n)
            for scenario in (generate_and_wait, declarative, trigger):
                try:
                    scenario(n8n, cred)
                except Stop:
                    pass
                except Exception as exc:  # reported as a failed check
                    traceback.print_exc()
                    report(f"{scenario.__name__}: ran without errors", False, repr(exc)[:300])
    except Stop:
        pass
    except Exception as exc:
        traceback.print_exc()
        report("setup ran without errors", False, repr(exc)[:300])
    print(f"{passed} passed, {failed} failed  ({time.monotonic() - started:.1f} s)", flush=True)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
