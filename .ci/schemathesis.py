#!/usr/bin/env python3
"""Docplanner conformance: every answer of the Docplanner dialect, for any
input schemathesis generates, must conform to the vendored OpenAPI document
(crates/server/tests/data/docplanner-openapi.json).

It starts the `polyclinic` binary (target/debug/polyclinic, the one
`cargo test` builds; POLYCLINIC_BIN overrides it) with --test-clock on a fresh
SQLite file, loads a seed with one Docplanner client (a facility, a doctor, an
address), prepares an address service, slots, a booking and a break through
the API, obtains an OAuth token and runs `schemathesis run` with the examples,
coverage and fuzzing phases and the checks not_a_server_error,
status_code_conformance, content_type_conformance and
response_schema_conformance, a fixed seed and a bounded number of examples.

The one recorded deviation (docs/dialects/docplanner.md, "field errors": a 400
"Invalid arguments" carries the document's example object of field errors
where its `Error` schema says an array of strings) is allowed by a patched copy
of the document that widens exactly the 400 answers to that shape; every other
failure, and any server error, fails the run.

Three passes on one server: the operations that take the address's data or
calendar away (deletions, the calendar switch-off, and last the integration
removal, which locks every calendar edit) run after all the others.

Usage: .ci/schemathesis.py [extra schemathesis options]
Environment: POLYCLINIC_BIN, SCHEMATHESIS_SEED (default 20240901),
SCHEMATHESIS_MAX_EXAMPLES (default 100), SCHEMATHESIS_REPORT_DIR (kept
reports; default a temporary directory).
"""

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "crates/server/tests/data/docplanner-openapi.json"
CLIENT_ID, CLIENT_SECRET = "dp-conformance", "dp-conformance-secret"
# A Monday; the clock stands still there for the whole run.
NOW = "2030-03-04T08:00:00Z"
# The passes, by operation name ("METHOD /path"). Deletions and the calendar
# switch-off take the address's data or calendar away, and a removed
# integration locks every calendar edit: they run after the others, the
# integration removal last, so that every operation is tried on an address
# that still takes it.
REMOVE_INTEGRATION = r"^DELETE .*/integration$"
DESTRUCTIVE = r"^DELETE (?!.*/integration$)|/calendar/disable$"
PASSES = [
    ("main", ["--exclude-name-regex", f"{DESTRUCTIVE}|{REMOVE_INTEGRATION}"]),
    ("destructive", ["--include-name-regex", DESTRUCTIVE]),
    ("integration-removal", ["--include-name-regex", REMOVE_INTEGRATION]),
]

SEED = {
    "services": [{"id": "1", "name": "ablacja"}, {"id": "3", "name": "ablacja serca"}],
    "insurance_providers": [
        {"id": "3", "name": "NFZ", "plans": [{"id": "31", "name": "Basic"}]},
        {"id": "4", "name": "Medicover"},
    ],
    "tenants": [
        {
            "key": "conformance",
            "name": "Conformance Clinic",
            "country": "PL",
            "language": "pl",
            "timezone": "Europe/Warsaw",
            "credentials": [
                # A PULL client (no push_url): notifications queue up for GET /notifications.
                {"dialect": "docplanner", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "facilities": ["hosp"]},
            ],
            "practitioners": [
                {"key": "ann", "given": "Ann", "family": "Berg",
                 "specializations": [{"id": "12", "name": "Cardiology"}], "license_numbers": ["PL-123"]},
            ],
            "healthcare_services": [
                {"key": "gp", "name": "GP", "practitioners": ["ann"], "slot_seconds": 900},
            ],
            "facilities": [
                {"key": "hosp", "name": "Test Hospital", "addresses": [
                    {"key": "obrzezna", "doctor": "ann", "name": "Test Hospital", "street": "Obrzezna 1",
                     "city": "Warszawa", "post_code": "02-001", "healthcare_service": "gp"},
                ]},
            ],
        }
    ],
}


def log(message):
    print(f"schemathesis.py: {message}", flush=True)


class Server:
    """The polyclinic binary, serving on a free port of 127.0.0.1."""

    def __init__(self, binary, workdir):
        self.admin_token = secrets.token_hex(16)
        self.log_path = workdir / "server.log"
        args = [
            str(binary), "serve",
            "--listen", "127.0.0.1:0",
            "--database", f"sqlite://{workdir / 'conformance.db'}",
            "--secret-key-file", str(workdir / "conformance.key"),
            "--admin-token", self.admin_token,
            "--test-clock",
            "--docplanner-no-rate-limits",
            "--log-format", "json",
        ]
        env = {**os.environ, "POLYCLINIC_LOG": "info,sqlx=warn"}
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        self.base = self._wait_for_listen()
        # Keep draining the log so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_listen(self):
        with open(self.log_path, "w") as out:
            for line in self.process.stderr:
                out.write(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == "polyclinic started":
                    return event["listen"]
        raise SystemExit(f"the server stopped before listening; see {self.log_path}")

    def _drain(self):
        with open(self.log_path, "a") as out:
            for line in self.process.stderr:
                out.write(line)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def request(self, method, path, body=None, headers=None, expect=(200,)):
        data = None
        headers = dict(headers or {})
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw, got = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), e.headers
        if status not in expect:
            raise SystemExit(f"{method} {path}: {status} {raw.decode(errors='replace')}")
        return (json.loads(raw) if raw.strip() else None), got

    def admin(self, method, path, body=None):
        return self.request(method, path, body, {"Authorization": f"Bearer {self.admin_token}"})[0]


def prepare(server):
    """Seeds the tenant and creates, through the API, the resources whose ids
    the run fixes: an address service, slots, a booking and a break."""
    ids = server.admin("POST", "/admin/seed", SEED)["tenants"]["conformance"]
    server.admin("POST", "/admin/clock", {"now": NOW})
    facility, doctor, address = ids["facilities"]["hosp"], ids["practitioners"]["ann"], ids["addresses"]["obrzezna"]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    token, _ = server.request(
        "POST", "/oauth/v2/token", "grant_type=client_credentials&scope=integration",
        {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    token = token["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    at = f"/api/v3/integration/facilities/{facility}/doctors/{doctor}/addresses/{address}"
    _, headers = server.request(
        "POST", f"{at}/services", {"service_id": "1", "price": 100, "default_duration": 30}, auth, expect=(201,)
    )
    address_service = headers["Location"].rstrip("/").rsplit("/", 1)[1]
    slots = {"slots": [{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T12:00:00+01:00",
                        "address_services": [{"address_service_id": address_service, "duration": 30}]}]}
    server.request("PUT", f"{at}/slots", slots, auth, expect=(201,))
    start = urllib.parse.quote("2030-03-05T09:00:00+01:00", safe="")
    booking, _ = server.request("POST", f"{at}/slots/{start}/book", {
        "address_service_id": address_service, "duration": 30,
        "patient": {"name": "Abraham", "surname": "Lincoln", "email": "abraham@example.com",
                    "phone": "48123123123", "birth_date": "1985-01-01", "gender": "m"},
    }, auth)
    brk, _ = server.request("POST", f"{at}/breaks", {
        "since": "2030-03-05T11:00:00+01:00", "till": "2030-03-05T11:30:00+01:00", "description": "lunch",
    }, auth, expect=(201,))
    free_start = "2030-03-05T10:00:00+01:00"
    return token, {
        "facility_id": facility,
        "doctor_id": doctor,
        "address_id": address,
    }, {
        # Half of the generated values are ids that exist, so that answers
        # with bodies are checked too, half anything schemathesis makes up.
        "path.address_service_id": [address_service],
        "path.booking_id": [booking["id"]],
        "path.break_id": [brk["id"]],
        "path.insurance_provider_id": ["3", "4"],
        "path.start": [free_start],
        "body.address_service_id": [address_service],
        "body.insurance_provider_id": ["3", "4"],
        "body.service_id": ["1", "3"],
    }


def patched_document(target):
    """The vendored document with the one recorded deviation allowed: a 400
    may be "Invalid arguments" with an object of field errors (lists of
    messages) as `errors`, the shape of the document's own 400 examples.
    Nothing else is changed: other statuses, and 400s of any other message,
    are held to the `Error` schema as it is."""
    doc = json.loads(DOCUMENT.read_text())
    doc["components"]["schemas"]["PolyclinicFieldErrors"] = {
        "type": "object",
        "required": ["errors", "message"],
        "properties": {
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            "message": {"type": "string", "enum": ["Invalid arguments"]},
        },
    }
    patched = 0
    for item in doc["paths"].values():
        for operation in item.values():
            response = operation.get("responses", {}).get("400") if isinstance(operation, dict) else None
            for media in (response or {}).get("content", {}).values():
                media["schema"] = {"anyOf": [media["schema"], {"$ref": "#/components/schemas/PolyclinicFieldErrors"}]}
                patched += 1
    if patched == 0:
        raise SystemExit("the document has no 400 responses to patch: has it changed?")
    target.write_text(json.dumps(doc))


def toml_string(s):
    return json.dumps(str(s))


def write_config(target, fixed, known):
    """schemathesis.toml: the path ids every request uses, and the known ids
    that half of the generated values of some parameters are drawn from."""
    def name(key):
        return key.replace(".", "_")

    lines = ["[parameters]"]
    lines += [f"{toml_string('path.' + k)} = {toml_string(v)}" for k, v in fixed.items()]
    lines += [f"{toml_string(k)} = {{ dictionary = {toml_string(name(k))}, probability = 0.5 }}" for k in known]
    for k, values in known.items():
        lines += ["", f"[dictionaries.{name(k)}]", f"values = {json.dumps(values)}"]
    # servers[0].url holds `{domain}`, which the document does not define:
    # requests go to --url, but schemathesis still resolves the declared URL.
    lines += ["", "[servers.variables]", 'domain = "znanylekarz.pl"']
    target.write_text("\n".join(lines) + "\n")


def run(binary, workdir, report_dir):
    server = Server(binary, workdir)
    try:
        log(f"server at {server.base} (log: {server.log_path})")
        token, fixed, known = prepare(server)
        log("fixed parameters: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
        log("known values: " + ", ".join(f"{k}={v}" for k, v in known.items()))
        document = workdir / "docplanner-openapi.json"
        patched_document(document)
        config = workdir / "schemathesis.toml"
        write_config(config, fixed, known)
        base = [
            "schemathesis", "--config-file", str(config), "run", str(document),
            # The document's servers[0].url holds `{domain}`: the base URL is given here.
            "--url", f"{server.base}/api/v3/integration",
            "--header", f"Authorization: Bearer {token}",
            # The document's PUSH callback: an endpoint the client serves, not Docplanner.
            "--exclude-path", "/{client-endpoint-url}",
            "--phases", "examples,coverage,fuzzing",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance",
            "--seed", os.environ.get("SCHEMATHESIS_SEED", "20240901"),
            "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "100"),
            "--workers", "1",
            "--generation-database", "none",
            "--no-color",
            "--report", "junit",
        ]
        code = 0
        for name, selection in PASSES:
            command = [*base, *selection, "--report-dir", str(report_dir / name), *sys.argv[1:]]
            shown = ["Authorization: Bearer ***" if c.startswith("Authorization") else c for c in command]
            log(f"{name} pass: " + " ".join(shown))
            started = time.monotonic()
            result = subprocess.run(command, cwd=workdir).returncode
            log(f"{name} pass finished in {time.monotonic() - started:.0f} s with exit code {result}")
            code = code or result
        if server.process.poll() is not None:
            log("the server stopped during the run")
            return 1
        return code
    finally:
        server.stop()


def main():
    binary = Path(os.environ.get("POLYCLINIC_BIN", ROOT / "target/debug/polyclinic"))
    if not binary.exists():
        log(f"{binary} is missing: building it")
        subprocess.run(["cargo", "build", "-p", "polyclinic", "--bin", "polyclinic", "--locked"], cwd=ROOT, check=True)
    if shutil.which("schemathesis") is None:
        raise SystemExit("schemathesis is not installed: pip install 'schemathesis>=4,<5'")
    workdir = Path(tempfile.mkdtemp(prefix="polyclinic-schemathesis-"))
    report_dir = Path(os.environ.get("SCHEMATHESIS_REPORT_DIR", workdir / "report"))
    code = 1
    try:
        code = run(binary, workdir, report_dir)
    finally:
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            server_log = workdir / "server.log"
            if server_log.exists():
                tail = server_log.read_text(errors="replace").splitlines()[-40:]
                log("the server log ends with:\n" + "\n".join(tail))
            log(f"kept {workdir}: server.log, schemathesis.toml, the patched document, the report")
    return code


if __name__ == "__main__":
    sys.exit(main())
